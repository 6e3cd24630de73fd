"""Live Novacore readings through a real SSE server into a real Home Assistant."""

from __future__ import annotations

from datetime import timedelta
import json
import logging
import time
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.energy_telemetry import (
    coordinator as coordinator_module,
)
from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.coordinator import Group, Point
from custom_components.energy_telemetry.novacore.coordinator import (
    MAX_FIELDS_PER_DER,
    NovacoreCoordinator,
)
from custom_components.energy_telemetry.novacore.descriptions import novacore_description
from custom_components.energy_telemetry.protocol import novacore as novacore_module
from custom_components.energy_telemetry.protocol.novacore import NovacoreClient

from .conftest import SITE_ID, Novacore, wait_for

PV = {
    "type": "pv",
    "der_id": "der-pv",
    "make": "Sungrow",
    "W": -2500,
    "rated_power_W": 10000,
    "mppt1_V": 400,
    "mppt1_A": -6.25,
    "mppt2_V": 380,
    "mppt2_A": -0.5,
    "total_generation_Wh": 150000,
    "timestamp": 1709740800000,
    "read_time_ms": 45,
}
BATTERY = {
    "type": "battery",
    "make": "BYD",
    "W": 3000,
    "SoC_nom_fract": 0.42,
    "V": 51.2,
    "A": 58.6,
    "total_charge_Wh": 85000,
    "total_discharge_Wh": 78000,
    "timestamp": 1709740800000,
}
METER = {
    "type": "meter",
    "make": "Kamstrup",
    "W": 850,
    "Hz": 50.01,
    "L1_V": 230,
    "L1_A": 3.7,
    "L2_V": 231,
    "L2_A": 0.0,
    "L3_V": 229,
    "L3_A": 0.0,
    "total_import_Wh": 42000,
    "total_export_Wh": 31000,
    "timestamp": 1709740800000,
}


