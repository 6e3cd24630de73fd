"""Ainsite MQTT faults against a real mosquitto, read by the integration in a real Home Assistant."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import math
import random
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.energy_telemetry.const import DOMAIN
from simulator.ainsite_publisher import Message, MqttPublisher, meter_topic, payload_v1
from simulator.wait import wait_for

from .harness import (
    DELIVERY_TIMEOUT,
    AinsitePeer,
    Deliveries,
    StateLog,
    Timings,
    as_number,
    expect,
    final_value,
    record_deliveries,
    record_states,
    tune_ainsite,
)
from .report import ScenarioResult

MARGIN = 1.0
"""Seconds allowed on top of the backoff cap for a TLS connection, a subscription and a message."""
REGISTER = "2"


@dataclass(slots=True)
class Fleet:
    """Meters whose accumulated energy (register 2) grows; builds their messages."""

    customer_id: str
    subscription_id: str
    meters: list[str]
    clock: datetime
    step: timedelta = timedelta(seconds=15)
    totals: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def message(self, meter: str, total: float, moment: datetime) -> Message:
        """Return the v1 message of one reading."""
        moment = moment.replace(microsecond=0)
        return Message(
            meter_topic(self.customer_id, self.subscription_id, meter),
            payload_v1(total, moment),
            (meter, REGISTER, moment.timestamp() * 1000.0),
        )

    def cycle(self) -> list[Message]:
        """Advance every meter by one step; return their readings."""
        self.clock += self.step
        messages = []
        for meter in self.meters:
            total = round(self.totals.get(meter, 1000.0) + self.rng.uniform(0.001, 0.5), 3)
            self.totals[meter] = total
            messages.append(self.message(meter, total, self.clock))
        return messages


@dataclass(frozen=True, slots=True)
class MqttSetup(AinsitePeer, Timings):
    """The peer, the account and the timings of one run."""

    full: bool

    def fleet(self, count: int) -> Fleet:
        """Return `count` meters starting two hours ago."""
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        meters = [f"mtr-{index:02d}" for index in range(1, count + 1)]
        return Fleet(self.customer_id, self.subscription_id, meters, start)

    def publisher(self) -> MqttPublisher:
        """Return the upstream service's publisher."""
        return self.upstream()

    async def entry(self) -> ConfigEntry[Any]:
        """Set up the subscription through the flow and shorten its backoff."""
        entry = await self.add_entry()
        tune_ainsite(entry, self.initial, self.cap)
        return entry


def total_entities(hass: HomeAssistant, customer_id: str, meters: list[str]) -> dict[str, str]:
    """Return meter -> entity id of its register 2 total."""
    registry = er.async_get(hass)
    found = {}
    for meter in meters:
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{customer_id}_{meter}_2")
        if entity_id is not None:
            found[meter] = entity_id
    return found


def applied_twice(log: StateLog, entity_ids: list[str]) -> int:
    """Count states repeating an earlier value of the same total (not a return from unavailable)."""
    count = 0
    for entity_id in entity_ids:
        seen: set[float] = set()
        previous: float | None = None
        for _, state in log.changes.get(entity_id, []):
            number = as_number(state)
            if number is None:
                previous = None
                continue
            if number in seen and previous is not None and number != previous:
                count += 1
            seen.add(number)
            previous = number
    return count


def first_fresh(deliveries: Deliveries, moment: float) -> float | None:
    """Return seconds from moment to the first delivery of a reading not delivered before it."""
    before = {key for when, key in deliveries.mqtt if when < moment}
    for when, key in deliveries.mqtt:
        if when >= moment and key not in before:
            return round(when - moment, 2)
    return None


def mismatched_totals(
    hass: HomeAssistant, log: StateLog, entities: dict[str, str], totals: dict[str, float]
) -> list[str]:
    """Return each meter whose last shown total is not the source's, as text."""
    mismatched = []
    for meter, total in totals.items():
        shown = final_value(hass, log, entities.get(meter, "")).value
        if shown is None or not math.isclose(shown, total, abs_tol=1e-9):
            mismatched.append(f"{meter}: HA {shown} != source {total}")
    return mismatched


