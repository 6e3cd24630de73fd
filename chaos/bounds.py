"""A peer that invents ids without end: limits hold, memory stays put, the entry keeps working.

Each scenario runs in three rounds against a real peer (the Novacore server, mosquitto):
A. the peer invents ids (DERs and their fields; meters and their registers) up to the entry's
   limits and a number more beyond them;
B. it invents as many new ids again, all beyond the limits: allocations are traced
   (`tracemalloc`) over this round, and what they still hold afterwards in the integration,
   Home Assistant, aiohttp and paho is the memory the invented ids cost;
C. the entry's own DER or meters go on reporting, and every reading must show.

What the limits promise is checked exactly: every invented id beyond a limit counted in the
diagnostics counter, one warning and one repair issue per limit, the registries and the state
machine the same size after round B as before it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import gc
import logging
import time
import tracemalloc
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from pytest_homeassistant_custom_component.common import flush_store

from custom_components.energy_telemetry.ainsite.descriptions import LAST_READING_DESCRIPTION
from custom_components.energy_telemetry.const import DOMAIN, LOGGER
from custom_components.energy_telemetry.issues import (
    DERS_LIMIT,
    FIELDS_LIMIT,
    METERS_LIMIT,
    REGISTERS_LIMIT,
    issue_id,
)
from simulator.ainsite_publisher import Message, meter_topic, payload_v1, payload_v2
from simulator.novacore_server import format_event
from simulator.wait import wait_for

from .harness import SsePusher, expect, record_states
from .mqtt import (
    MqttSetup,
    coordinator_note,
    mismatched_totals,
    total_entities,
)
from .report import ScenarioResult
from .sse import DER_ID, LOAD_PROOF_READ_TIMEOUT, POWER, TOTAL, SseSetup, _seq_values, prepare

HELD_LIMIT = 64 * 1024
"""Bytes round B's allocations may still hold: counters and the like, never a per-id record."""
TRACED = (
    tracemalloc.Filter(True, "*/custom_components/energy_telemetry/*"),
    tracemalloc.Filter(True, "*/homeassistant/*"),
    tracemalloc.Filter(True, "*/aiohttp/*"),
    tracemalloc.Filter(True, "*/paho/*"),
)
"""Where the memory is counted: the harness, the peers and pytest keep records of their own."""
WAIT = 300.0
"""Seconds a round may take to arrive (a hang guard: tracing allocations slows the process)."""
CHUNK = 500
"""Invented ids sent in one go."""


# --- measuring ----------------------------------------------------------------------------------


class Tracer:
    """Snapshots of the traced allocations in the places `TRACED` names."""

    def __init__(self) -> None:
        """Start with none."""
        self._snapshots: list[tracemalloc.Snapshot] = []

    def held(self) -> int:
        """Return the bytes the traced allocations hold now (after a collection)."""
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(TRACED)
        self._snapshots = [*self._snapshots[-1:], snapshot]
        return sum(stat.size for stat in snapshot.statistics("filename"))

    def grown(self, count: int = 5) -> list[str]:
        """Where the memory held grew most between the last two `held` calls."""
        if len(self._snapshots) < 2:
            return []
        later, earlier = self._snapshots[-1], self._snapshots[0]
        return [
            f"{stat.traceback[0].filename.rsplit('/', 2)[-1]}:{stat.traceback[0].lineno}"
            f" +{stat.size_diff / 1024:.0f} KiB in {stat.count_diff} blocks"
            for stat in later.compare_to(earlier, "lineno")[:count]
            if stat.size_diff > 0
        ]


@contextlib.contextmanager
def traced() -> Iterator[Tracer]:
    """Trace allocations in the block.

    No debug record is made in the block: the test's log capture keeps every record, and the
    arguments of paho's per-packet debug lines would count as held.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    disabled = logging.root.manager.disable
    logging.disable(logging.DEBUG)
    try:
        yield Tracer()
    finally:
        logging.disable(disabled)
        if started:
            tracemalloc.stop()


async def settle(hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
    """Finish what a round left pending: tasks, and the delayed writes it asked for.

    A delayed write (ten seconds) makes its document anew: the registries cache each entry's
    JSON on the entry, the entry's own store keeps the document it wrote. Written late, they
    would count in the next round although the round before asked for them.
    """
    await hass.async_block_till_done()
    coordinator = entry.runtime_data
    stores = [
        registry._store  # noqa: SLF001
        for registry in (er.async_get(hass), dr.async_get(hass), ir.async_get(hass))
    ]
    if (entry_store := getattr(coordinator, "store", None)) is not None:
        stores.append(entry_store._store)  # noqa: SLF001
    if coordinator.statistics is not None:
        stores.append(coordinator.statistics._store)  # noqa: SLF001
    for store in stores:
        await flush_store(store)
    await hass.async_block_till_done()


def footprint(hass: HomeAssistant, entry: ConfigEntry[Any]) -> dict[str, int]:
    """What the entry has: registry entries, devices, states, and the coordinator's groups."""
    coordinator = entry.runtime_data
    return {
        "entities": len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)),
        "devices": len(dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)),
        "states": len(hass.states.async_entity_ids()),
        "groups": len(coordinator.data),
        "points": sum(len(group.points) for group in coordinator.data.values()),
    }