async def setup_novacore(hass: HomeAssistant, novacore: Novacore, **creds: str) -> Any:
    """Add the site through the real config flow and wait for the stream."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "novacore"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"api_url": novacore.url, **(creds or {"private_key": novacore.private_key_pem})},
    )
    assert result["type"] is FlowResultType.FORM, result
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"site_id": SITE_ID})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await novacore.server.wait_for_streams(SITE_ID, 1)
    return entry


async def test_readings_become_states(hass: HomeAssistant, novacore: Novacore) -> None:
    """The seed's three payloads become sensors with Home Assistant's sign conventions."""
    entry = await setup_novacore(hass, novacore)
    for payload in (PV, BATTERY, METER):
        await novacore.push(payload)
    await wait_for(lambda: hass.states.get("sensor.grid_meter_energy_exported"))
    await hass.async_block_till_done()

    def value(entity_id: str) -> float:
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        return float(state.state)

    assert value("sensor.pv_array_power") == 2500  # producing: positive
    assert value("sensor.pv_array_mppt_1_voltage") == 400
    assert value("sensor.pv_array_mppt_1_current") == 6.25
    assert value("sensor.pv_array_mppt_2_current") == 0.5
    assert value("sensor.pv_array_energy_produced") == 150  # shown in kWh
    assert value("sensor.battery_1_power") == -3000  # charging: negative
    assert value("sensor.battery_1_battery") == 42
    assert value("sensor.battery_1_current") == -58.6
    assert value("sensor.battery_1_energy_charged") == 85
    assert value("sensor.grid_meter_power") == 850  # importing: positive
    assert value("sensor.grid_meter_frequency") == 50.01
    assert value("sensor.grid_meter_phase_1_voltage") == 230
    assert value("sensor.grid_meter_energy_imported") == 42

    energy = hass.states.get("sensor.grid_meter_energy_imported")
    assert energy.attributes["device_class"] == "energy"
    assert energy.attributes["state_class"] == "total_increasing"

    registry = er.async_get(hass)
    read_time = registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_der-pv_read_time_ms")
    assert read_time is not None
    assert registry.async_get(read_time).disabled_by is er.RegistryEntryDisabler.INTEGRATION

    devices = dr.async_get(hass)
    by_identifier = {
        identifier: device
        for device in dr.async_entries_for_config_entry(devices, entry.entry_id)
        for identifier in device.identifiers
    }
    pv_device = by_identifier[(DOMAIN, f"{SITE_ID}_der-pv")]
    assert pv_device.manufacturer == "Sungrow"
    inverter = devices.async_get(pv_device.via_device_id)
    assert inverter.name == "Sungrow Inverter"
    assert inverter.serial_number == "SN12345"
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- helpers of the tests below ---------------------------------------------------------------

TS = 1709740800000


def _fast(entry: Any) -> NovacoreCoordinator:
    """Shorten the reconnect backoff so that a test does not wait for it."""
    coordinator: NovacoreCoordinator = entry.runtime_data
    coordinator.stream.backoff_initial = 0.02
    coordinator.stream.backoff_max = 0.1
    return coordinator


async def setup_fast(hass: HomeAssistant, novacore: Novacore, **creds: str) -> Any:
    """Set up the site (as setup_novacore) with a short reconnect backoff."""
    entry = await setup_novacore(hass, novacore, **creds)
    _fast(entry)
    return entry


async def send(hass: HomeAssistant, novacore: Novacore, entry: Any, data: Any, **kw: Any) -> None:
    """Push one event and wait until the integration has handled it."""
    stats = entry.runtime_data.stream.stats
    before = stats.events + stats.ignored_events
    await novacore.push(data, **kw)
    await wait_for(lambda: stats.events + stats.ignored_events > before)
    await hass.async_block_till_done()


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _float(hass: HomeAssistant, entity_id: str) -> float:
    return float(_state(hass, entity_id))


def _reauth_flows(hass: HomeAssistant, entry: Any) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["context"]["source"] == SOURCE_REAUTH
        and flow["context"].get("entry_id") == entry.entry_id
    ]


def _devices_by_identifier(hass: HomeAssistant, entry: Any) -> dict[Any, dr.DeviceEntry]:
    registry = dr.async_get(hass)
    return {
        identifier: device
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        for identifier in device.identifiers
    }


TWO_PV_DEVICES: list[dict[str, Any]] = [
    {
        "id": "dev-inv",
        "name": "Sungrow Inverter",
        "type": "inverter",
        "hardware_id": "SN12345",
        "ders": [
            {"id": "der-east", "name": "East roof", "type": "solar"},
            {"id": "der-west", "name": "West roof", "type": "solar"},
            {"id": "der-bat", "name": "battery_1", "type": "battery"},
        ],
    },
    {
        "id": "dev-meter",
        "name": "Kamstrup Meter",
        "type": "meter",
        "ders": [{"id": "der-meter", "name": "grid-meter", "type": "meter"}],
    },
]


# --- values ----------------------------------------------------------------------------------


async def test_sign_conventions(hass: HomeAssistant, novacore: Novacore) -> None:
    """Sourceful's signs become Home Assistant's for PV, battery and meter, both directions."""
    entry = await setup_fast(hass, novacore)
    pv = {"type": "pv", "der_id": "der-pv", "timestamp": TS}
    battery = {"type": "battery", "der_id": "der-bat", "timestamp": TS}
    meter = {"type": "meter", "der_id": "der-meter", "timestamp": TS}

    await send(hass, novacore, entry, {**pv, "W": -2500, "mppt1_A": -6.25})
    await send(hass, novacore, entry, {**battery, "W": 3000, "A": 58.6})
    await send(hass, novacore, entry, {**meter, "W": 850, "L1_W": 850})
    assert _float(hass, "sensor.pv_array_power") == 2500  # producing
    assert _float(hass, "sensor.pv_array_mppt_1_current") == 6.25
    assert _float(hass, "sensor.battery_1_power") == -3000  # charging
    assert _float(hass, "sensor.battery_1_current") == -58.6
    assert _float(hass, "sensor.grid_meter_power") == 850  # importing
    assert _float(hass, "sensor.grid_meter_phase_1_power") == 850

    later = {"timestamp": TS + 1000}
    await send(hass, novacore, entry, {**pv, **later, "W": 15, "mppt1_A": 0.1})
    await send(hass, novacore, entry, {**battery, **later, "W": -1200, "A": -23.4})
    await send(hass, novacore, entry, {**meter, **later, "W": -400, "L1_W": -400})
    assert _float(hass, "sensor.pv_array_power") == -15  # standby draw at night
    assert _float(hass, "sensor.pv_array_mppt_1_current") == -0.1
    assert _float(hass, "sensor.battery_1_power") == 1200  # discharging
    assert _float(hass, "sensor.battery_1_current") == 23.4
    assert _float(hass, "sensor.grid_meter_power") == -400  # exporting
    assert _float(hass, "sensor.grid_meter_phase_1_power") == -400

    for entity_id in ("sensor.pv_array_power", "sensor.battery_1_power", "sensor.grid_meter_power"):
        attributes = hass.states.get(entity_id).attributes
        assert attributes["device_class"] == "power"
        assert attributes["state_class"] == "measurement"
        assert attributes["unit_of_measurement"] == "W"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ders_of_one_type_told_apart_by_der_id(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """Two PV DERs of the device list and one unknown DER id become three devices."""
    novacore.server.set_devices(SITE_ID, TWO_PV_DEVICES)
    entry = await setup_fast(hass, novacore)
    for der_id, watts in (("der-east", -1000), ("der-west", -2000), ("der-garage", -300)):
        await send(
            hass,
            novacore,
            entry,
            {"type": "pv", "der_id": der_id, "make": "Sungrow", "W": watts, "timestamp": TS},
        )
    assert _float(hass, "sensor.east_roof_power") == 1000
    assert _float(hass, "sensor.west_roof_power") == 2000
    assert _float(hass, "sensor.solar_der_garage_power") == 300

    registry = er.async_get(hass)
    for der_id in ("der-east", "der-west", "der-garage"):
        assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_{der_id}_power")
    devices = _devices_by_identifier(hass, entry)
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
    assert _float(hass, "sensor.east_roof_power") == 1000
    assert _float(hass, "sensor.west_roof_power") == 2100
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_readings_without_der_id(hass: HomeAssistant, novacore: Novacore) -> None:
    """Readings without a DER id find their DER by type, or by type and make.

    - The site has one DER of the reading's type: the reading belongs to it (battery, meter).
    - The site has several (two PV arrays here): the reading cannot be matched to one of them,
      so readings are grouped by type and make ("Solar Sungrow", "Solar SMA"), or by type alone
      when there is no make ("Solar"). These groups hang off the site, not off a listed device.
    """
    novacore.server.set_devices(SITE_ID, TWO_PV_DEVICES)
    entry = await setup_fast(hass, novacore)
    for reading in (
        {"type": "battery", "make": "BYD", "W": 500},
        {"type": "meter", "make": "Kamstrup", "W": 700},
        {"type": "pv", "make": "Sungrow", "W": -1000},
        {"type": "pv", "make": "SMA", "W": -2000},
        {"type": "pv", "W": -3000},
    ):
        await send(hass, novacore, entry, {**reading, "timestamp": TS})
    assert _float(hass, "sensor.battery_1_power") == -500
    assert _float(hass, "sensor.grid_meter_power") == 700
    assert _float(hass, "sensor.solar_sungrow_power") == 1000
    assert _float(hass, "sensor.solar_sma_power") == 2000
    assert _float(hass, "sensor.solar_power") == 3000

    registry = er.async_get(hass)
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_der-bat_power")
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_pv_sungrow_power")
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_pv_power")
    devices = _devices_by_identifier(hass, entry)
    assert devices[(DOMAIN, f"{SITE_ID}_pv_sma")].manufacturer == "SMA"
    assert devices[(DOMAIN, f"{SITE_ID}_pv_sma")].via_device_id == devices[(DOMAIN, SITE_ID)].id
    assert not any(
        der in group.key for group in entry.runtime_data.data.values() for der in ("east", "west")
    )

    await send(
        hass, novacore, entry, {"type": "pv", "make": "SMA", "W": -2200, "timestamp": TS + 1}
    )
    assert _float(hass, "sensor.solar_sma_power") == 2200
    assert _float(hass, "sensor.solar_sungrow_power") == 1000
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
    devices = _devices_by_identifier(hass, entry)
    assert devices[(DOMAIN, f"{SITE_ID}_heat_pump")].name == "Heat Pump"
    # Two spellings of one field feed one sensor rather than two with one unique id.
    group = entry.runtime_data.data["heat_pump"]
    await send(hass, novacore, entry, {"type": "heat_pump", "Mode_Code": 4, "timestamp": TS + 1})
    assert group.fields["Mode_Code"][0] is group.fields["mode_code"][0]
    assert group.fields["mode_code"][0].value == 4

    # Enabled, the sensors show their values.
    for key in ("soc_fract", "total_charged_wh"):
        registry.async_update_entity(entity_ids[key], disabled_by=None)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID)
    _fast(entry)
    await send(hass, novacore, entry, {**reading, "timestamp": TS + 2})
    assert _float(hass, entity_ids["soc_fract"]) == 80
    assert _float(hass, entity_ids["total_charged_wh"]) == 5000
    assert hass.states.get(entity_ids["w"]) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_fields_per_der_are_capped(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A DER sending ever more fields cannot flood the entity registry, nor the coordinator."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    flood = {f"x{index}_W": index for index in range(MAX_FIELDS_PER_DER + 50)}
    await send(hass, novacore, entry, {"type": "gadget", "timestamp": TS, **flood})
    group = coordinator.data["gadget"]
    assert len(group.points) == MAX_FIELDS_PER_DER
    assert len(group.fields) == MAX_FIELDS_PER_DER  # nothing kept of the dropped fields
    registry = er.async_get(hass)
    gadget = [
        entity
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
        if entity.unique_id.startswith(f"{SITE_ID}_gadget_")
    ]
    assert len(gadget) == MAX_FIELDS_PER_DER
    await send(
        hass, novacore, entry, {"type": "gadget", "timestamp": TS + 1, "new_W": 1, "x0_W": 7}
    )
    assert len(group.points) == MAX_FIELDS_PER_DER
    assert group.points["x0_w"].value == 7.0  # what it had keeps working
    assert coordinator.dropped_at_limit["fields_limit"] == 51
    warnings = [r for r in caplog.records if "fields limit of 200 is reached" in r.getMessage()]
    assert len(warnings) == 1
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"fields_limit_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"name": entry.title, "limit": "200", "item": "gadget"}
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"fields_limit_{entry.entry_id}") is None


async def test_only_changed_entities_are_written(hass: HomeAssistant, novacore: Novacore) -> None:
    """A repeated reading writes nothing; a changed value writes only its own entity."""
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, METER)
    assert _float(hass, "sensor.grid_meter_power") == 850

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
    await send(
        hass,
        novacore,
        entry,
        {**meter, "W": 900, "total_import_Wh": 5000, "timestamp": TS},
    )
    # Older, then as old: both dropped, even the higher total.
    await send(
        hass,
        novacore,
        entry,
        {**meter, "W": 100, "total_import_Wh": 9000, "timestamp": TS - 1},
    )
    await send(
        hass,
        novacore,
        entry,
        {**meter, "W": 200, "total_import_Wh": 9000, "timestamp": TS},
    )
    # Seconds and ISO timestamps are compared with milliseconds.
    await send(
        hass,
        novacore,
        entry,
        {**meter, "W": 300, "timestamp": "2024-03-06T15:59:59Z"},
    )
    await send(hass, novacore, entry, {**meter, "W": 400, "timestamp": TS // 1000})
    assert _float(hass, "sensor.grid_meter_power") == 900
    assert _float(hass, "sensor.grid_meter_energy_imported") == 5
    group = entry.runtime_data.data["der-meter"]
    assert group.dropped_stale == 4
    assert group.readings == 1

    await send(
        hass,
        novacore,
        entry,
        {**meter, "W": 950, "total_import_Wh": 5100, "timestamp": TS + 1},
    )
    assert _float(hass, "sensor.grid_meter_power") == 950
    assert _float(hass, "sensor.grid_meter_energy_imported") == 5.1
    # Without a timestamp, a reading cannot be judged stale: it is applied.
    await send(hass, novacore, entry, {**meter, "W": 960})
    assert _float(hass, "sensor.grid_meter_power") == 960
    # Another DER's clock is its own.
    await send(
        hass, novacore, entry, {"type": "pv", "der_id": "der-pv", "W": -5, "timestamp": TS - 5}
    )
    assert _float(hass, "sensor.pv_array_power") == 5
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_new_entity_first_shows_its_value(hass: HomeAssistant, novacore: Novacore) -> None:
    """The first reading of a DER creates its entities showing their values at once: no first
    state is unavailable (Home Assistant adds an entity in the caller's turn, and writes a total's
    state while it registers its unit: both come after the value now)."""
    entry = await setup_fast(hass, novacore)
    first: dict[str, str] = {}

    @callback
    def _listener(event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if state is not None:
            first.setdefault(event.data["entity_id"], state.state)

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, _listener)
    await send(
        hass,
        novacore,
        entry,
        {
            "type": "v2x_charger",
            "der_id": "der-evc",
            "W": 7400,
            "total_charge_Wh": 1_250_000,
            "status": "charging",
            "plug_connected": True,
            "timestamp": TS,
        },
    )
    await hass.async_block_till_done()
    unsub()
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
    assert _float(hass, "sensor.grid_meter_power") == 900
    await send(
        hass, novacore, entry, {**meter, "W": 950, "total_import_Wh": 5100, "timestamp": TS + 1}
    )
    assert _float(hass, "sensor.grid_meter_power") == 950
    assert _float(hass, "sensor.grid_meter_energy_imported") == 5.1
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
    for index, (value, shown) in enumerate(steps):
        await send(
            hass,
            novacore,
            entry,
            {
                "type": "meter",
                "der_id": "der-meter",
                "total_import_Wh": value,
                "timestamp": TS + index,
            },
        )
        assert _float(hass, entity_id) == shown, (index, value)
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
    assert _float(hass, entity_id) == 50
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 60000, "timestamp": TS + 6000})
    assert _float(hass, entity_id) == 50
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 51000, "timestamp": TS + 20_000})
    assert _float(hass, entity_id) == 51
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
    assert _float(hass, "sensor.grid_meter_energy_imported") == 42
    assert _float(hass, "sensor.grid_meter_energy_exported") == 31
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_totals_survive_reload(hass: HomeAssistant, novacore: Novacore) -> None:
    """A reload stores each total with its source time; an older replay cannot raise it."""
    entity_id = "sensor.grid_meter_energy_imported"
    entry = await setup_fast(hass, novacore)
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 50000, "timestamp": TS + 10_000})
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID)
    _fast(entry)
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 60000, "timestamp": TS + 6000})
    assert _float(hass, entity_id) == 50
    await send(hass, novacore, entry, {**meter, "total_import_Wh": 50500, "timestamp": TS + 11_000})
    assert _float(hass, entity_id) == 50.5
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- connection --------------------------------------------------------------------------------


async def test_stream_cut_mid_event(hass: HomeAssistant, novacore: Novacore) -> None:
    """A cut mid-event leaves no half reading; the stream resumes after the last event id."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    pv = {"type": "pv", "der_id": "der-pv"}
    await send(hass, novacore, entry, {**pv, "W": -1000, "timestamp": TS}, event_id="1")
    await send(hass, novacore, entry, {**pv, "W": -2000, "timestamp": TS + 1}, event_id="2")
    # Long enough for the next push to happen while the client is away.
    coordinator.stream.backoff_initial = coordinator.stream.backoff_max = 0.4

    await server.cut_streams(SITE_ID, mid_event=True)
    assert server.open_streams(SITE_ID) == 0
    await novacore.push({**pv, "W": -3000, "timestamp": TS + 2}, event_id="3")
    assert _float(hass, "sensor.pv_array_power") == 2000

    await wait_for(lambda: _state(hass, "sensor.pv_array_power") == "3000.0")
    assert server.stream_connects == 2
    assert server.last_event_ids == [None, "2"]
    stats = coordinator.stream.stats
    assert stats.disconnects == 1
    assert stats.events == 3
    assert not stats.parse.rejected
    assert coordinator.stream.last_event_id == "3"
    assert set(coordinator.data) == {"der-pv", ""}  # and the site's consumption
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_half_open_connection(hass: HomeAssistant, novacore: Novacore) -> None:
    """A connection that goes silent is dropped after the read timeout and opened again."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stream = entry.runtime_data.stream
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    stream.read_timeout = 0.5
    await server.cut_streams(SITE_ID)  # the next connection uses the short read timeout
    await wait_for(lambda: server.stream_connects == 2 and stream.connected)

    server.silent = True
    await wait_for(lambda: server.stream_connects >= 4, timeout=20)  # < the 30 s grace
    assert "Timeout" in (stream.stats.last_error or "")
    assert _float(hass, "sensor.grid_meter_power") == 850  # within the grace period

    server.keepalive_interval = 0.1  # a live connection is never silent for long
    server.silent = False
    await wait_for(lambda: stream.connected and server.open_streams(SITE_ID) == 1)
    await send(hass, novacore, entry, {**METER, "W": 999, "timestamp": TS + 1}, event_id="9")
    assert _float(hass, "sensor.grid_meter_power") == 999
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_token_expiry_with_key(hass: HomeAssistant, novacore: Novacore) -> None:
    """With a key, an expired token mid-stream is replaced and the stream resumes."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stream = entry.runtime_data.stream
    await send(hass, novacore, entry, METER)
    verifies = server.verifies
    connects = server.stream_connects

    server.drop_streams_on_expiry = True
    server.expire_tokens()
    await wait_for(lambda: server.verifies > verifies and stream.connected)
    assert server.stream_connects == connects + 1
    await send(hass, novacore, entry, {**METER, "W": 123, "timestamp": TS + 1})
    assert _float(hass, "sensor.grid_meter_power") == 123
    assert entry.state is ConfigEntryState.LOADED
    assert not _reauth_flows(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_revoked_bare_token_starts_reauth(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A bare token cannot be renewed: reauth starts and entities go unavailable after grace."""
    server = novacore.server
    entry = await setup_fast(hass, novacore, token=server.issue_token(novacore.identity))
    coordinator = entry.runtime_data
    coordinator.grace_period = 0.2
    await send(hass, novacore, entry, METER)

    server.drop_streams_on_expiry = True
    server.revoke_all_tokens()
    await wait_for(lambda: _reauth_flows(hass, entry))
    await wait_for(lambda: _state(hass, "sensor.grid_meter_power") == STATE_UNAVAILABLE)
    assert server.verifies == 0  # nothing could be minted
    assert not coordinator.stream.connected
    refused = [r for r in caplog.records if "token was refused" in r.getMessage()]
    assert len(refused) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_malformed_events(hass: HomeAssistant, novacore: Novacore) -> None:
    """Junk on the stream is counted and skipped; the stream and the sensors keep working."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stats = entry.runtime_data.stream.stats
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "W": 850, "Hz": 50.0, "timestamp": TS})

    await server.push_raw(SITE_ID, "this is not an event stream\nnonsense: field\n\n")
    await server.push_raw(SITE_ID, "data: }{ not json\n\n")
    await novacore.push("{not json")
    await novacore.push(json.dumps([1, "x", None, {"no": "type"}, {"type": "meter"}]))
    await novacore.push({**meter, "W": 1, "timestamp": TS + 1}, event="keepalive")
    await novacore.push("[" * 50_000)
    await novacore.push(
        '{"type": "meter", "der_id": "der-meter", "W": 1' + "0" * 400 + ', "Hz": 49.5,'
        f' "timestamp": {TS + 2}}}'
    )
    await novacore.push({**meter, "W": 777, "timestamp": TS + 3, "padding": "x" * 2**20})
    await wait_for(lambda: stats.events == 7 and stats.ignored_events == 1)
    await hass.async_block_till_done()

    assert stats.parse.rejected == {
        "invalid_json": 3,
        "not_an_object": 3,
        "no_type": 1,
        "no_values": 1,
    }
    assert stats.parse.accepted == 3
    assert stats.disconnects == 0
    assert server.stream_connects == 1
    assert _float(hass, "sensor.grid_meter_power") == 777
    assert _float(hass, "sensor.grid_meter_frequency") == 49.5
    assert set(entry.runtime_data.data) == {"der-meter", ""}  # and the site's consumption
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_bytes_not_utf8_in_an_event(hass: HomeAssistant, novacore: Novacore) -> None:
    """An event that is not UTF-8 is rejected like any malformed one; the stream goes on."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stats = entry.runtime_data.stream.stats
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "W": 850, "timestamp": TS})

    await server.push_raw(SITE_ID, b"data: \xff\xfe\n\n")
    await send(hass, novacore, entry, {**meter, "W": 900, "timestamp": TS + 1})

    assert _float(hass, "sensor.grid_meter_power") == 900
    assert stats.parse.rejected == {"invalid_json": 1}
    assert stats.disconnects == 0
    assert server.stream_connects == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_retry_field_does_not_delay_reconnecting(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """`retry: 60000` then a clean end of stream: the reconnect follows the normal backoff."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stream = entry.runtime_data.stream
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "W": 850, "timestamp": TS}, retry=60000)

    ended = time.monotonic()
    for open_stream in server._sites[SITE_ID].streams:  # no public way to end a stream cleanly
        open_stream.close()
    await wait_for(lambda: server.stream_connects == 2 and stream.connected, timeout=45)
    assert server.stream_connects == 2
    # The backoff cap is 0.1 s; obeying retry: would have taken 60 s. 30 s leaves a busy machine
    # all the time it needs and still tells the two apart.
    assert time.monotonic() - ended < 30
    assert stream.stats.disconnects == 1
    await send(hass, novacore, entry, {**meter, "W": 900, "timestamp": TS + 1})
    assert _float(hass, "sensor.grid_meter_power") == 900
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_connection_down_past_grace_period(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Down for longer than the grace period: unavailable, one warning; back: one info line."""
    caplog.set_level(logging.INFO, logger="custom_components.energy_telemetry")
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    coordinator.grace_period = 0.2
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    await send(hass, novacore, entry, {**PV, "timestamp": TS})
    entities = ("sensor.grid_meter_power", "sensor.pv_array_power")

    port = server.port
    await server.stop()
    await wait_for(lambda: all(_state(hass, e) == STATE_UNAVAILABLE for e in entities))
    failures = coordinator.stream.stats.disconnects
    # Several more failed attempts while down: still one warning.
    await wait_for(lambda: coordinator.stream.stats.disconnects >= failures + 3)

    await server.start(port=port)
    await wait_for(lambda: all(_state(hass, e) != STATE_UNAVAILABLE for e in entities))
    assert _float(hass, "sensor.grid_meter_power") == 850
    assert _float(hass, "sensor.pv_array_power") == 2500

    ours = [r for r in caplog.records if r.name.startswith("custom_components.energy_telemetry")]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    infos = [r for r in ours if r.levelno == logging.INFO]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "connection down" in warnings[0].getMessage()
    assert len(infos) == 1, [r.getMessage() for r in infos]
    assert "connection restored" in infos[0].getMessage()
    assert not [r for r in ours if r.levelno > logging.WARNING]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_stream_down_from_the_start(
    hass: HomeAssistant,
    novacore: Novacore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream that cannot be opened after setup is reported once, and its recovery too."""
    caplog.set_level(logging.INFO, logger="custom_components.energy_telemetry")
    monkeypatch.setattr(coordinator_module, "STREAM_GRACE_PERIOD", timedelta(seconds=0.2))
    monkeypatch.setattr(novacore_module.stream, "BACKOFF_INITIAL", 0.02)
    monkeypatch.setattr(novacore_module.stream, "BACKOFF_MAX", 0.1)
    server = novacore.server
    server.fail_stream(502, count=1_000_000)
    entry = _entry(novacore, private_key=novacore.private_key_pem)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    def ours(level: int) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("custom_components.energy_telemetry") and r.levelno == level
        ]

    await wait_for(lambda: ours(logging.WARNING))
    assert "502" in ours(logging.WARNING)[0]
    server.fail_stream(502, count=0)
    await wait_for(lambda: entry.runtime_data.stream.connected)
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    assert _float(hass, "sensor.grid_meter_power") == 850
    assert len(ours(logging.WARNING)) == 1
    assert len(ours(logging.INFO)) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_short_outage_within_grace_period(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A reconnect within the grace period changes nothing visible and logs nothing."""
    caplog.set_level(logging.INFO, logger="custom_components.energy_telemetry")
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    await server.cut_streams(SITE_ID)
    await wait_for(lambda: server.stream_connects == 2 and entry.runtime_data.stream.connected)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=60))
    await hass.async_block_till_done()
    assert _float(hass, "sensor.grid_meter_power") == 850
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.energy_telemetry") and r.levelno >= logging.INFO
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_stale_der(hass: HomeAssistant, novacore: Novacore) -> None:
    """A DER that stops reporting goes unavailable; its next reading brings it back."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(hass, novacore, entry, {**PV, "timestamp": TS})
    await send(hass, novacore, entry, {**PV, "timestamp": TS + 1})
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    assert coordinator.data["der-pv"].interval is not None

    coordinator.data["der-pv"].last_seen = time.monotonic() - 3600
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done()
    assert _state(hass, "sensor.pv_array_power") == STATE_UNAVAILABLE
    assert _state(hass, "sensor.pv_array_energy_produced") == STATE_UNAVAILABLE
    assert _float(hass, "sensor.grid_meter_power") == 850  # the meter is not stale

    # The value is unchanged, yet the DER is back.
    await send(hass, novacore, entry, {**PV, "timestamp": TS + 2})
    assert _float(hass, "sensor.pv_array_power") == 2500
    assert _float(hass, "sensor.pv_array_energy_produced") == 150
    assert not coordinator.data["der-pv"].stale
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_closes_stream(hass: HomeAssistant, novacore: Novacore) -> None:
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, METER)
    assert server.open_streams(SITE_ID) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    await wait_for(lambda: server.open_streams(SITE_ID) == 0)
    await novacore.push({**METER, "W": 1, "timestamp": TS + 1})
    assert _state(hass, "sensor.grid_meter_power") == STATE_UNAVAILABLE
    assert server.stream_connects == 1


