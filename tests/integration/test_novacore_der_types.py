"""EV chargers, inverters and the new battery and PV fields through a real SSE server and a real
Home Assistant; how readings without a DER id find their DER; the wire factor of a DER."""

from __future__ import annotations

import json
import logging

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest

from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.novacore.coordinator import NovacoreGroup
from tests.helpers.novacore import der_number, der_state, devices_of, send, setup_fast
from tests.helpers.repository import INTEGRATION
from tests.helpers.site import EV, INVERTER, SITE_ID, TS, Novacore

# --- EV charger ---------------------------------------------------------------------------------


async def test_ev_charger(hass: HomeAssistant, novacore: Novacore) -> None:
    """A V2X charger: a device with power, status, plug, vehicle SoC, counters, limits."""
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, EV)
    der = "der-evc"
    expected = {
        "power": 7400,
        "current": 10.7,
        "voltage": 230.5,
        "frequency": 50.01,
        "l1_voltage": 230,
        "l1_current": 10.7,
        "l1_power": 2466,
        "dc_power": 7100,
        "dc_voltage": 400,
        "dc_current": 17.75,
        "vehicle_state_of_charge": 42,
        "target_energy_request": 28.5,
        "maximum_energy_request": 43.5,
        "minimum_energy_request": 9,
        "session_energy_charged": 3.5,
        "session_energy_discharged": 0,
        "energy_charged": 1250,
        "energy_discharged": 80,
        "charge_limit": 11000,
        "discharge_limit": 10000,
    }
    for key, value in expected.items():
        assert der_number(hass, der, key) == pytest.approx(value), key

    status = der_state(hass, der, "status")
    assert status.state == "charging"
    assert status.attributes["device_class"] == "enum"
    # Every option has a text, in the translation's order; Sourceful's "unavailable" is not one
    # (Home Assistant reserves it): it shows as "not_ready".
    strings = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
    states = strings["entity"]["sensor"]["ev_status"]["state"]
    assert status.attributes["options"] == list(states)
    assert "not_ready" in states
    assert "unavailable" not in states
    assert status.attributes["friendly_name"] == "garage-charger Status"
    plug = der_state(hass, der, "plug_connected", "binary_sensor")
    assert plug.state == "on"
    assert plug.attributes["device_class"] == "plug"
    assert der_state(hass, der, "protocol").state == "ISO15118-20"
    assert der_state(hass, der, "control_mode").state == "dynamic"

    registry = er.async_get(hass)
    for key in ("protocol", "control_mode"):
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_{der}_{key}")
        assert registry.async_get(entity_id).entity_category is er.EntityCategory.DIAGNOSTIC
    for key in ("energy_charged", "energy_discharged"):
        attributes = der_state(hass, der, key).attributes
        assert attributes["device_class"] == "energy"
        assert attributes["state_class"] == "total_increasing"
        assert attributes["unit_of_measurement"] == "kWh"
    for key in ("target_energy_request", "maximum_energy_request", "minimum_energy_request"):
        attributes = der_state(hass, der, key).attributes
        assert attributes["device_class"] == "energy_storage"
        assert attributes["state_class"] == "measurement"
    soc = der_state(hass, der, "vehicle_state_of_charge").attributes
    assert (soc["device_class"], soc["unit_of_measurement"]) == ("battery", "%")
    power = der_state(hass, der, "power").attributes
    assert (power["device_class"], power["state_class"]) == ("power", "measurement")

    devices = dr.async_get(hass)
    device = devices_of(hass, entry)[(DOMAIN, f"{SITE_ID}_{der}")]
    assert device.name == "garage-charger"
    assert devices.async_get(device.via_device_id).name == "Wallbox"

    # Vehicle-to-grid: negative power, discharging; then unplugged.
    await send(
        hass,
        novacore,
        entry,
        {
            **EV,
            "W": -5000,
            "A": -7.2,
            "status": "discharging",
            "session_discharge_Wh": 400,
            "timestamp": TS + 1000,
        },
    )
    assert der_number(hass, der, "power") == -5000
    assert der_number(hass, der, "current") == -7.2
    assert der_state(hass, der, "status").state == "discharging"
    assert der_number(hass, der, "session_energy_discharged") == 0.4
    await send(
        hass,
        novacore,
        entry,
        {**EV, "W": 0, "status": "unavailable", "plug_connected": False, "timestamp": TS + 2000},
    )
    assert der_state(hass, der, "status").state == "not_ready"
    assert der_state(hass, der, "plug_connected", "binary_sensor").state == "off"
    for older in ("suspended", "available", "preparing", "idle", "Sleeping", "error"):
        await send(hass, novacore, entry, {"type": "v2x_charger", "der_id": der, "status": older})
        assert der_state(hass, der, "status").state == older.lower()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ev_charger_unknown_status(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown status shows as unknown (never the last known one), logged once, counted."""
    caplog.set_level(logging.DEBUG, logger="custom_components.energy_telemetry")
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(hass, novacore, entry, EV)
    for index in range(3):
        await send(
            hass,
            novacore,
            entry,
            {**EV, "status": "finishing", "control_mode": "eco", "timestamp": TS + 1 + index},
        )
    assert der_state(hass, "der-evc", "status").state == STATE_UNKNOWN
    assert der_state(hass, "der-evc", "control_mode").state == STATE_UNKNOWN
    assert coordinator.unknown_texts == {"ev_charger.status": 3, "ev_charger.control_mode": 3}
    lines = [r.getMessage() for r in caplog.records if "not a known value" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "'finishing'" in lines[0]
    assert der_number(hass, "der-evc", "power") == 7400  # the rest of the reading is applied
    await send(hass, novacore, entry, {**EV, "status": "sleeping", "timestamp": TS + 10})
    assert der_state(hass, "der-evc", "status").state == "sleeping"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_field_sent_as_number_and_as_text_breaks_nothing(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """A field name that comes as a number in one reading (whose type word is not the charger's)
    and as the charger's documented text or boolean in another neither stops the stream nor
    freezes the charger's plug and status: numbers and texts are bound apart."""
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, EV)
    # Found by their DER ids, read as that DER's type: a number where the charger documents a
    # boolean or an enum is ignored, as is a boolean where the battery documents nothing.
    await send(
        hass,
        novacore,
        entry,
        {
            "type": "pv",
            "der_id": "der-evc",
            "W": 10,
            "plug_connected": 1,
            "status": 2,
            "timestamp": TS + 1,
        },
    )
    await send(
        hass,
        novacore,
        entry,
        {"type": "battery", "der_id": "der-bat", "W": 100, "plug_connected": 1, "timestamp": TS},
    )
    await send(
        hass,
        novacore,
        entry,
        {
            "type": "v2x_charger",
            "der_id": "der-bat",
            "plug_connected": True,
            "W": 200,
            "timestamp": TS + 1,
        },
    )
    await send(
        hass,
        novacore,
        entry,
        {**EV, "plug_connected": False, "status": "sleeping", "timestamp": TS + 2},
    )
    assert der_state(hass, "der-evc", "plug_connected", "binary_sensor").state == "off"
    assert der_state(hass, "der-evc", "status").state == "sleeping"
    assert der_number(hass, "der-bat", "power") == -200  # the stream still runs
    assert entry.runtime_data.stream.stats.disconnects == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ev_session_counters_restart(hass: HomeAssistant, novacore: Novacore) -> None:
    """A session counter restarts from 0 each session (confirmed by the next reading); a lone
    low reading is a glitch; the lifetime totals never go back."""
    entry = await setup_fast(hass, novacore)
    base = {"type": "v2x_charger", "der_id": "der-evc"}
    steps = [
        ({"session_charge_Wh": 12000, "total_charge_Wh": 500000}, 12.0),
        ({"session_charge_Wh": 0, "total_charge_Wh": 500000}, 12.0),  # a new session? not yet
        ({"session_charge_Wh": 150, "total_charge_Wh": 500150}, 0.15),  # confirmed
        ({"session_charge_Wh": 10, "total_charge_Wh": 400000}, 0.15),  # glitch: both held
        ({"session_charge_Wh": 400, "total_charge_Wh": 500400}, 0.4),
    ]
    for index, (fields, shown) in enumerate(steps):
        await send(hass, novacore, entry, {**base, **fields, "timestamp": TS + index})
        assert der_number(hass, "der-evc", "session_energy_charged") == pytest.approx(shown), index
    assert der_number(hass, "der-evc", "energy_charged") == pytest.approx(500.4)
    attributes = der_state(hass, "der-evc", "session_energy_charged").attributes
    assert attributes["state_class"] == "total_increasing"
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- inverter ---------------------------------------------------------------------------------


async def test_inverter(hass: HomeAssistant, novacore: Novacore) -> None:
    """An inverter's AC output shows positive; DC and phase values follow it."""
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, INVERTER)
    der = "der-inv"
    expected = {
        "power": 4200,
        "apparent_power": 4300,
        "reactive_power": -150,
        "frequency": 49.98,
        "dc_power": 4350,
        "dc_voltage": 620,
        "dc_current": 7.0,
        "heatsink_temperature": 41.5,
        "l1_voltage": 231,
        "l1_current": 6.1,
        "l1_power": 1400,
        "rated_power": 10000,
        "rated_apparent_power": 10000,
        "phases": 3,
    }
    for key, value in expected.items():
        assert der_number(hass, der, key) == pytest.approx(value), key
    units = {
        "apparent_power": ("apparent_power", "VA"),
        "reactive_power": ("reactive_power", "var"),
        "heatsink_temperature": ("temperature", "°C"),
        "dc_current": ("current", "A"),
    }
    for key, (device_class, unit) in units.items():
        attributes = der_state(hass, der, key).attributes
        assert (attributes["device_class"], attributes["unit_of_measurement"]) == (
            device_class,
            unit,
        )
    registry = er.async_get(hass)
    for key in ("rated_power", "rated_apparent_power", "phases"):
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{SITE_ID}_{der}_{key}")
        assert registry.async_get(entity_id).entity_category is er.EntityCategory.DIAGNOSTIC
    # Drawing from the grid (charging a battery from it): negative.
    await send(hass, novacore, entry, {**INVERTER, "W": 800, "L1_W": 270, "timestamp": TS + 1})
    assert der_number(hass, der, "power") == -800
    assert der_number(hass, der, "l1_power") == -270
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- battery and PV additions ---------------------------------------------------------------------