class _Warnings(logging.Handler):
    """Collects the integration's warnings about limits."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " is reached " in message:
            self.lines.append(message)


@contextlib.contextmanager
def limit_warnings() -> Iterator[list[str]]:
    """Collect the integration's limit warnings logged in the block."""
    handler = _Warnings()
    LOGGER.addHandler(handler)
    try:
        yield handler.lines
    finally:
        LOGGER.removeHandler(handler)


def check_limits(
    result: ScenarioResult,
    hass: HomeAssistant,
    entry: ConfigEntry[Any],
    dropped: dict[str, int],
    warnings: list[str],
) -> None:
    """Every id beyond a limit counted; one warning and one repair issue per limit."""
    coordinator = entry.runtime_data
    issues = ir.async_get(hass)
    for kind, expected in dropped.items():
        counted = coordinator.dropped_at_limit[kind]
        result.check(counted == expected, f"{kind}: {counted} dropped counted, {expected} sent")
        result.check(
            issues.async_get_issue(DOMAIN, issue_id(kind, entry)) is not None,
            f"{kind}: no repair issue",
        )
    result.check(
        len(warnings) == len(dropped),
        f"{len(warnings)} limit warnings for {len(dropped)} limits: {warnings[:4]}",
    )


async def drops_counted(
    result: ScenarioResult, entry: ConfigEntry[Any], round_name: str, dropped: dict[str, int]
) -> None:
    """Wait until the entry has counted `dropped` (by limit) in its diagnostics."""
    counted = entry.runtime_data.dropped_at_limit

    def short() -> dict[str, int]:
        return {kind: expected - counted[kind] for kind, expected in dropped.items()}

    await expect(
        result,
        wait_for(
            lambda: not any(short().values()),
            timeout=WAIT,
            what=lambda: f"round {round_name}: the drops counted (still short {short()})",
        ),
    )


@dataclass(slots=True)
class Rounds:
    """What rounds A and B did to the entry and to the memory held."""

    before: dict[str, int]
    """The entry after round A."""
    after: dict[str, int]
    """The entry after round B."""
    created: int
    """Points round A created."""
    created_held: int
    """Bytes round A's allocations hold."""
    held: int
    """Bytes round B's allocations hold (less what it freed)."""
    grown: list[str]
    """Where round B's memory grew most."""


async def two_rounds(
    hass: HomeAssistant,
    entry: ConfigEntry[Any],
    round_a: Callable[[], Awaitable[None]],
    round_b: Callable[[], Awaitable[None]],
) -> Rounds:
    """Run round A (up to the limits and beyond), then round B (beyond only), traced."""
    with traced() as tracer:
        start = tracer.held()
        size = footprint(hass, entry)["points"]
        await round_a()
        await settle(hass, entry)
        before = footprint(hass, entry)
        after_a = tracer.held()
        await round_b()
        await settle(hass, entry)
        held = tracer.held() - after_a
        return Rounds(
            before,
            footprint(hass, entry),
            before["points"] - size,
            after_a - start,
            held,
            tracer.grown(),
        )


def check_memory(result: ScenarioResult, rounds: Rounds, invented: str) -> None:
    """Round B left the entry's size and memory where round A left them."""
    before, after, held = rounds.before, rounds.after, rounds.held
    result.check(before == after, f"the entry grew over round B: {before} -> {after}")
    result.check(
        held <= HELD_LIMIT,
        f"round B still holds {held} bytes (limit {HELD_LIMIT}); grown most: {rounds.grown}",
    )
    count, size = rounds.created, rounds.created_held
    result.notes.append(
        f"round A: {count} created up to the limits, {size / 1024:.0f} KiB held"
        f" ({size / max(count, 1) / 1024:.1f} KiB each); round B: {invented} dropped,"
        f" {held / 1024:.1f} KiB held (limit {HELD_LIMIT // 1024} KiB); the entry: {after}"
    )