# --- setup -------------------------------------------------------------------------------------


def _entry(novacore: Novacore, **creds: str | None) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id=SITE_ID,
        data={
            "source": "novacore",
            "api_url": novacore.url,
            "private_key": None,
            "token": None,
            "site_id": SITE_ID,
            **creds,
        },
    )


async def test_setup_retries_when_unreachable(hass: HomeAssistant, novacore: Novacore) -> None:
    entry = _entry(novacore, private_key=novacore.private_key_pem)
    entry.add_to_hass(hass)
    novacore.server.fail_all(503)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert novacore.server.open_streams(SITE_ID) == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_with_refused_token_starts_reauth(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    token = novacore.server.issue_token(novacore.identity)
    novacore.server.revoke_all_tokens()
    entry = _entry(novacore, token=token)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert _reauth_flows(hass, entry)


async def test_setup_with_unusable_stored_key(hass: HomeAssistant, novacore: Novacore) -> None:
    entry = _entry(novacore, private_key="not a key")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "not a key" not in (entry.reason or "")


async def test_setup_without_device_list(hass: HomeAssistant, novacore: Novacore) -> None:
    """Without a device list, DERs are named after their type (and DER id)."""
    entry = _entry(novacore, token=novacore.server.issue_token(novacore.identity))
    entry.add_to_hass(hass)
    novacore.server.fail_all(404)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID)
    _fast(entry)
    await send(hass, novacore, entry, {"type": "battery", "W": 100, "timestamp": TS})
    await send(hass, novacore, entry, {"type": "pv", "der_id": "der-pv", "W": -5, "timestamp": TS})
    assert _float(hass, "sensor.battery_power") == -100
    assert _float(hass, "sensor.solar_der_pv_power") == 5
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- coordinator contracts that no stream event reaches -------------------------------------------


