"""Ainsite meter readings through a real mosquitto (TLS, passwords, persistence) into Home Assistant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from simulator.ainsite_publisher import payload_v1, payload_v2
from tests.helpers.ainsite import ENERGY, at, setup_ainsite, topic
from tests.helpers.entities import first_states, number, record_states
from tests.helpers.flows import open_options_step
from tests.helpers.waiting import wait_for


async def _show(hass: HomeAssistant, mosquitto: Any, total: float, second: float) -> None:
    """Publish a total of meter mtr-1 and wait until its energy entity shows it."""
    await mosquitto.apublish(topic("mtr-1"), payload_v1(total, at(second)))
    await wait_for(lambda: hass.states.get(ENERGY) and number(hass, ENERGY) == total)


async def _showing(hass: HomeAssistant, mosquitto: Any, total: float, second: float) -> Any:
    """Set up the subscription and show a first total of meter mtr-1; return the entry."""
    entry = await setup_ainsite(hass, mosquitto)
    await _show(hass, mosquitto, total, second)
    return entry


async def test_readings_become_states(hass: HomeAssistant, mosquitto: Any) -> None:
    """Payloads of both versions become sensors; register 2 is an energy total."""
    entry = await setup_ainsite(hass, mosquitto)
    noon = datetime(2026, 11, 21, 12, tzinfo=UTC)
    await mosquitto.apublish(topic("mtr-1"), payload_v1(123.456, noon))
    await mosquitto.apublish(
        topic("mtr-1"), payload_v2(12, 0.25, noon, noon + timedelta(minutes=1))
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
    with first_states(hass) as first:
        await mosquitto.apublish(topic("mtr-9"), payload_v1(42.5, at(60)))
        await mosquitto.apublish(topic("mtr-9"), payload_v2(12, 0.25, at(0), at(60)))
        await wait_for(lambda: len(first) == 3)
        await hass.async_block_till_done()
    assert first == {
        "sensor.meter_mtr_9_energy_register_2": "42.5",
        "sensor.meter_mtr_9_last_reading": first["sensor.meter_mtr_9_last_reading"],
        "sensor.meter_mtr_9_register_12": "0.25",
    }
    assert first["sensor.meter_mtr_9_last_reading"].endswith("+00:00")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_duplicates_out_of_order_and_malformed(hass: HomeAssistant, mosquitto: Any) -> None:
    """Duplicates apply once, older readings never overwrite, bad payloads are counted."""
    entry = await setup_ainsite(hass, mosquitto)
    coordinator = entry.runtime_data
    changes: list[float] = []
    record_states(hass, ENERGY, changes)
    messages = [
        payload_v1(100.0, at(60)),
        payload_v1(100.0, at(60)),  # duplicate
        payload_v1(101.0, at(120)),
        payload_v1(100.5, at(90)),  # older than the last applied: dropped
        b"not json",
        b'{"smarteo_payload_schema_version": 3, "register_id": 2, "value": 1}',
        (
            b'{"smarteo_payload_schema_version": 1, "register_id": 2, "meter_reading": "NaN",'
            b' "data_timestamp_utc": "2026-11-21T12:00:00Z"}'
        ),
        b"\xff\xfe",
        payload_v1(102.0, at(180)),
    ]
    await mosquitto.apublish_many([(topic("mtr-1"), payload) for payload in messages])
    await wait_for(lambda: hass.states.get(ENERGY) and number(hass, ENERGY) == 102.0)
    assert changes == [100.0, 101.0, 102.0]
    assert coordinator.duplicates == 1
    assert coordinator.out_of_order == 1
    assert sum(coordinator.stats.rejected.values()) == 4
    assert coordinator.stats.accepted == 5
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_total_never_backwards_and_reset(hass: HomeAssistant, mosquitto: Any) -> None:
    """A glitch is ignored; a meter reset confirmed by a second reading is applied."""
    entry = await _showing(hass, mosquitto, 5000.0, 10)
    send = mosquitto.apublish
    await send(topic("mtr-1"), payload_v1(4990.0, at(20)))  # small drop: glitch
    await send(topic("mtr-1"), payload_v1(0.5, at(30)))  # large drop, not yet confirmed
    await send(topic("mtr-1"), payload_v1(5001.0, at(40)))
    await wait_for(lambda: number(hass, ENERGY) == 5001.0)
    await send(topic("mtr-1"), payload_v1(0.2, at(50)))  # reset...
    await send(topic("mtr-1"), payload_v1(0.4, at(60)))  # ...confirmed
    await wait_for(lambda: number(hass, ENERGY) == 0.4)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_readings_queued_while_stopped_arrive(hass: HomeAssistant, mosquitto: Any) -> None:
    """The persistent session (same client id) delivers what was published while unloaded."""
    entry = await _showing(hass, mosquitto, 10.0, 10)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    queued = [(topic("mtr-1"), payload_v1(10.0 + n, at(10 + 10 * n))) for n in range(1, 21)]
    queued.append((topic("mtr-2"), payload_v1(7.0, at(15))))
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
    first = [(topic("mtr-1"), payload_v1(float(n), at(n))) for n in range(1, 26)]
    await mosquitto.apublish_many(first)
    await wait_for(lambda: applied and applied[-1] == 25.0)
    mosquitto.restart()
    second = [(topic("mtr-1"), payload_v1(float(n), at(n))) for n in range(26, 51)]
    await mosquitto.apublish_many(second)
    await wait_for(lambda: applied and applied[-1] == 50.0, timeout=60)
    assert applied == [float(n) for n in range(1, 51)]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_new_meter_mid_stream_and_register_mapping(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """A new meter gets entities without a reload; a mapped register feeds the energy dashboard."""
    entry = await _showing(hass, mosquitto, 1.0, 10)
    await mosquitto.apublish(topic("mtr-9"), payload_v2(12, 0.5, at(0), at(60)))
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_9_register_12"))
    state = hass.states.get("sensor.meter_mtr_9_register_12")
    assert "device_class" not in state.attributes
    assert hass.states.get("sensor.meter_mtr_9_last_reading") is not None

    options = hass.config_entries.options
    result = await open_options_step(hass, entry, "registers")
    assert result["step_id"] == "registers"
    result = await options.async_configure(result["flow_id"], {"register": "12"})
    assert result["step_id"] == "register"
    interval = {"kind": "energy_interval", "unit": "W"}
    result = await options.async_configure(result["flow_id"], interval)
    assert result["errors"] == {"unit": "invalid_unit"}
    result = await options.async_configure(result["flow_id"], {**interval, "unit": "kWh"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["registers"] == {"12": {"kind": "energy_interval", "unit": "kWh"}}
    await wait_for(lambda: entry.runtime_data.connected)
    await mosquitto.apublish(topic("mtr-9"), payload_v2(12, 0.75, at(60), at(120)))
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_9_register_12").state == "0.75")
    state = hass.states.get("sensor.meter_mtr_9_register_12")
    assert state.attributes["device_class"] == "energy"
    assert state.attributes["state_class"] == "total"
    assert state.attributes["unit_of_measurement"] == "kWh"
    assert state.attributes["last_reset"] == at(60).isoformat()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_without_registers_abort(hass: HomeAssistant, mosquitto: Any) -> None:
    """Before any reading, there is nothing to map."""
    entry = await setup_ainsite(hass, mosquitto)
    result = await open_options_step(hass, entry, "registers")
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
    await _show(hass, mosquitto, 1.0, 10)
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
    entry = await _showing(hass, mosquitto, 50.0, 100)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    shown: list[float] = []
    record_states(hass, ENERGY, shown)
    # What a broker may replay after a restart: older readings, one of them lower.
    await mosquitto.apublish_many(
        [(topic("mtr-1"), payload_v1(40.0, at(80))), (topic("mtr-1"), payload_v1(50.0, at(100)))]
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.messages >= 2)
    await hass.async_block_till_done()
    assert number(hass, ENERGY) == 50.0
    assert 40.0 not in shown
    coordinator = entry.runtime_data
    guard = coordinator.data["mtr-1"].points["2"].guard
    assert coordinator.out_of_order + coordinator.duplicates + guard.rejected == 2
    await _show(hass, mosquitto, 51.0, 110)
    assert await hass.config_entries.async_unload(entry.entry_id)
