"""Novacore SSE faults against a real server, read by the integration in a real Home Assistant."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
import math
import time
from typing import Any

from homeassistant.core import HomeAssistant

from simulator.flows import setup_novacore
from simulator.novacore_server import NovacoreServer, format_event
from simulator.wait import WaitTimeoutError, wait_for

from .harness import (
    DELIVERY_TIMEOUT,
    Deliveries,
    SsePusher,
    StateLog,
    Timings,
    expect,
    record_deliveries,
    record_states,
    tune_novacore,
)
from .report import ScenarioResult

POWER = "sensor.grid_meter_power"
TOTAL = "sensor.grid_meter_energy_imported"
DER_ID = "der-meter"
MARGIN = 0.5
"""Seconds allowed on top of the backoff cap for a connection to open and an event to arrive."""


@dataclass(frozen=True, slots=True)
class SseSetup(Timings):
    """The peer and the timings of one run."""

    hass: HomeAssistant
    server: NovacoreServer
    site_id: str
    site_name: str
    devices: list[dict[str, Any]]
    private_key_pem: str
    full: bool


type Step = Callable[[], Awaitable[None]]


def _seq_values(log: StateLog) -> list[int]:
    return [round(value) for value in log.values(POWER)]


async def _shown(result: ScenarioResult, log: StateLog, seq: int) -> bool:
    """Wait until reading `seq` was shown; fail the scenario if it never is."""
    return await expect(
        result,
        wait_for(
            lambda: seq in _seq_values(log),
            timeout=DELIVERY_TIMEOUT,
            what=lambda: f"reading {seq} shown (the last shown: {_seq_values(log)[-1:]})",
        ),
    )


def _applied_twice(log: StateLog) -> int:
    """Count states that repeat an earlier reading (not a return from unavailable)."""
    seen: set[str] = set()
    count = 0
    previous: str | None = None
    for _, state in log.changes.get(POWER, []):
        if state in seen and state != previous and previous not in (None, "unavailable"):
            count += 1
        seen.add(state)
        previous = state
    return count


def _evaluate(
    result: ScenarioResult,
    pusher: SsePusher,
    log: StateLog,
    deliveries: Deliveries,
    sent: set[int] | None = None,
) -> None:
    sent = set(pusher.sent) if sent is None else sent
    shown = set(_seq_values(log))
    result.sent = len(sent)
    result.recorded = len(sent & shown)
    result.lost = len(sent - shown)
    result.wrong = len(shown - sent) + len(log.non_numeric)
    delivered = Counter(
        round(reading.values.get("W", math.nan))
        for _, reading in deliveries.sse
        if reading.der_id == DER_ID and "W" in reading.values
    )
    result.duplicates_delivered = sum(count - 1 for count in delivered.values() if count > 1)
    result.duplicates_applied = _applied_twice(log)
    result.backwards = len(log.backwards([TOTAL]))
    if result.lost:
        missing = sorted(sent - shown)
        result.notes.append(f"missing sequence numbers: {missing[:20]}")


# The read timeout of the scenarios that are not about it (the big event, the flood): one that a
# busy machine, stalling the event loop, cannot trip. A flood dropped by a spurious timeout loses
# what the server's replay buffer cannot hold, which is no finding about the integration.
LOAD_PROOF_READ_TIMEOUT = 60.0


async def prepare(setup: SseSetup, read_timeout: float | None = None) -> Any:
    """Set up the site with short timings and auto-numbered events."""
    server = setup.server
    server.auto_ids = True
    server.keepalive_interval = 0.25
    entry = await setup_novacore(setup.hass, server, setup.site_id, setup.private_key_pem)
    tune_novacore(entry, setup.initial, setup.cap, read_timeout or setup.read_timeout)
    # The new read timeout applies from the next connection.
    await server.cut_streams(setup.site_id)
    await server.wait_for_streams(setup.site_id, 1)
    return entry


@dataclass(slots=True)
class _Run:
    """A set-up site under observation."""

    entry: Any
    pusher: SsePusher
    deliveries: Deliveries
    log: StateLog

    @property
    def stream(self) -> Any:
        """The entry's SSE stream."""
        return self.entry.runtime_data.stream


@contextlib.asynccontextmanager
async def _running(
    setup: SseSetup, result: ScenarioResult, read_timeout: float | None = None
) -> AsyncIterator[_Run]:
    """Record deliveries and states around a prepared site; unload it and time the scenario."""
    started = time.monotonic()
    with record_deliveries() as deliveries, record_states(setup.hass) as log:
        entry = await prepare(setup, read_timeout)
        yield _Run(entry, SsePusher(setup.server, setup.site_id, DER_ID), deliveries, log)
        assert await setup.hass.config_entries.async_unload(entry.entry_id)
    result.duration_s = time.monotonic() - started