class _Entity:
    """Stands in for a sensor: records the writes the coordinator asks for."""

    def __init__(self, writes: list[str], name: str) -> None:
        self._writes = writes
        self._name = name

    def async_write_ha_state(self) -> None:
        self._writes.append(self._name)


def _bare_coordinator(hass: HomeAssistant) -> NovacoreCoordinator:
    entry = MockConfigEntry(domain=DOMAIN, title="Home", data={"source": "novacore"})
    entry.add_to_hass(hass)
    client = NovacoreClient(async_get_clientsession(hass), "http://127.0.0.1:9", token="t")
    return NovacoreCoordinator(hass, entry, client, SITE_ID)


async def test_points_known_before_the_platform(hass: HomeAssistant) -> None:
    """Points that exist before the sensor platform registers are handed to it at once."""
    coordinator = _bare_coordinator(hass)
    group = Group("g", "g", DeviceInfo(identifiers={(DOMAIN, "g")}))
    coordinator.data["g"] = group
    first = coordinator.async_add_point(group, novacore_description("meter", "W"))
    handed: list[Point] = []
    coordinator.async_set_new_points_listener(handed.extend)
    assert handed == [first]
    second = coordinator.async_add_point(group, novacore_description("meter", "Hz"))
    assert handed == [first, second]