def _scenario(
    name: str, peer: str, ids: str, setup: SseSetup | MqttSetup
) -> tuple[ScenarioResult, int]:
    """The scenario's result row, and how many ids of each kind it invents beyond the limits."""
    beyond = 1000 if setup.full else 100
    fault = f"{peer} invents {ids}: up to the limits, then {beyond} of each beyond them, twice"
    return ScenarioResult(name, fault), beyond


# --- Novacore ---------------------------------------------------------------------------------


def _invented_ders(pusher: SsePusher, prefix: str, count: int) -> list[bytes]:
    """Frames of one PV reading each of `count` DERs nobody listed, CHUNK to a frame list."""
    frames = [
        format_event(
            {
                "type": "pv",
                "der_id": f"{prefix}-{index}",
                "W": 100 + index,
                "timestamp": pusher.start_ms + index,
            }
        )
        for index in range(count)
    ]
    return [b"".join(frames[at : at + CHUNK]) for at in range(0, len(frames), CHUNK)]


async def _sse_round(
    result: ScenarioResult,
    setup: SseSetup,
    entry: ConfigEntry[Any],
    pusher: SsePusher,
    round_name: str,
    ders: int,
    fields: int,
    dropped: dict[str, int],
) -> None:
    """Invent `ders` DER ids and `fields` field names of the entry's meter; wait for the drops."""
    for chunk in _invented_ders(pusher, f"der-invented-{round_name}", ders):
        await setup.server.push_raw(setup.site_id, chunk)
    await pusher.push_next(**{f"invented_{round_name}_{index}_W": 1 for index in range(fields)})
    await drops_counted(result, entry, round_name, dropped)


async def invented_ders(setup: SseSetup) -> ScenarioResult:
    """The stream invents DER ids and field names without end."""
    result, beyond = _scenario("sse_invented_ids", "the stream", "DER ids and meter fields", setup)
    started = time.monotonic()
    hass = setup.hass
    with record_states(hass) as log, limit_warnings() as warnings:
        entry = await prepare(setup, LOAD_PROOF_READ_TIMEOUT)
        coordinator = entry.runtime_data
        pusher = SsePusher(setup.server, setup.site_id, DER_ID)
        for _ in range(5):
            await pusher.push_next()
        await _wait_shown(result, log, pusher.seq)
        group = coordinator.data[DER_ID]
        free_ders = coordinator.limits[DERS_LIMIT] - (
            len(coordinator.data) - (coordinator.home.group is not None)
        )
        free_fields = coordinator.limits[FIELDS_LIMIT] - len(group.fields) - len(group.text_fields)
        dropped = {DERS_LIMIT: beyond, FIELDS_LIMIT: beyond}
        twice = dict.fromkeys(dropped, 2 * beyond)
        rounds = await two_rounds(
            hass,
            entry,
            lambda: _sse_round(
                result, setup, entry, pusher, "a", free_ders + beyond, free_fields + beyond, dropped
            ),
            lambda: _sse_round(result, setup, entry, pusher, "b", beyond, beyond, twice),
        )
        dropped = twice
        check_memory(result, rounds, f"{beyond} DERs and {beyond} fields")
        check_limits(result, hass, entry, dropped, warnings)
        for _ in range(20):  # round C: the entry's own DER goes on
            await pusher.push_next()
        await _wait_shown(result, log, pusher.seq)
        sent, shown = set(pusher.sent), set(_seq_values(log))
        result.sent = len(sent)
        result.recorded = len(sent & shown)
        result.lost = len(sent - shown)
        result.wrong = len(shown - sent) + len(log.non_numeric)
        result.backwards = len(log.backwards([TOTAL]))
        stats = coordinator.stream.stats
        result.notes.append(
            f"limits: {coordinator.limits}; dropped {dict(coordinator.dropped_at_limit)};"
            f" stream: {stats.parse.accepted} events parsed, {stats.disconnects} disconnects"
        )
        assert await hass.config_entries.async_unload(entry.entry_id)
    result.duration_s = time.monotonic() - started
    return result


async def _wait_shown(result: ScenarioResult, log: Any, seq: int) -> None:
    await expect(
        result,
        wait_for(
            lambda: seq in _seq_values(log),
            timeout=WAIT,
            what=lambda: f"reading {seq} of {POWER} shown (last: {_seq_values(log)[-1:]})",
        ),
    )


# --- Ainsite ----------------------------------------------------------------------------------


