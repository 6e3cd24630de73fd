"""The Novacore event stream (SiteStream) against the simulator: readings, resumption, errors,
backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import logging
import time
from typing import Self

import aiohttp
from aiohttp import web
import pytest

from custom_components.energy_telemetry.protocol.common import BACKOFF_MAX, backoff_delay
from custom_components.energy_telemetry.protocol.novacore import (
    READ_TIMEOUT,
    DerReading,
    NovacoreAuthError,
    NovacoreClient,
    NovacoreConnectionError,
    SiteStream,
    StreamEndedError,
)
from tests.helpers.odd_server import OddServer
from tests.helpers.site import SITE_ID, TS, Novacore
from tests.helpers.waiting import wait_for

# --- backoff --------------------------------------------------------------------------------


def test_backoff_delay_bounds() -> None:
    """Full jitter between half and all of a doubling, capped ceiling."""
    for attempt in range(40):
        ceiling = min(BACKOFF_MAX, 2.0**attempt)
        delays = [backoff_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), attempt
    assert len({backoff_delay(3) for _ in range(20)}) > 1  # jittered
    assert BACKOFF_MAX / 2 <= backoff_delay(10**9) <= BACKOFF_MAX
    assert all(0.05 <= backoff_delay(0, 0.1, 5) <= 0.1 for _ in range(50))
    assert all(2.5 <= backoff_delay(8, 0.1, 5) <= 5 for _ in range(50))


# --- stream against the simulator -----------------------------------------------------------


def _stream_requests(novacore: Novacore) -> int:
    """Count stream requests, including those refused before the stream handler."""
    return sum(1 for _, path in novacore.server.requests if path.startswith("/stream/"))


@contextlib.asynccontextmanager
async def running(stream: SiteStream) -> AsyncIterator[None]:
    """Run a stream as a task for the length of a with block."""
    task = asyncio.create_task(stream.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class StreamProbe:
    """Runs a SiteStream as a task and records what it reports."""

    def __init__(self, client: NovacoreClient, site_id: str = SITE_ID) -> None:
        self.readings: list[DerReading] = []
        self.connected_at: list[float] = []
        self.errors: list[tuple[float, Exception]] = []
        self.stream = SiteStream(
            client,
            site_id,
            on_readings=self.readings.extend,
            on_connected=lambda: self.connected_at.append(time.monotonic()),
            on_disconnected=lambda err: self.errors.append((time.monotonic(), err)),
            read_timeout=60,  # no spurious reconnect when a busy machine stalls a test
            backoff_initial=0.01,
            backoff_max=0.05,
        )
        self.task = asyncio.create_task(self.stream.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def test_stream_readings_and_resume(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """Events become readings; after a cut the stream resumes from the last event id."""
    server = novacore.server
    async with StreamProbe(novacore.client(session)) as probe:
        await wait_for(lambda: probe.stream.connected)
        await novacore.push({"type": "pv", "W": -1, "timestamp": TS}, event_id="e1")
        await novacore.push({"type": "pv", "W": -2, "timestamp": TS + 1}, event="ping")
        await wait_for(lambda: probe.stream.stats.ignored_events == 1)
        await server.cut_streams(SITE_ID)
        await novacore.push({"type": "pv", "W": -3, "timestamp": TS + 2}, event_id="e3")
        await wait_for(lambda: len(probe.readings) == 2)
        assert [r.values["W"] for r in probe.readings] == [-1.0, -3.0]
        assert server.last_event_ids == [None, "e1"]
        assert probe.stream.last_event_id == "e3"
        assert probe.stream.stats.ignored_events == 1
        assert probe.stream.stats.connects == 2
        assert probe.stream.stats.disconnects == 1


async def test_stream_key_refused_twice_raises(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """With a key, a refused stream re-mints; if the fresh tokens are refused too, it gives up."""
    novacore.server.fail_stream(401, count=100)
    probe = StreamProbe(novacore.client(session))
    with pytest.raises(NovacoreAuthError):
        await asyncio.wait_for(probe.task, 30)  # a hang guard
    assert novacore.server.verifies == 3
    assert _stream_requests(novacore) == 3
    assert not probe.stream.connected
    assert isinstance(probe.errors[-1][1], NovacoreAuthError)


async def test_stream_bare_token_refused_raises(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    token = novacore.server.issue_token(novacore.identity)
    novacore.server.revoke_all_tokens()
    probe = StreamProbe(novacore.client(session, token=token))
    with pytest.raises(NovacoreAuthError):
        await asyncio.wait_for(probe.task, 30)  # a hang guard
    assert _stream_requests(novacore) == 1
    assert len(probe.errors) == 1


async def test_stream_honours_retry_after(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """A 429's Retry-After is the least delay before the next attempt, whatever the backoff."""
    novacore.server.fail_stream(429, retry_after=0.3)
    async with StreamProbe(novacore.client(session)) as probe:
        await wait_for(lambda: probe.connected_at)
        failed_at, error = probe.errors[0]
        assert isinstance(error, NovacoreConnectionError)
        assert error.retry_after == 0.3
        assert probe.connected_at[0] - failed_at >= 0.29
        assert _stream_requests(novacore) == 2