async def test_battery_and_pv_fields(hass: HomeAssistant, novacore: Novacore) -> None:
    entry = await setup_fast(hass, novacore)
    await send(
        hass,
        novacore,
        entry,
        {
            "type": "battery",
            "der_id": "der-bat",
            "W": 1000,
            "temperature_C": 24.5,
            "heatsink_C": 38,
            "SoH_fract": 0.97,
            "available_charge_Wh": 4200,
            "available_discharge_Wh": 3800,
            "upper_limit_W": 5000,
            "lower_limit_W": -4000,
            "rated_power_W": 5000,
            "capacity_kWh": 10.5,
            "min_soc_fract": 0.1,
            "max_soc_fract": 0.95,
            "timestamp": TS,
        },
    )
    battery = {
        "power": -1000,
        "temperature": 24.5,
        "heatsink_temperature": 38,
        "state_of_health": 97,
        "available_charge_energy": 4.2,
        "available_discharge_energy": 3.8,
        "charge_limit": 5000,
        "discharge_limit": 4000,
        "rated_power": 5000,
        "capacity": 10.5,
        "min_state_of_charge": 10,
        "max_state_of_charge": 95,
    }
    for key, value in battery.items():
        assert der_number(hass, "der-bat", key) == pytest.approx(value), key
    for key in ("available_charge_energy", "available_discharge_energy"):
        attributes = der_state(hass, "der-bat", key).attributes
        assert attributes["device_class"] == "energy_storage"
    # FTW's flat wire sends the capacity in Wh: one sensor, the same unit.
    await send(
        hass,
        novacore,
        entry,
        {"type": "battery", "der_id": "der-bat", "capacity_Wh": 13500, "timestamp": TS + 1},
    )
    assert der_number(hass, "der-bat", "capacity") == 13.5

    await send(
        hass,
        novacore,
        entry,
        {
            "type": "solar",
            "der_id": "der-pv",
            "W": -3000,
            "heatsink_C": 45,
            "lower_limit_W": -6000,
            "installed_power_W": 8000,
            "mppts": [{"V": 400, "A": -5, "W": -2000}, {"V": 380, "A": -2.6, "W": -1000}],
            "timestamp": TS,
        },
    )
    pv = {
        "power": 3000,
        "heatsink_temperature": 45,
        "curtailment_limit": 6000,
        "installed_power": 8000,
        "mppt1_voltage": 400,
        "mppt1_current": 5,
        "mppt1_power": 2000,
        "mppt2_power": 1000,
    }
    for key, value in pv.items():
        assert der_number(hass, "der-pv", key) == pytest.approx(value), key
    assert der_state(hass, "der-pv", "mppt2_power").attributes["friendly_name"] == (
        "pv-array MPPT 2 power"
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- how a reading without a DER id finds its DER -----------------------------------------------


async def test_device_sn_matches_hardware_id(hass: HomeAssistant, novacore: Novacore) -> None:
    """The data-models' shape has no DER id: its `device_sn` and type find the DER."""
    entry = await setup_fast(hass, novacore)
    for der_type, device_sn, state in (
        ("battery", "SN12345", {"W": 500}),
        ("solar", "SN12345", {"W": -1000}),
        ("inverter", "SN12345", {"W": -900}),
        ("meter", "KM-77", {"W": 300}),
        ("v2x_charger", "EVC-1", {"W": 7000, "status": "charging"}),
    ):
        await send(
            hass,
            novacore,
            entry,
            {"type": der_type, "device_sn": device_sn, "state": {**state, "timestamp": TS}},
        )
    assert der_number(hass, "der-bat", "power") == -500
    assert der_number(hass, "der-pv", "power") == 1000
    assert der_number(hass, "der-inv", "power") == 900
    assert der_number(hass, "der-meter", "power") == 300
    assert der_number(hass, "der-evc", "power") == 7000
    coordinator = entry.runtime_data
    assert set(coordinator.data) == {"der-bat", "der-pv", "der-inv", "der-meter", "der-evc", ""}

    # A known device without a DER of the reading's type: a DER of its own under that device.
    await send(hass, novacore, entry, {"type": "meter", "device_sn": "SN12345", "state": {"W": 5}})
    assert der_number(hass, "meter_sn12345", "power") == 5
    devices = dr.async_get(hass)
    device = devices_of(hass, entry)[(DOMAIN, f"{SITE_ID}_meter_sn12345")]
    assert device.name == "Meter SN12345"
    assert devices.async_get(device.via_device_id).name == "Sungrow Inverter"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_device_sn_before_type_and_make(hass: HomeAssistant, novacore: Novacore) -> None:
    """Several DERs of a type and serials the device list does not know: told apart by serial,
    not merged by make; a serial the list does not know with a single DER of the type: that DER."""
    devices = [
        {
            "id": "dev-a",
            "name": "East inverter",
            "type": "inverter",
            "hardware_id": "SN-A",
            "ders": [{"id": "der-east", "name": "East roof", "type": "solar"}],
        },
        {
            "id": "dev-b",
            "name": "West inverter",
            "type": "inverter",
            "hardware_id": "SN-B",
            "ders": [{"id": "der-west", "name": "West roof", "type": "solar"}],
        },
        {
            "id": "dev-bat",
            "name": "Battery box",
            "type": "battery",
            "ders": [{"id": "der-bat", "name": "battery_1", "type": "battery"}],
        },
    ]
    novacore.server.set_devices(SITE_ID, devices)
    entry = await setup_fast(hass, novacore)
    for sn, watts in (("SN-A", -100), ("SN-B", -200), ("SN-X", -300), ("SN-Y", -400)):
        await send(
            hass,
            novacore,
            entry,
            {"type": "pv", "make": "Sungrow", "device_sn": sn, "W": watts, "timestamp": TS},
        )
    await send(hass, novacore, entry, {"type": "battery", "device_sn": "BAT-9", "W": 50})
    assert der_number(hass, "der-east", "power") == 100
    assert der_number(hass, "der-west", "power") == 200
    assert der_number(hass, "pv_sn_x", "power") == 300
    assert der_number(hass, "pv_sn_y", "power") == 400
    assert der_number(hass, "der-bat", "power") == -50
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- the wire factor ----------------------------------------------------------------------------


async def test_wire_sign_rewrites_at_once(hass: HomeAssistant, novacore: Novacore) -> None:
    """An inverted wire: every signed value is rewritten from its last raw value at once, the
    limits trade places; unsigned values stay; later readings follow the factor."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    battery = {
        "type": "battery",
        "der_id": "der-bat",
        "W": 1200,  # as documented: charging
        "A": 23.4,
        "V": 51.2,
        "SoC_nom_fract": 0.5,
        "upper_limit_W": 5000,
        "lower_limit_W": -4000,
        "total_charge_Wh": 1000,
        "timestamp": TS,
    }
    await send(hass, novacore, entry, battery)
    assert der_number(hass, "der-bat", "power") == -1200
    assert der_number(hass, "der-bat", "charge_limit") == 5000
    assert der_number(hass, "der-bat", "discharge_limit") == 4000

    # The wire says -W = charging (as the sign engine decides, here the user's choice).
    coordinator.signs.set_overrides({"battery": "inverted"})
    coordinator.async_set_wire_sign("der-bat", -1)
    await hass.async_block_till_done()
    assert der_number(hass, "der-bat", "power") == 1200  # discharging
    assert der_number(hass, "der-bat", "current") == 23.4
    assert der_number(hass, "der-bat", "voltage") == 51.2
    assert der_number(hass, "der-bat", "state_of_charge") == 50
    assert der_number(hass, "der-bat", "energy_charged") == 1
    # Under the inverted wire the upper limit is the discharge limit.
    assert der_number(hass, "der-bat", "charge_limit") == 4000
    assert der_number(hass, "der-bat", "discharge_limit") == 5000
    group = coordinator.data["der-bat"]
    assert isinstance(group, NovacoreGroup)
    assert group.raw == {"W": 1200.0, "A": 23.4, "upper_limit_W": 5000.0, "lower_limit_W": -4000.0}

    await send(hass, novacore, entry, {**battery, "W": -300, "timestamp": TS + 1})
    assert der_number(hass, "der-bat", "power") == -300  # charging under the inverted wire
    assert der_number(hass, "der-bat", "charge_limit") == 4000

    coordinator.signs.set_overrides({"battery": "documented"})
    coordinator.async_set_wire_sign("der-bat", 1)
    await hass.async_block_till_done()
    assert der_number(hass, "der-bat", "power") == 300
    assert der_number(hass, "der-bat", "charge_limit") == 5000
    coordinator.async_set_wire_sign("der-bat", 1)  # unchanged: nothing to do

    with pytest.raises(ValueError, match="wire factor"):
        coordinator.async_set_wire_sign("der-bat", 0)
    with pytest.raises(KeyError):
        coordinator.async_set_wire_sign("der-nope", -1)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_wire_sign_limit_without_its_pair(hass: HomeAssistant, novacore: Novacore) -> None:
    """A limit whose field moved to the other limit goes unavailable rather than stay wrong."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(
        hass,
        novacore,
        entry,
        {"type": "battery", "der_id": "der-bat", "W": 10, "upper_limit_W": 5000, "timestamp": TS},
    )
    assert der_number(hass, "der-bat", "charge_limit") == 5000
    coordinator.async_set_wire_sign("der-bat", -1)
    await hass.async_block_till_done()
    assert der_state(hass, "der-bat", "charge_limit").state == STATE_UNAVAILABLE
    assert der_number(hass, "der-bat", "discharge_limit") == 5000
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_wire_sign_of_every_type(hass: HomeAssistant, novacore: Novacore) -> None:
    """Every signed value of a meter, PV, inverter and EV charger follows its DER's factor;
    a default per type applies to DERs seen later; diagnostics show the factor."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    coordinator.signs.set_overrides({"meter": "inverted"})  # as the options flow sets it
    await send(
        hass,
        novacore,
        entry,
        {
            "type": "meter",
            "der_id": "der-meter",
            "W": -850,
            "L1_W": -850,
            "L1_A": -3.7,
            "L1_V": 230,
        },
    )
    assert der_number(hass, "der-meter", "power") == 850  # importing, inverted wire
    assert der_number(hass, "der-meter", "l1_power") == 850
    assert der_number(hass, "der-meter", "l1_current") == 3.7
    assert der_number(hass, "der-meter", "l1_voltage") == 230
    await send(hass, novacore, entry, {**EV, "W": 7400})
    await send(hass, novacore, entry, INVERTER)
    await send(
        hass,
        novacore,
        entry,
        {"type": "pv", "der_id": "der-pv", "W": -2000, "mppt1_A": -5, "lower_limit_W": -6000},
    )
    for der in ("der-evc", "der-inv", "der-pv"):
        coordinator.async_set_wire_sign(der, -1)
    await hass.async_block_till_done()
    assert der_number(hass, "der-evc", "power") == -7400
    assert der_number(hass, "der-evc", "dc_power") == -7100
    assert der_number(hass, "der-evc", "charge_limit") == 10000
    assert der_number(hass, "der-evc", "discharge_limit") == 11000
    assert der_number(hass, "der-evc", "vehicle_state_of_charge") == 42
    assert der_number(hass, "der-inv", "power") == -4200
    assert der_number(hass, "der-inv", "dc_current") == -7
    assert der_number(hass, "der-inv", "reactive_power") == -150  # not signed
    assert der_number(hass, "der-pv", "power") == -2000
    assert der_number(hass, "der-pv", "mppt1_current") == -5
    assert der_number(hass, "der-pv", "curtailment_limit") == -6000
    diagnostics = coordinator.diagnostics()
    assert diagnostics["groups"]["der-meter"]["wire_sign"] == -1
    assert diagnostics["groups"]["der-pv"]["wire_sign"] == -1
    assert diagnostics["groups"]["der-pv"]["der_type"] == "pv"
    assert diagnostics["groups"]["der-evc"]["der_type"] == "ev_charger"
    assert await hass.config_entries.async_unload(entry.entry_id)
