"""Live Novacore readings through a real SSE server into a real Home Assistant."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er

from custom_components.energy_telemetry.const import DOMAIN

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
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_id": SITE_ID}
    )
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