@pytest.mark.parametrize(
    ("status", "refusals", "verifies", "last_error"),
    [
        # With a key, a refused stream re-mints once and opens.
        (401, 1, 2, "NovacoreAuthError: HTTP 401 unauthorized"),
        # Server errors are retried, with the same token, until the stream opens.
        (500, 3, 1, "NovacoreConnectionError: HTTP 500 internal_error"),
    ],
)
async def test_stream_opens_after_refusals(
    session: aiohttp.ClientSession,
    novacore: Novacore,
    status: int,
    refusals: int,
    verifies: int,
    last_error: str,
) -> None:
    novacore.server.fail_stream(status, count=refusals)
    async with StreamProbe(novacore.client(session)) as probe:
        await novacore.server.wait_for_streams(SITE_ID)
        assert _stream_requests(novacore) == refusals + 1
        assert probe.stream.stats.disconnects == refusals
        assert novacore.server.verifies == verifies
        assert probe.stream.stats.last_error == last_error


async def test_stream_ended_by_server_reconnects(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    novacore.server.drop_streams_on_expiry = True
    async with StreamProbe(novacore.client(session)) as probe:
        await novacore.server.wait_for_streams(SITE_ID)
        novacore.server.expire_tokens()  # the server ends the stream cleanly
        await wait_for(lambda: novacore.server.stream_connects == 2 and probe.stream.connected)
        assert isinstance(probe.errors[0][1], StreamEndedError)
        assert isinstance(probe.errors[1][1], NovacoreAuthError)  # the old token, once
        assert novacore.server.verifies == 2


async def test_stream_invalid_utf8_is_rejected(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """Bytes that are not UTF-8 make one rejected event: no error, no reconnect."""
    async with StreamProbe(novacore.client(session)) as probe:
        await novacore.server.wait_for_streams(SITE_ID)
        await novacore.server.push_raw(SITE_ID, b"data: \xff\xfe\n\n")
        await novacore.push({"type": "meter", "W": 5})
        await wait_for(lambda: probe.readings)
        assert probe.stream.stats.parse.rejected == {"invalid_json": 1}
        assert not probe.errors
        assert novacore.server.stream_connects == 1


async def test_stream_wrong_content_type(session: aiohttp.ClientSession, odd: OddServer) -> None:
    odd.responses[f"/stream/sites/{SITE_ID}"] = lambda: web.json_response({"type": "pv", "W": 1})
    async with StreamProbe(NovacoreClient(session, odd.url, token="t")) as probe:
        await wait_for(lambda: len(probe.errors) >= 2)
        assert "unexpected content type application/json" in str(probe.errors[0][1])
        assert not probe.readings
        assert probe.stream.stats.connects == 0


async def test_stream_without_callbacks(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """The connection callbacks are optional."""
    stream = SiteStream(
        novacore.client(session),
        SITE_ID,
        on_readings=lambda readings: None,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    assert stream.read_timeout == READ_TIMEOUT
    async with running(stream):
        await wait_for(lambda: stream.connected)
        await novacore.server.cut_streams(SITE_ID)
        await wait_for(lambda: stream.stats.disconnects == 1 and stream.connected)
        assert stream.stats.connects == 2


async def test_an_event_whose_handling_fails_does_not_end_the_stream(
    session: aiohttp.ClientSession, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect in the readings' handler skips that event, logged; the stream stays open.

    Reconnecting instead would resume at the same event (Last-Event-ID) and fail on it again.
    """
    seen: list[float] = []

    def on_readings(readings: list[DerReading]) -> None:
        value = readings[0].values["W"]
        seen.append(value)
        if value in (-2, -4):
            raise ValueError("a defect")

    stream = SiteStream(novacore.client(session), SITE_ID, on_readings=on_readings, read_timeout=60)
    async with running(stream):
        await wait_for(lambda: stream.connected)
        with caplog.at_level(logging.DEBUG, logger="custom_components.energy_telemetry"):
            for index, value in enumerate((-1, -2, -3, -4, -5)):
                await novacore.push({"type": "pv", "W": value, "timestamp": TS + index})
            await wait_for(lambda: len(seen) == 5)
        assert seen == [-1.0, -2.0, -3.0, -4.0, -5.0]
        assert stream.stats.failed_events == 2
        assert stream.stats.connects == 1
        assert stream.stats.disconnects == 0
        assert stream.connected
        failures = [r for r in caplog.records if "could not be applied" in r.getMessage()]
        # The first with its traceback at error level, the next at debug: no log flood.
        assert [r.levelno for r in failures] == [logging.ERROR, logging.DEBUG]
        assert all(r.exc_info and "a defect" in str(r.exc_info[1]) for r in failures)


async def test_stream_204_ends_the_stream(session: aiohttp.ClientSession, odd: OddServer) -> None:
    """A 204 answer ends the stream without an event; the stream tries again later."""
    odd.responses[f"/stream/sites/{SITE_ID}"] = lambda: web.Response(
        status=204, headers={"Content-Type": "text/event-stream"}
    )
    async with StreamProbe(NovacoreClient(session, odd.url, token="t")) as probe:
        await wait_for(lambda: len(probe.errors) >= 2)
        assert isinstance(probe.errors[0][1], StreamEndedError)
        assert probe.stream.stats.connects >= 2
        assert not probe.readings