async def delivered(
    result: ScenarioResult, publisher: MqttPublisher, deliveries: Deliveries
) -> bool:
    """Wait until the broker acknowledged everything and all of it reached the integration."""

    def undelivered() -> set[Any]:
        return set(publisher.acked) - deliveries.mqtt_keys()

    return await expect(result, publisher.drain(DELIVERY_TIMEOUT)) and await expect(
        result,
        wait_for(
            lambda: not undelivered(),
            timeout=DELIVERY_TIMEOUT,
            what=lambda: (
                f"{len(undelivered())} acknowledged readings delivered to the "
                f"integration, e.g. {sorted(undelivered())[:3]}"
            ),
        ),
    )


def evaluate(
    result: ScenarioResult,
    setup: MqttSetup,
    fleet: Fleet,
    publisher: MqttPublisher,
    deliveries: Deliveries,
    log: StateLog,
    *,
    resets: int = 0,
) -> None:
    """Compare what the upstream had acknowledged with what reached and what HA shows."""
    hass = setup.hass
    sent = set(publisher.acked)
    delivered = deliveries.mqtt_keys()
    result.sent = len(sent)
    result.recorded = len(sent & delivered)
    result.lost = len(sent - delivered)
    result.duplicates_delivered = len(deliveries.mqtt) - len(delivered)
    entities = total_entities(hass, setup.customer_id, fleet.meters)
    result.duplicates_applied = applied_twice(log, list(entities.values()))
    result.backwards = max(0, len(log.backwards(list(entities.values()))) - resets)
    mismatched = mismatched_totals(hass, log, entities, fleet.totals)
    result.wrong = len(delivered - sent) + len(log.non_numeric) + len(mismatched)
    if mismatched:
        result.notes.append("final totals differ: " + "; ".join(mismatched[:5]))
    if result.lost:
        result.notes.append(f"lost e.g. {sorted(sent - delivered)[:5]}")
    result.notes.append(
        f"final totals equal the source's for {len(fleet.totals) - len(mismatched)}"
        f"/{len(fleet.totals)} meters; upstream: {publisher.publishes} publishes, "
        f"{publisher.reconnects} reconnects"
    )


def coordinator_note(entry: ConfigEntry[Any]) -> str:
    """Return the coordinator's counters."""
    coordinator = entry.runtime_data
    return (
        f"integration: {coordinator.connection.connects} connects, {coordinator.stats.accepted} "
        f"parsed, {coordinator.duplicates} duplicates and {coordinator.out_of_order} older "
        f"readings dropped, rejected {dict(coordinator.stats.rejected)}"
    )


