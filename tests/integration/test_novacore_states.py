"""Live Novacore readings through a real SSE server into a real Home Assistant: the states
they become, with Home Assistant's signs, and totals that never go back."""

from __future__ import annotations

import copy
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import mock_restore_cache_with_extra_data

from custom_components.energy_telemetry.const import DOMAIN
from tests.helpers.entities import first_states, number
from tests.helpers.novacore import devices_of, reload_fast, send, setup_fast, setup_novacore
from tests.helpers.site import BATTERY, DEVICES, METER, PV, SITE_ID, TS, Novacore
from tests.helpers.waiting import wait_for


async def test_readings_become_states(hass: HomeAssistant, novacore: Novacore) -> None:
    """The seed's three payloads become sensors with Home Assistant's sign conventions."""
    entry = await setup_novacore(hass, novacore)
    for payload in (PV, BATTERY, METER):
        await novacore.push(payload)
    await wait_for(lambda: hass.states.get("sensor.grid_meter_energy_exported"))
    await hass.async_block_till_done()

    assert number(hass, "sensor.pv_array_power") == 2500  # producing: positive
    assert number(hass, "sensor.pv_array_mppt_1_voltage") == 400
    assert number(hass, "sensor.pv_array_mppt_1_current") == 6.25
    assert number(hass, "sensor.pv_array_mppt_2_current") == 0.5
    assert number(hass, "sensor.pv_array_energy_produced") == 150  # shown in kWh
    assert number(hass, "sensor.battery_1_power") == -3000  # charging: negative
    assert number(hass, "sensor.battery_1_battery") == 42
    assert number(hass, "sensor.battery_1_current") == -58.6
    assert number(hass, "sensor.battery_1_energy_charged") == 85
    assert number(hass, "sensor.grid_meter_power") == 850  # importing: positive
    assert number(hass, "sensor.grid_meter_frequency") == 50.01
    assert number(hass, "sensor.grid_meter_phase_1_voltage") == 230
    assert number(hass, "sensor.grid_meter_energy_imported") == 42

    energy = hass.states.get("sensor.grid_meter_energy_imported")
    assert energy.attributes["device_class"] == "energy"
    assert energy.attributes["state_class"] == "total_increasing"

    registry = er.async_get(hass)
    read_time = registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_der-pv_read_time_ms")
    assert read_time is not None
    assert registry.async_get(read_time).disabled_by is er.RegistryEntryDisabler.INTEGRATION

    pv_device = devices_of(hass, entry)[(DOMAIN, f"{SITE_ID}_der-pv")]
    assert pv_device.manufacturer == "Sungrow"
    inverter = dr.async_get(hass).async_get(pv_device.via_device_id)
    assert inverter.name == "Sungrow Inverter"
    assert inverter.serial_number == "SN12345"
    assert await hass.config_entries.async_unload(entry.entry_id)


TWO_PV_DEVICES = copy.deepcopy(DEVICES)
TWO_PV_DEVICES[0]["ders"] = [
    {"id": "der-east", "name": "East roof", "type": "solar"},
    {"id": "der-west", "name": "West roof", "type": "solar"},
    {"id": "der-bat", "name": "battery_1", "type": "battery"},
]
"""The site's devices with two PV arrays on the inverter."""


@pytest.fixture
async def two_pv_arrays(hass: HomeAssistant, novacore: Novacore) -> Any:
    """Return the entry of the site with two PV arrays on its inverter."""
    novacore.server.set_devices(SITE_ID, TWO_PV_DEVICES)
    return await setup_fast(hass, novacore)