def _kept(result: ScenarioResult, run: _Run, disconnects: int, load: str) -> bool:
    """Check that the stream stayed up through a load; apply the common evaluation."""
    _evaluate(result, run.pusher, run.log, run.deliveries)
    kept = bool(run.stream.stats.disconnects == disconnects)
    result.check(kept, f"the stream was dropped by the {load}")
    return kept


async def run_fault(
    setup: SseSetup,
    name: str,
    fault: str,
    begin: Step,
    end: Step,
    bound: float,
    *,
    pause_pushing: bool = False,
    resume_after: Step | None = None,
) -> ScenarioResult:
    """Push a reading every 50 ms, inject a fault for `hold` seconds, measure the recovery."""
    result = ScenarioResult(name, fault, bound_s=round(bound, 2))
    server = setup.server
    async with _running(setup, result) as run:
        stream, pusher, log = run.stream, run.pusher, run.log
        pusher.start()
        await asyncio.sleep(0.5)
        disconnects = stream.stats.disconnects
        connects = stream.stats.connects
        fault_start = time.monotonic()
        await begin()
        pusher.paused = pause_pushing
        # Whether and when the client notices within the hold is measured, not required (a
        # silent server is noticed only at the read timeout): the note says which it was.
        with contextlib.suppress(WaitTimeoutError):
            await wait_for(
                lambda: stream.stats.disconnects > disconnects,
                timeout=setup.hold,
                what="a disconnect",
                interval=0.01,
            )
        detected_after = time.monotonic() - fault_start
        detected = stream.stats.disconnects > disconnects
        await asyncio.sleep(max(0.0, setup.hold - detected_after))
        await end()
        fault_end = time.monotonic()
        if resume_after is not None:
            await expect(result, resume_after())
        pusher.paused = False
        last_before = pusher.seq
        await expect(
            result,
            wait_for(
                lambda: log.first_after(POWER, fault_end, lambda v: v > last_before) < math.inf,
                timeout=bound + 10,
                what=f"a reading after {last_before} shown after the fault",
            ),
        )
        first = log.first_after(POWER, fault_end, lambda v: v > last_before)
        result.recovery_s = None if first == math.inf else round(first - fault_end, 2)
        await asyncio.sleep(0.5)
        await pusher.stop()
        await _shown(result, log, max(pusher.sent))
        _evaluate(result, pusher, log, run.deliveries)
        stats = stream.stats
        result.notes.append(
            f"backoff cap {setup.cap} s (initial {setup.initial} s), read timeout "
            f"{setup.read_timeout} s, fault held {setup.hold} s; "
            "client noticed the fault "
            + (f"after {detected_after:.2f} s" if detected else "never (no disconnect)")
        )
        result.notes.append(
            f"stream: {stats.connects - connects} reconnects, "
            f"{stats.disconnects - disconnects} disconnects, last error {stats.last_error!r}, "
            f"{stats.parse.accepted} events parsed, rejected {dict(stats.parse.rejected)}"
        )
        result.notes.append(
            f"server: {server.stream_connects} stream requests, Last-Event-ID sent on "
            f"{sum(1 for value in server.last_event_ids if value)}"
        )
    return result


async def reset_mid_event(setup: SseSetup) -> ScenarioResult:
    """TCP reset in the middle of an event, repeated through the hold time."""
    server = setup.server
    cutter: list[asyncio.Task[None]] = []

    async def cut_loop() -> None:
        while True:
            await server.cut_streams(setup.site_id, mid_event=True)
            await asyncio.sleep(0.7)

    async def begin() -> None:
        cutter.append(asyncio.create_task(cut_loop()))

    async def end() -> None:
        cutter[0].cancel()
        await asyncio.gather(cutter[0], return_exceptions=True)

    return await run_fault(
        setup,
        "sse_reset_mid_event",
        "connection reset after half an event, every 0.7 s during the hold",
        begin,
        end,
        setup.cap + MARGIN + setup.slack,
    )


async def half_open(setup: SseSetup) -> ScenarioResult:
    """The server goes silent while the socket stays open."""
    server = setup.server

    async def begin() -> None:
        server.silent = True

    async def end() -> None:
        server.silent = False

    result = await run_fault(
        setup,
        "sse_half_open",
        "server silent with the socket open (no bytes, no keep-alives)",
        begin,
        end,
        setup.read_timeout + setup.cap + MARGIN + setup.slack,
        pause_pushing=True,
    )
    result.notes.append(
        "nothing is pushed while the server is silent: the simulator does not queue events for"
        " a stream opened during the silence, so they could not be delivered by any client"
    )
    return result


async def http_status(setup: SseSetup, status: int, retry_after: float | None) -> ScenarioResult:
    """Every stream request answers `status` (with Retry-After) for the hold time."""
    server = setup.server

    async def begin() -> None:
        server.fail_stream(status, 10**6, retry_after=retry_after)
        await server.cut_streams(setup.site_id)

    async def end() -> None:
        server.fail_stream(status, 0)

    bound = max(retry_after or 0.0, setup.cap) + MARGIN + setup.slack
    suffix = f" with Retry-After {retry_after:g} s" if retry_after else ""
    return await run_fault(
        setup,
        f"sse_http_{status}",
        f"stream cut, then every reconnect answered HTTP {status}{suffix}",
        begin,
        end,
        bound,
    )