async def test_group_seen_and_late_grace_timer(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """A stale group is rewritten when seen again; a grace timer firing late changes nothing."""
    coordinator = _bare_coordinator(hass)
    group = Group("g", "g", DeviceInfo(identifiers={(DOMAIN, "g")}), track_staleness=True)
    coordinator.data["g"] = group
    point = coordinator.async_add_point(group, novacore_description("meter", "W"))
    writes: list[str] = []
    point.entity = _Entity(writes, "power")  # type: ignore[assignment]

    group.stale = True
    coordinator.async_group_seen(group)
    assert writes == ["power"]
    assert not group.stale
    coordinator.async_group_seen(group)
    assert writes == ["power"]

    coordinator.async_connection_up()
    writes.clear()
    coordinator._async_grace_expired(dt_util.utcnow())
    assert coordinator.connection_available
    assert writes == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- diagnostics -------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", ["private_key", "token"])
async def test_diagnostics_hide_credentials(
    hass: HomeAssistant, novacore: Novacore, hass_client: ClientSessionGenerator, credential: str
) -> None:
    if credential == "private_key":
        secret = novacore.private_key_pem
    else:
        secret = novacore.server.issue_token(novacore.identity)
    entry = await setup_fast(hass, novacore, **{credential: secret})
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    secrets = [secret, *secret.splitlines(), novacore.private_key_raw_b64]
    token = await entry.runtime_data.client.async_token()
    secrets.append(token)
    secrets.extend(token.split("."))
    for item in secrets:
        if len(item) > 8 and not item.startswith("-----"):
            assert item not in text
    assert diagnostics["entry"]["data"][credential] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["site_id"] == SITE_ID
    meter = diagnostics["coordinator"]["groups"]["der-meter"]
    assert meter["points"]["power"]["value"] == 850
    assert await hass.config_entries.async_unload(entry.entry_id)