async def _mqtt_round(
    result: ScenarioResult,
    setup: MqttSetup,
    entry: ConfigEntry[Any],
    messages: list[Message],
    round_name: str,
    dropped: dict[str, int],
) -> None:
    """Publish the invented meters' and registers' messages; wait for the drops."""
    await _publish(result, setup, messages)
    await drops_counted(result, entry, round_name, dropped)


async def _publish(result: ScenarioResult, setup: MqttSetup, messages: list[Message]) -> int:
    """Publish through the upstream service until the broker has every message; return how many."""
    publisher = setup.publisher()
    publisher.start()
    try:
        publisher.put(messages)
        await expect(result, publisher.drain(WAIT))
    finally:
        await publisher.stop()
    return publisher.publishes


def _invented_messages(
    setup: MqttSetup, round_name: str, meters: int, meter: str, registers: int
) -> list[Message]:
    """One reading of each of `meters` new meters, one of each of `registers` new registers."""
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    offset = 1000 if round_name == "a" else 100_000
    messages = [
        Message(
            meter_topic(setup.customer_id, setup.subscription_id, f"inv-{round_name}-{index}"),
            payload_v1(10.0, moment),
            ("invented", round_name, index),
        )
        for index in range(meters)
    ]
    messages += [
        Message(
            meter_topic(setup.customer_id, setup.subscription_id, meter),
            payload_v2(offset + index, 1.0, moment - timedelta(minutes=15), moment),
            ("register", round_name, index),
        )
        for index in range(registers)
    ]
    return messages


async def invented_meters(setup: MqttSetup) -> ScenarioResult:
    """The broker carries meters and registers nobody has, without end."""
    hass = setup.hass
    result, beyond = _scenario(
        "mqtt_invented_ids", "the subscription", "meters and registers", setup
    )
    started = time.monotonic()
    fleet = setup.fleet(3)
    with record_states(hass) as log, limit_warnings() as warnings:
        entry = await setup.entry()
        coordinator = entry.runtime_data
        if not setup.full:  # the short run: the code path of the real limit, at a tenth of it
            coordinator.limits[METERS_LIMIT] = 500
        entities: dict[str, str] = {}

        async def fleet_shown(cycles: int) -> None:
            nonlocal entities
            messages = [message for _ in range(cycles) for message in fleet.cycle()]
            result.sent += await _publish(result, setup, messages)

            def differ() -> list[str]:
                nonlocal entities
                entities = total_entities(hass, setup.customer_id, fleet.meters)
                return mismatched_totals(hass, log, entities, fleet.totals)

            await expect(
                result,
                wait_for(
                    lambda: not differ() and len(entities) == len(fleet.meters),
                    timeout=WAIT,
                    what=lambda: f"the fleet's totals shown ({differ()[:3]})",
                ),
            )

        await fleet_shown(3)
        meter = fleet.meters[0]
        free_meters = coordinator.limits[METERS_LIMIT] - len(coordinator.data)
        points = coordinator.data[meter].points
        free_registers = coordinator.limits[REGISTERS_LIMIT] - (
            len(points) - (LAST_READING_DESCRIPTION.key in points)
        )
        dropped = {METERS_LIMIT: beyond, REGISTERS_LIMIT: beyond}
        round_a = _invented_messages(
            setup, "a", free_meters + beyond, meter, free_registers + beyond
        )
        round_b = _invented_messages(setup, "b", beyond, meter, beyond)
        twice = dict.fromkeys(dropped, 2 * beyond)
        rounds = await two_rounds(
            hass,
            entry,
            lambda: _mqtt_round(result, setup, entry, round_a, "a", dropped),
            lambda: _mqtt_round(result, setup, entry, round_b, "b", twice),
        )
        dropped = twice
        check_memory(result, rounds, f"{beyond} meters and {beyond} registers")
        check_limits(result, hass, entry, dropped, warnings)
        await fleet_shown(5)  # round C: the entry's own meters go on
        # Every reading of the fleet raises its meter's total: each one shows as a state.
        result.recorded = sum(len(set(log.values(entity))) for entity in entities.values())
        result.lost = max(0, result.sent - result.recorded)
        result.backwards = len(log.backwards(list(entities.values())))
        result.wrong = len(log.non_numeric) + len(
            mismatched_totals(hass, log, entities, fleet.totals)
        )
        result.notes.append(
            f"limits: {coordinator.limits}; dropped {dict(coordinator.dropped_at_limit)}"
        )
        result.notes.append(coordinator_note(entry))
        assert await hass.config_entries.async_unload(entry.entry_id)
    result.duration_s = time.monotonic() - started
    return result