async def test_sign_conventions(hass: HomeAssistant, novacore: Novacore) -> None:
    """Sourceful's signs become Home Assistant's for PV, battery and meter, both directions."""
    entry = await setup_fast(hass, novacore)
    pv = {"type": "pv", "der_id": "der-pv", "timestamp": TS}
    battery = {"type": "battery", "der_id": "der-bat", "timestamp": TS}
    meter = {"type": "meter", "der_id": "der-meter", "timestamp": TS}

    await send(hass, novacore, entry, {**pv, "W": -2500, "mppt1_A": -6.25})
    await send(hass, novacore, entry, {**battery, "W": 3000, "A": 58.6})
    await send(hass, novacore, entry, {**meter, "W": 850, "L1_W": 850})
    assert number(hass, "sensor.pv_array_power") == 2500  # producing
    assert number(hass, "sensor.pv_array_mppt_1_current") == 6.25
    assert number(hass, "sensor.battery_1_power") == -3000  # charging
    assert number(hass, "sensor.battery_1_current") == -58.6
    assert number(hass, "sensor.grid_meter_power") == 850  # importing
    assert number(hass, "sensor.grid_meter_phase_1_power") == 850

    later = {"timestamp": TS + 1000}
    await send(hass, novacore, entry, {**pv, **later, "W": 15, "mppt1_A": 0.1})
    await send(hass, novacore, entry, {**battery, **later, "W": -1200, "A": -23.4})
    await send(hass, novacore, entry, {**meter, **later, "W": -400, "L1_W": -400})
    assert number(hass, "sensor.pv_array_power") == -15  # standby draw at night
    assert number(hass, "sensor.pv_array_mppt_1_current") == -0.1
    assert number(hass, "sensor.battery_1_power") == 1200  # discharging
    assert number(hass, "sensor.battery_1_current") == 23.4
    assert number(hass, "sensor.grid_meter_power") == -400  # exporting
    assert number(hass, "sensor.grid_meter_phase_1_power") == -400

    for entity_id in ("sensor.pv_array_power", "sensor.battery_1_power", "sensor.grid_meter_power"):
        attributes = hass.states.get(entity_id).attributes
        assert attributes["device_class"] == "power"
        assert attributes["state_class"] == "measurement"
        assert attributes["unit_of_measurement"] == "W"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ders_of_one_type_told_apart_by_der_id(
    hass: HomeAssistant, novacore: Novacore, two_pv_arrays: Any
) -> None:
    """Two PV DERs of the device list and one unknown DER id become three devices."""
    entry = two_pv_arrays
    pv = {"type": "pv", "make": "Sungrow", "timestamp": TS}
    for der_id, watts in (("der-east", -1000), ("der-west", -2000), ("der-garage", -300)):
        await send(hass, novacore, entry, {**pv, "der_id": der_id, "W": watts})
    assert number(hass, "sensor.east_roof_power") == 1000
    assert number(hass, "sensor.west_roof_power") == 2000
    assert number(hass, "sensor.solar_der_garage_power") == 300

    registry = er.async_get(hass)
    for der_id in ("der-east", "der-west", "der-garage"):
        assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_{der_id}_power")
    devices = devices_of(hass, entry)
    inverter = devices[(DOMAIN, f"{SITE_ID}_dev-inv")]
    site = devices[(DOMAIN, SITE_ID)]
    assert devices[(DOMAIN, f"{SITE_ID}_der-east")].via_device_id == inverter.id
    assert devices[(DOMAIN, f"{SITE_ID}_der-west")].via_device_id == inverter.id
    # A DER id the device list does not know hangs off the site.
    garage = devices[(DOMAIN, f"{SITE_ID}_der-garage")]
    assert garage.via_device_id == site.id
    assert garage.name == "Solar der-garage"

    # The next readings still go to the right DER.
    await send(
        hass, novacore, entry, {"type": "pv", "der_id": "der-west", "W": -2100, "timestamp": TS + 1}
    )
    assert number(hass, "sensor.east_roof_power") == 1000
    assert number(hass, "sensor.west_roof_power") == 2100
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_readings_without_der_id(
    hass: HomeAssistant, novacore: Novacore, two_pv_arrays: Any
) -> None:
    """Readings without a DER id find their DER by type, or by type and make.

    - The site has one DER of the reading's type: the reading belongs to it (battery, meter).
    - The site has several (two PV arrays here): the reading cannot be matched to one of them,
      so readings are grouped by type and make ("Solar Sungrow", "Solar SMA"), or by type alone
      when there is no make ("Solar"). These groups hang off the site, not off a listed device.
    """
    entry = two_pv_arrays
    for reading in (
        {"type": "battery", "make": "BYD", "W": 500},
        {"type": "meter", "make": "Kamstrup", "W": 700},
        {"type": "pv", "make": "Sungrow", "W": -1000},
        {"type": "pv", "make": "SMA", "W": -2000},
        {"type": "pv", "W": -3000},
    ):
        await send(hass, novacore, entry, {**reading, "timestamp": TS})
    assert number(hass, "sensor.battery_1_power") == -500
    assert number(hass, "sensor.grid_meter_power") == 700
    assert number(hass, "sensor.solar_sungrow_power") == 1000
    assert number(hass, "sensor.solar_sma_power") == 2000
    assert number(hass, "sensor.solar_power") == 3000

    registry = er.async_get(hass)
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_der-bat_power")
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_pv_sungrow_power")
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_pv_power")
    devices = devices_of(hass, entry)
    assert devices[(DOMAIN, f"{SITE_ID}_pv_sma")].manufacturer == "SMA"
    assert devices[(DOMAIN, f"{SITE_ID}_pv_sma")].via_device_id == devices[(DOMAIN, SITE_ID)].id
    assert not any(
        der in group.key for group in entry.runtime_data.data.values() for der in ("east", "west")
    )

    await send(
        hass, novacore, entry, {"type": "pv", "make": "SMA", "W": -2200, "timestamp": TS + 1}
    )
    assert number(hass, "sensor.solar_sma_power") == 2200
    assert number(hass, "sensor.solar_sungrow_power") == 1000
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unknown_der_type(hass: HomeAssistant, novacore: Novacore) -> None:
    """An unknown DER type gets disabled-by-default sensors whose units come from suffixes."""
    entry = await setup_fast(hass, novacore)
    reading = {
        "type": "heat_pump",
        "W": 7400,
        "session_Wh": 1200,
        "total_charged_Wh": 5000,
        "temperature_C": 31.5,
        "SoC_fract": 0.8,
        "V": 230,
        "mode_code": 3,
        "timestamp": TS,
    }
    await send(hass, novacore, entry, reading)
    registry = er.async_get(hass)
    expected = {
        "w": ("W", "power", "measurement"),
        "session_wh": ("Wh", "energy_storage", "measurement"),
        "total_charged_wh": ("Wh", "energy", "total_increasing"),
        "temperature_c": ("°C", "temperature", "measurement"),
        "soc_fract": ("%", None, "measurement"),
        "v": ("V", "voltage", "measurement"),
        "mode_code": (None, None, "measurement"),
    }
    entity_ids = {}
    for key, (unit, device_class, state_class) in expected.items():
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_heat_pump_{key}")
        assert entity_id is not None, key
        entity_ids[key] = entity_id
        registry_entry = registry.async_get(entity_id)
        assert registry_entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION, key
        assert registry_entry.unit_of_measurement == unit, key
        assert registry_entry.original_device_class == device_class, key
        assert registry_entry.capabilities == {"state_class": state_class}, key
        assert hass.states.get(entity_id) is None  # disabled: no state
    devices = devices_of(hass, entry)
    assert devices[(DOMAIN, f"{SITE_ID}_heat_pump")].name == "Heat Pump"
    # Two spellings of one field feed one sensor rather than two with one unique id.
    group = entry.runtime_data.data["heat_pump"]
    await send(hass, novacore, entry, {"type": "heat_pump", "Mode_Code": 4, "timestamp": TS + 1})
    assert group.fields["Mode_Code"][0] is group.fields["mode_code"][0]
    assert group.fields["mode_code"][0].value == 4

    # Enabled, the sensors show their values.
    for key in ("soc_fract", "total_charged_wh"):
        registry.async_update_entity(entity_ids[key], disabled_by=None)
    await reload_fast(hass, novacore, entry)
    await send(hass, novacore, entry, {**reading, "timestamp": TS + 2})
    assert number(hass, entity_ids["soc_fract"]) == 80
    assert number(hass, entity_ids["total_charged_wh"]) == 5000
    assert hass.states.get(entity_ids["w"]) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_only_changed_entities_are_written(hass: HomeAssistant, novacore: Novacore) -> None:
    """A repeated reading writes nothing; a changed value writes only its own entity."""
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, METER)
    assert number(hass, "sensor.grid_meter_power") == 850

    changed: list[str] = []
    reported: list[str] = []

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        changed.append(event.data["entity_id"])

    @callback
    def _reported(event: Event[Any]) -> None:
        reported.append(event.data["entity_id"])

    @callback
    def _any(_data: Any) -> bool:
        return True

    unsubs = [
        hass.bus.async_listen(EVENT_STATE_CHANGED, _changed),
        hass.bus.async_listen(EVENT_STATE_REPORTED, _reported, event_filter=_any),
    ]
    await send(hass, novacore, entry, {**METER, "timestamp": METER["timestamp"] + 1000})
    await send(hass, novacore, entry, {**METER, "timestamp": METER["timestamp"] + 2000})
    assert changed == []
    assert reported == []

    await send(hass, novacore, entry, {**METER, "W": 900, "timestamp": METER["timestamp"] + 3000})
    assert changed == ["sensor.grid_meter_power"]
    assert reported == []
    assert entry.runtime_data.data["der-meter"].readings == 4
    for unsub in unsubs:
        unsub()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_out_of_order_and_duplicate_readings_dropped(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """A DER's readings as old as or older than the last applied one change nothing."""
    entry = await setup_fast(hass, novacore)
    meter = {"type": "meter", "der_id": "der-meter"}
    for fields in (
        {"W": 900, "total_import_Wh": 5000, "timestamp": TS},
        # Older, then as old: both dropped, even the higher total.
        {"W": 100, "total_import_Wh": 9000, "timestamp": TS - 1},
        {"W": 200, "total_import_Wh": 9000, "timestamp": TS},
        # Seconds and ISO timestamps are compared with milliseconds.
        {"W": 300, "timestamp": "2024-03-06T15:59:59Z"},
        {"W": 400, "timestamp": TS // 1000},
    ):
        await send(hass, novacore, entry, {**meter, **fields})
    assert number(hass, "sensor.grid_meter_power") == 900
    assert number(hass, "sensor.grid_meter_energy_imported") == 5
    group = entry.runtime_data.data["der-meter"]
    assert group.dropped_stale == 4
    assert group.readings == 1

    await send(
        hass, novacore, entry, {**meter, "W": 950, "total_import_Wh": 5100, "timestamp": TS + 1}
    )
    assert number(hass, "sensor.grid_meter_power") == 950
    assert number(hass, "sensor.grid_meter_energy_imported") == 5.1
    # Without a timestamp, a reading cannot be judged stale: it is applied.
    await send(hass, novacore, entry, {**meter, "W": 960})
    assert number(hass, "sensor.grid_meter_power") == 960
    # Another DER's clock is its own.
    await send(
        hass, novacore, entry, {"type": "pv", "der_id": "der-pv", "W": -5, "timestamp": TS - 5}
    )
    assert number(hass, "sensor.pv_array_power") == 5
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_new_entity_first_shows_its_value(hass: HomeAssistant, novacore: Novacore) -> None:
    """The first reading of a DER creates its entities showing their values at once: no first
    state is unavailable (Home Assistant adds an entity in the caller's turn, and writes a total's
    state while it registers its unit: both come after the value now)."""
    entry = await setup_fast(hass, novacore)
    charger = {
        "type": "v2x_charger",
        "der_id": "der-evc",
        "W": 7400,
        "total_charge_Wh": 1_250_000,
        "status": "charging",
        "plug_connected": True,
        "timestamp": TS,
    }
    with first_states(hass) as first:
        await send(hass, novacore, entry, charger)
        await hass.async_block_till_done()
    assert sorted(first.values()) == ["1250.0", "7400.0", "charging", "on"], first
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_reading_from_the_future_does_not_freeze_its_der(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """A reading stamped in 2100 is rejected and counted: the DER's next genuine readings are
    still newer than the last applied one, and its total still moves."""
    entry = await setup_fast(hass, novacore)
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "W": 900, "total_import_Wh": 5000, "timestamp": TS})
    for timestamp in (4_102_444_800_000, "2100-01-01T00:00:00Z"):
        await send(
            hass,
            novacore,
            entry,
            {**meter, "W": 1, "total_import_Wh": 9_999_999, "timestamp": timestamp},
        )
    assert number(hass, "sensor.grid_meter_power") == 900
    await send(
        hass, novacore, entry, {**meter, "W": 950, "total_import_Wh": 5100, "timestamp": TS + 1}
    )
    assert number(hass, "sensor.grid_meter_power") == 950
    assert number(hass, "sensor.grid_meter_energy_imported") == 5.1
    stream = entry.runtime_data.diagnostics()["stream"]
    assert stream["rejected"] == {"timestamp_in_future": 2}
    assert entry.runtime_data.data["der-meter"].dropped_stale == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_total_never_moves_backwards(hass: HomeAssistant, novacore: Novacore) -> None:
    """Glitches leave a total alone; a meter reset confirmed by the next reading is applied."""
    entry = await setup_fast(hass, novacore)
    entity_id = "sensor.grid_meter_energy_imported"
    steps = [
        (42000, 42.0),  # first value
        (41000, 42.0),  # small drop: a glitch
        (100, 42.0),  # a lone large drop: not yet a reset
        (43000, 43.0),  # the low reading was a glitch
        (50, 43.0),  # large drop: candidate
        (80, 0.08),  # confirmed: the meter was reset
        (120, 0.12),
    ]
    meter = {"type": "meter", "der_id": "der-meter"}
    for index, (value, shown) in enumerate(steps):
        await send(
            hass, novacore, entry, {**meter, "total_import_Wh": value, "timestamp": TS + index}
        )
        assert number(hass, entity_id) == shown, (index, value)
    guard = entry.runtime_data.data["der-meter"].points["energy_imported"].guard
    assert guard.resets == 1
    assert guard.rejected == 3
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_totals_restored_after_restart(hass: HomeAssistant, novacore: Novacore) -> None:
    """A restored total and its source time are the floor for readings replayed after a restart."""
    entity_id = "sensor.grid_meter_energy_imported"
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(entity_id, "50.0"),
                {
                    "native_value": 50000,
                    "native_unit_of_measurement": "Wh",
                    "last_timestamp": TS + 10_000,
                },
            )
        ],
    )
    entry = await setup_fast(hass, novacore)
    meter = {"type": "meter", "der_id": "der-meter"}
    # Replayed readings from before the restart: lower, and higher but older.
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 42000, "timestamp": TS + 5000})
    assert number(hass, entity_id) == 50
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 60000, "timestamp": TS + 6000})
    assert number(hass, entity_id) == 50
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 51000, "timestamp": TS + 20_000})
    assert number(hass, entity_id) == 51
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unusable_restored_totals_are_ignored(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """Stored data that cannot be read back leaves a total to start from the stream."""
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.grid_meter_energy_imported", "x"),
                {"native_value": "x", "native_unit_of_measurement": "Wh", "last_timestamp": TS},
            ),
            (State("sensor.grid_meter_energy_exported", "1.0"), {"something": "else"}),
        ],
    )
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter", "timestamp": TS - 1})
    assert number(hass, "sensor.grid_meter_energy_imported") == 42
    assert number(hass, "sensor.grid_meter_energy_exported") == 31
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_totals_survive_reload(hass: HomeAssistant, novacore: Novacore) -> None:
    """A reload stores each total with its source time; an older replay cannot raise it."""
    entity_id = "sensor.grid_meter_energy_imported"
    entry = await setup_fast(hass, novacore)
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 50000, "timestamp": TS + 10_000})
    await reload_fast(hass, novacore, entry)
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 60000, "timestamp": TS + 6000})
    assert number(hass, entity_id) == 50
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 50500, "timestamp": TS + 11_000})
    assert number(hass, entity_id) == 50.5
    assert await hass.config_entries.async_unload(entry.entry_id)