async def token_expiry(setup: SseSetup) -> ScenarioResult:
    """Every token expires and the server drops the streams."""
    server = setup.server

    async def begin() -> None:
        server.drop_streams_on_expiry = True
        server.expire_tokens()

    async def end() -> None:
        server.drop_streams_on_expiry = False

    result = await run_fault(
        setup,
        "sse_token_expiry",
        "all tokens expire mid-stream; streams dropped; old token answered 401",
        begin,
        end,
        # one retry with the old token, a 401, one more with a new one
        2 * setup.cap + MARGIN + setup.slack,
    )
    result.notes.append(f"server: {server.verifies} tokens minted in all")
    return result


async def site_deleted(setup: SseSetup) -> ScenarioResult:
    """The site is deleted (404), then created again."""
    server = setup.server

    async def begin() -> None:
        server.delete_site(setup.site_id)

    async def end() -> None:
        server.add_site(setup.site_id, setup.site_name, setup.devices)

    async def reconnected() -> None:
        await server.wait_for_streams(setup.site_id, 1, setup.cap + 10)

    result = await run_fault(
        setup,
        "sse_site_deleted",
        "site deleted (stream ended, reconnects answered 404), then added again",
        begin,
        end,
        setup.cap + MARGIN + setup.slack,
        pause_pushing=True,
        resume_after=reconnected,
    )
    result.notes.append(
        "pushing resumes once the client has reconnected: the re-created site numbers its events"
        " from 1 again, below the Last-Event-ID the client holds, so events sent before the"
        " client is back could not be replayed by any client"
    )
    return result


async def big_event(setup: SseSetup) -> ScenarioResult:
    """One event of 1 MiB between normal ones."""
    result = ScenarioResult("sse_event_1mib", "one 1 MiB event (a 1 MiB string field)")
    async with _running(setup, result, LOAD_PROOF_READ_TIMEOUT) as run:
        pusher, log = run.pusher, run.log
        for _ in range(5):
            await pusher.push_next()
        disconnects = run.stream.stats.disconnects
        pushed = time.monotonic()
        seq = await pusher.push_next(note="x" * (1 << 20))
        frame = len(format_event(pusher.event(seq, note="x" * (1 << 20))))
        await _shown(result, log, seq)
        latency = log.first_after(POWER, pushed, lambda v: round(v) == seq) - pushed
        for _ in range(5):
            await pusher.push_next()
        await _shown(result, log, pusher.seq)
        kept = _kept(result, run, disconnects, "big event")
        result.notes.append(
            f"frame of {frame} bytes applied in {latency:.3f} s; connection kept: {kept}"
        )
    return result


async def flood(setup: SseSetup, count: int = 10_000) -> ScenarioResult:
    """`count` events written within one second."""
    result = ScenarioResult("sse_flood_10k", f"{count} events written within 1 s")
    server = setup.server
    async with _running(setup, result, LOAD_PROOF_READ_TIMEOUT) as run:
        pusher, log = run.pusher, run.log
        disconnects = run.stream.stats.disconnects
        chunks = 20
        per_chunk = count // chunks
        begin = time.monotonic()
        for _ in range(chunks):
            frames = []
            for _ in range(per_chunk):
                pusher.seq += 1
                pusher.sent[pusher.seq] = time.monotonic()
                frames.append(format_event(pusher.event(pusher.seq)))
            await server.push_raw(setup.site_id, b"".join(frames))
            await asyncio.sleep(max(0.0, 1.0 / chunks - 0.01))
        written = time.monotonic() - begin
        last = pusher.seq
        await _shown(result, log, last)
        drained = log.first_after(POWER, begin, lambda v: round(v) == last) - begin
        kept = _kept(result, run, disconnects, "flood")
        result.notes.append(
            f"written in {written:.2f} s; last event shown {drained:.2f} s after the first was "
            f"written ({count / drained:.0f} events/s); connection kept: {kept}"
        )
    return result


SCENARIOS: dict[str, Callable[[SseSetup], Awaitable[ScenarioResult]]] = {
    "sse_reset_mid_event": reset_mid_event,
    "sse_half_open": half_open,
    "sse_http_500": lambda setup: http_status(setup, 500, None),
    "sse_http_502": lambda setup: http_status(setup, 502, None),
    "sse_http_503": lambda setup: http_status(setup, 503, None),
    "sse_http_429": lambda setup: http_status(setup, 429, 3.0 if setup.full else 1.5),
    "sse_token_expiry": token_expiry,
    "sse_site_deleted": site_deleted,
    "sse_event_1mib": big_event,
    "sse_flood_10k": flood,
}
