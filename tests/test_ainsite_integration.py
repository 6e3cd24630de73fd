"""Ainsite meter readings through a real mosquitto (TLS, passwords, persistence) into Home Assistant."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.energy_telemetry.const import DOMAIN

from .conftest import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, SUBSCRIPTION_ID, wait_for


def v1(reading: float, ts: str) -> bytes:
    return json.dumps(
        {
            "smarteo_payload_schema_version": 1,
            "data_timestamp_utc": ts,
            "system_timestamp_utc": ts,
            "register_id": 2,
            "meter_reading": reading,
        }
    ).encode()


def v2(register: int, value: float, start: str, end: str) -> bytes:
    return json.dumps(
        {
            "smarteo_payload_schema_version": 2,
            "measurement_start_timestamp_utc": start,
            "measurement_end_timestamp_utc": end,
            "register_id": register,
            "value": value,
        }
    ).encode()


def topic(meter: str) -> str:
    return f"meters/outbound/{CUSTOMER_ID}/{SUBSCRIPTION_ID}/{meter}"


async def setup_ainsite(hass: HomeAssistant, broker: Any, **overrides: Any) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "ainsite"}
    )
    data = {
        "host": "localhost",
        "port": broker.tls_port,
        "tls": True,
        "username": MQTT_USERNAME,
        "password": MQTT_PASSWORD,
        "customer_id": CUSTOMER_ID,
        "subscription_id": SUBSCRIPTION_ID,
        **overrides,
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], data)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: entry.runtime_data.connected)
    return entry


async def test_readings_become_states(hass: HomeAssistant, mosquitto: Any) -> None:
    """Payloads of both versions become sensors; register 2 is an energy total."""
    entry = await setup_ainsite(hass, mosquitto)
    await mosquitto.apublish(topic("mtr-1"), v1(123.456, "2026-11-21T12:00:00Z"))
    await mosquitto.apublish(
        topic("mtr-1"), v2(12, 0.25, "2026-11-21T12:00:00Z", "2026-11-21T12:01:00Z")
    )
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_1_register_12"))
    energy = hass.states.get("sensor.meter_mtr_1_energy_register_2")
    assert energy is not None
    assert float(energy.state) == 123.456
    assert energy.attributes["state_class"] == "total_increasing"
    assert energy.attributes["unit_of_measurement"] == "kWh"
    assert float(hass.states.get("sensor.meter_mtr_1_register_12").state) == 0.25
    assert hass.states.get("sensor.meter_mtr_1_last_reading").state == "2026-11-21T12:01:00+00:00"
    assert await hass.config_entries.async_unload(entry.entry_id)