async def _generate(
    publisher: MqttPublisher, fleet: Fleet, period: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        publisher.put(fleet.cycle())
        await asyncio.sleep(period)


async def under_load(
    setup: MqttSetup,
    name: str,
    fault: str,
    inject: Callable[[ConfigEntry[Any]], Awaitable[tuple[float, ConfigEntry[Any]]]],
    *,
    meters: int = 10,
    period: float = 0.05,
    settle: float = 1.0,
) -> ScenarioResult:
    """Publish readings of `meters` meters every `period` s; inject a fault; measure."""
    started = time.monotonic()
    hass = setup.hass
    result = ScenarioResult(name, fault, bound_s=setup.cap + MARGIN + setup.slack)
    fleet = setup.fleet(meters)
    publisher = setup.publisher()
    with record_deliveries() as deliveries, record_states(hass) as log:
        entry = await setup.entry()
        publisher.start()
        stop = asyncio.Event()
        generator = asyncio.create_task(_generate(publisher, fleet, period, stop))
        await asyncio.sleep(settle)
        old = entry.runtime_data.connection
        connects = old.connects
        fault_end, entry = await inject(entry)
        connection = entry.runtime_data.connection
        if await expect(
            result,
            wait_for(
                lambda: (
                    connection.connected
                    and (connection is not old or connection.connects > connects)
                ),
                timeout=setup.cap + 20,
                what="the MQTT session up again after the fault",
            ),
        ):
            result.reconnect_s = round(time.monotonic() - fault_end, 2)
        await expect(
            result,
            wait_for(
                lambda: first_fresh(deliveries, fault_end) is not None,
                timeout=setup.cap + 20,
                what="a reading not delivered before the fault",
            ),
        )
        result.recovery_s = first_fresh(deliveries, fault_end)
        await asyncio.sleep(settle)
        stop.set()
        await generator
        await delivered(result, publisher, deliveries)
        await publisher.stop()
        await hass.async_block_till_done()
        evaluate(result, setup, fleet, publisher, deliveries, log)
        result.notes.append(
            f"{meters} meters, a reading each every {period} s "
            f"({meters / period:.0f} msg/s); backoff cap {setup.cap} s"
        )
        result.notes.append(coordinator_note(entry))
        result.notes.append(f"entities went unavailable {log.unavailable_spells} times")
        assert await hass.config_entries.async_unload(entry.entry_id)
    result.duration_s = time.monotonic() - started
    return result


async def broker_restart(setup: MqttSetup) -> ScenarioResult:
    """Mosquitto restarted (SIGTERM, start) while readings are published."""
    hass, broker = setup.hass, setup.broker

    async def inject(entry: ConfigEntry[Any]) -> tuple[float, ConfigEntry[Any]]:
        await hass.async_add_executor_job(broker.restart)
        return time.monotonic(), entry

    return await under_load(setup, "mqtt_broker_restart", "broker restarted under load", inject)


async def broker_down(setup: MqttSetup) -> ScenarioResult:
    """The broker is down while the upstream queues readings; it returns; all are delivered."""
    hass, broker = setup.hass, setup.broker
    down = 30.0 if setup.full else 5.0
    scale = 300.0 / down

    async def inject(entry: ConfigEntry[Any]) -> tuple[float, ConfigEntry[Any]]:
        entry.runtime_data.grace_period = 30.0 / scale
        await hass.async_add_executor_job(broker.stop)
        await asyncio.sleep(down)
        await hass.async_add_executor_job(broker.start)
        return time.monotonic(), entry

    result = await under_load(
        setup,
        "mqtt_broker_down_5min",
        f"broker down {down:g} s standing for 5 min (time x{scale:g}); upstream queues",
        inject,
        period=0.1,
    )
    result.notes.append(
        f"5 minutes scaled by {scale:g}: readings every 0.1 s stand for one each {scale / 10:g} s"
        f" per meter, the 30 s grace period before entities go unavailable is {30 / scale:.2f} s"
    )
    result.check(result.recovery_s is not None, "no reading after the broker returned")
    return result


async def ha_restart(setup: MqttSetup) -> ScenarioResult:
    """The integration is unloaded and set up again (same client id) while readings keep coming."""
    hass = setup.hass
    hold = 10.0 if setup.full else 2.0

    async def inject(entry: ConfigEntry[Any]) -> tuple[float, ConfigEntry[Any]]:
        client_id = entry.runtime_data.connection.client_id
        assert await hass.config_entries.async_unload(entry.entry_id)
        await asyncio.sleep(hold)
        moment = time.monotonic()
        assert await hass.config_entries.async_setup(entry.entry_id)
        tune_ainsite(entry, setup.initial, setup.cap)
        assert entry.runtime_data.connection.client_id == client_id
        return moment, entry

    return await under_load(
        setup,
        "mqtt_ha_restart",
        f"entry unloaded for {hold:g} s under load, set up again with the same client id",
        inject,
        period=0.1,
    )


async def _sequence(
    setup: MqttSetup,
    name: str,
    fault: str,
    fleet: Fleet,
    messages: list[Message],
    *,
    resets: int = 0,
) -> tuple[ScenarioResult, StateLog, ConfigEntry[Any]]:
    started = time.monotonic()
    hass = setup.hass
    result = ScenarioResult(name, fault)
    publisher = setup.publisher()
    with record_deliveries() as deliveries, record_states(hass) as log:
        entry = await setup.entry()
        publisher.start()
        publisher.put(messages)
        expected = len(messages)
        await expect(result, publisher.drain(DELIVERY_TIMEOUT))
        await expect(
            result,
            wait_for(
                lambda: len(deliveries.mqtt) >= expected,
                timeout=DELIVERY_TIMEOUT,
                what=lambda: f"{expected - len(deliveries.mqtt)} of {expected} messages delivered",
            ),
        )
        await publisher.stop()
        await hass.async_block_till_done()
        evaluate(result, setup, fleet, publisher, deliveries, log, resets=resets)
        result.notes.append(coordinator_note(entry))
    result.duration_s = time.monotonic() - started
    return result, log, entry


async def duplicate_storm(setup: MqttSetup) -> ScenarioResult:
    """Every reading arrives 20 times."""
    fleet = setup.fleet(10)
    messages = [m for _ in range(20) for m in fleet.cycle() for _ in range(20)]
    result, _, entry = await _sequence(
        setup, "mqtt_duplicate_storm", "every reading published 20 times", fleet, messages
    )
    coordinator = entry.runtime_data
    result.check(
        coordinator.duplicates == result.duplicates_delivered,
        f"duplicates counted {coordinator.duplicates} != delivered {result.duplicates_delivered}",
    )
    assert await setup.hass.config_entries.async_unload(entry.entry_id)
    return result


async def out_of_order(setup: MqttSetup) -> ScenarioResult:
    """Readings arrive shuffled."""
    fleet = setup.fleet(10)
    messages = [m for _ in range(30) for m in fleet.cycle()]
    random.Random(3).shuffle(messages)
    result, _, entry = await _sequence(
        setup, "mqtt_out_of_order", "300 readings of 10 meters published shuffled", fleet, messages
    )
    result.notes.append("older readings are dropped by design: only the newest total is shown")
    result.check(entry.runtime_data.out_of_order > 0, "no reading arrived out of order")
    assert await setup.hass.config_entries.async_unload(entry.entry_id)
    return result


async def meter_reset(setup: MqttSetup) -> ScenarioResult:
    """A lone low reading (glitch) is ignored; a reset confirmed by a second reading is applied."""
    fleet = setup.fleet(1)
    meter = fleet.meters[0]
    values = [1000.0, 1001.0, 1002.0, 3.0, 1003.0, 1004.0, 0.5, 1.0, 1.5]
    messages = []
    for value in values:
        fleet.clock += fleet.step
        messages.append(fleet.message(meter, value, fleet.clock))
    fleet.totals[meter] = values[-1]
    result, log, entry = await _sequence(
        setup,
        "mqtt_meter_reset",
        "totals 1000..1002, lone glitch 3, 1003, 1004, reset 0.5 confirmed by 1.0, 1.5",
        fleet,
        messages,
        resets=1,
    )
    entity_id = total_entities(setup.hass, setup.customer_id, [meter])[meter]
    shown = log.values(entity_id)
    expected = [1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1.0, 1.5]
    result.notes.append(f"states shown: {shown}")
    result.check(shown == expected, f"states {shown} != {expected}")
    point = entry.runtime_data.data[meter].points[REGISTER]
    result.check(point.guard.resets == 1, f"{point.guard.resets} resets applied")
    assert await setup.hass.config_entries.async_unload(entry.entry_id)
    return result


SCENARIOS: dict[str, Callable[[MqttSetup], Awaitable[ScenarioResult]]] = {
    "mqtt_broker_restart": broker_restart,
    "mqtt_broker_down_5min": broker_down,
    "mqtt_ha_restart": ha_restart,
    "mqtt_duplicate_storm": duplicate_storm,
    "mqtt_out_of_order": out_of_order,
    "mqtt_meter_reset": meter_reset,
}
