"""Ainsite meter readings through a real mosquitto (TLS, passwords, persistence) into Home Assistant."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
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
        "host": "127.0.0.1",
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


async def test_a_new_entity_first_shows_its_value(hass: HomeAssistant, mosquitto: Any) -> None:
    """A register's first reading creates its entity showing the value at once: its first state
    is never unavailable (not even for a total, seeded before Home Assistant writes it)."""
    entry = await setup_ainsite(hass, mosquitto)
    first: dict[str, str] = {}

    @callback
    def _listener(event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if state is not None:
            first.setdefault(event.data["entity_id"], state.state)

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, _listener)
    await mosquitto.apublish(topic("mtr-9"), v1(42.5, ts(60)))
    await mosquitto.apublish(topic("mtr-9"), v2(12, 0.25, ts(0), ts(60)))
    await wait_for(lambda: len(first) == 3)
    await hass.async_block_till_done()
    unsub()
    assert first == {
        "sensor.meter_mtr_9_energy_register_2": "42.5",
        "sensor.meter_mtr_9_last_reading": first["sensor.meter_mtr_9_last_reading"],
        "sensor.meter_mtr_9_register_12": "0.25",
    }
    assert first["sensor.meter_mtr_9_last_reading"].endswith("+00:00")
    assert await hass.config_entries.async_unload(entry.entry_id)


def ts(second: int) -> str:
    """A timestamp `second` seconds after 12:00 today (UTC), within the parser's window."""
    from datetime import UTC, datetime, timedelta

    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (base + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


ENERGY = "sensor.meter_mtr_1_energy_register_2"


def record_states(hass: HomeAssistant, entity_id: str, values: list[float]) -> None:
    """Append every numeric state of an entity, in the order it is written."""

    @callback
    def _listener(event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if event.data["entity_id"] == entity_id and state is not None:
            with contextlib.suppress(ValueError):
                values.append(float(state.state))

    hass.bus.async_listen(EVENT_STATE_CHANGED, _listener)


def _float(hass: HomeAssistant, entity_id: str) -> float:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return float(state.state)


async def test_duplicates_out_of_order_and_malformed(hass: HomeAssistant, mosquitto: Any) -> None:
    """Duplicates apply once, older readings never overwrite, bad payloads are counted."""
    entry = await setup_ainsite(hass, mosquitto)
    coordinator = entry.runtime_data
    changes: list[float] = []
    record_states(hass, ENERGY, changes)
    messages = [
        v1(100.0, ts(60)),
        v1(100.0, ts(60)),  # duplicate
        v1(101.0, ts(120)),
        v1(100.5, ts(90)),  # older than the last applied: dropped
        b"not json",
        b'{"smarteo_payload_schema_version": 3, "register_id": 2, "value": 1}',
        (
            b'{"smarteo_payload_schema_version": 1, "register_id": 2, "meter_reading": "NaN",'
            b' "data_timestamp_utc": "2026-11-21T12:00:00Z"}'
        ),
        b"\xff\xfe",
        v1(102.0, ts(180)),
    ]
    await mosquitto.apublish_many([(topic("mtr-1"), payload) for payload in messages])
    await wait_for(lambda: hass.states.get(ENERGY) and _float(hass, ENERGY) == 102.0)
    assert changes == [100.0, 101.0, 102.0]
    assert coordinator.duplicates == 1
    assert coordinator.out_of_order == 1
    assert sum(coordinator.stats.rejected.values()) == 4
    assert coordinator.stats.accepted == 5
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_total_never_backwards_and_reset(hass: HomeAssistant, mosquitto: Any) -> None:
    """A glitch is ignored; a meter reset confirmed by a second reading is applied."""
    entry = await setup_ainsite(hass, mosquitto)
    send = mosquitto.apublish
    await send(topic("mtr-1"), v1(5000.0, ts(10)))
    await wait_for(lambda: hass.states.get(ENERGY))
    await send(topic("mtr-1"), v1(4990.0, ts(20)))  # small drop: glitch
    await send(topic("mtr-1"), v1(0.5, ts(30)))  # large drop, not yet confirmed
    await send(topic("mtr-1"), v1(5001.0, ts(40)))
    await wait_for(lambda: _float(hass, ENERGY) == 5001.0)
    await send(topic("mtr-1"), v1(0.2, ts(50)))  # reset...
    await send(topic("mtr-1"), v1(0.4, ts(60)))  # ...confirmed
    await wait_for(lambda: _float(hass, ENERGY) == 0.4)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_readings_queued_while_stopped_arrive(hass: HomeAssistant, mosquitto: Any) -> None:
    """The persistent session (same client id) delivers what was published while unloaded."""
    entry = await setup_ainsite(hass, mosquitto)
    await mosquitto.apublish(topic("mtr-1"), v1(10.0, ts(10)))
    await wait_for(lambda: hass.states.get(ENERGY))
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    queued = [(topic("mtr-1"), v1(10.0 + n, ts(10 + 10 * n))) for n in range(1, 21)]
    queued.append((topic("mtr-2"), v1(7.0, ts(15))))
    await mosquitto.apublish_many(queued)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: hass.states.get(ENERGY).state == "30.0")
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_2_energy_register_2"))
    coordinator = entry.runtime_data
    assert coordinator.duplicates == 0
    assert coordinator.stats.accepted == 21
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_broker_restart_loses_and_duplicates_nothing(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """Readings around a broker restart are each applied exactly once."""
    entry = await setup_ainsite(hass, mosquitto)
    entry.runtime_data.connection._backoff_initial = 0.1
    applied: list[float] = []
    record_states(hass, ENERGY, applied)
    first = [(topic("mtr-1"), v1(float(n), ts(n))) for n in range(1, 26)]
    await mosquitto.apublish_many(first)
    await wait_for(lambda: applied and applied[-1] == 25.0)
    mosquitto.restart()
    second = [(topic("mtr-1"), v1(float(n), ts(n))) for n in range(26, 51)]
    await mosquitto.apublish_many(second)
    await wait_for(lambda: applied and applied[-1] == 50.0, timeout=60)
    assert applied == [float(n) for n in range(1, 51)]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_new_meter_mid_stream_and_register_mapping(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """A new meter gets entities without a reload; a mapped register feeds the energy dashboard."""
    entry = await setup_ainsite(hass, mosquitto)
    await mosquitto.apublish(topic("mtr-1"), v1(1.0, ts(10)))
    await wait_for(lambda: hass.states.get(ENERGY))
    await mosquitto.apublish(topic("mtr-9"), v2(12, 0.5, ts(0), ts(60)))
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_9_register_12"))
    state = hass.states.get("sensor.meter_mtr_9_register_12")
    assert "device_class" not in state.attributes
    assert hass.states.get("sensor.meter_mtr_9_last_reading") is not None

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "registers"}
    )
    assert result["step_id"] == "registers"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"register": "12"}
    )
    assert result["step_id"] == "register"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"kind": "energy_interval", "unit": "W"}
    )
    assert result["errors"] == {"unit": "invalid_unit"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"kind": "energy_interval", "unit": "kWh"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["registers"] == {"12": {"kind": "energy_interval", "unit": "kWh"}}
    await wait_for(lambda: entry.runtime_data.connected)
    await mosquitto.apublish(topic("mtr-9"), v2(12, 0.75, ts(60), ts(120)))
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_9_register_12").state == "0.75")
    state = hass.states.get("sensor.meter_mtr_9_register_12")
    assert state.attributes["device_class"] == "energy"
    assert state.attributes["state_class"] == "total"
    assert state.attributes["unit_of_measurement"] == "kWh"
    assert state.attributes["last_reset"] == ts(60).replace("Z", "+00:00")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_without_registers_abort(hass: HomeAssistant, mosquitto: Any) -> None:
    """Before any reading, there is nothing to map."""
    entry = await setup_ainsite(hass, mosquitto)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "registers"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_registers"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unavailable_after_grace_and_back(
    hass: HomeAssistant, mosquitto: Any, caplog: Any
) -> None:
    """Entities go unavailable when the broker is gone past the grace period; one line each way."""
    entry = await setup_ainsite(hass, mosquitto)
    coordinator = entry.runtime_data
    coordinator.grace_period = 0.2
    coordinator.connection._backoff_initial = 0.1
    coordinator.connection._backoff_max = 0.3
    await mosquitto.apublish(topic("mtr-1"), v1(1.0, ts(10)))
    await wait_for(lambda: hass.states.get(ENERGY))
    mosquitto.stop()
    await wait_for(lambda: hass.states.get(ENERGY).state == "unavailable")
    mosquitto.start()
    await wait_for(lambda: hass.states.get(ENERGY).state == "1.0")
    warnings = [r for r in caplog.records if "connection down" in r.getMessage()]
    infos = [r for r in caplog.records if "connection restored" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert len(infos) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_total_restored_against_replayed_readings(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """After a restart, readings older than the restored total cannot push it back."""
    entry = await setup_ainsite(hass, mosquitto)
    await mosquitto.apublish(topic("mtr-1"), v1(50.0, ts(100)))
    await wait_for(lambda: hass.states.get(ENERGY) and _float(hass, ENERGY) == 50.0)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    shown: list[float] = []
    record_states(hass, ENERGY, shown)
    # What a broker may replay after a restart: older readings, one of them lower.
    await mosquitto.apublish_many(
        [(topic("mtr-1"), v1(40.0, ts(80))), (topic("mtr-1"), v1(50.0, ts(100)))]
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.messages >= 2)
    await hass.async_block_till_done()
    assert _float(hass, ENERGY) == 50.0
    assert 40.0 not in shown
    coordinator = entry.runtime_data
    guard = coordinator.data["mtr-1"].points["2"].guard
    assert coordinator.out_of_order + coordinator.duplicates + guard.rejected == 2
    await mosquitto.apublish(topic("mtr-1"), v1(51.0, ts(110)))
    await wait_for(lambda: _float(hass, ENERGY) == 51.0)
    assert await hass.config_entries.async_unload(entry.entry_id)
