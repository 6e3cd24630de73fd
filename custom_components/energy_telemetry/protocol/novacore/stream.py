"""The event stream of a site: an SSE source, reconnects with backoff, Last-Event-ID."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
import logging
from typing import cast

import aiohttp
from aiohttp_sse_client.client import READY_STATE_CONNECTING, EventSource, MessageEvent

from ..common import BACKOFF_INITIAL, BACKOFF_MAX, ParseStats, backoff_delay
from .client import NovacoreClient, raise_for_status
from .errors import (
    NovacoreAuthError,
    NovacoreConnectionError,
    NovacoreError,
    StreamEndedError,
    describe,
)
from .readings import DerReading, parse_event

_LOGGER = logging.getLogger(__name__)

READ_TIMEOUT = 120.0
"""Seconds without a byte on the stream before the connection is taken as dead."""
READ_BUFSIZE = 2**21
"""aiohttp read buffer for the stream: SSE lines up to twice this size are accepted."""
_IGNORED_EVENT_NAMES = frozenset({"keepalive", "keep-alive", "ping", "heartbeat"})


class _SiteEventSource(EventSource):  # type: ignore[misc]
    """An EventSource that reports HTTP errors precisely and leaves reconnecting to us."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        read_timeout: float,
    ) -> None:
        super().__init__(
            url,
            session=session,
            reconnection_time=timedelta(0),
            max_connect_retry=0,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout),
            read_bufsize=READ_BUFSIZE,
        )
        self._opened = False

    async def __anext__(self) -> MessageEvent:
        """Return the next event, as the library does but decoding lines with errors="replace".

        The library decodes strictly: bytes that are not UTF-8 would raise UnicodeDecodeError,
        end the connection and, replayed after Last-Event-ID, end every later one. Replaced,
        they make a malformed event that is rejected and counted like any other.
        """
        response = self._response
        if not response:
            raise ValueError
        if response.status == 204:
            raise StopAsyncIteration
        async for line_in_bytes in response.content:
            line = line_in_bytes.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            if line == "":
                event = self._dispatch_event()
                if event is not None:
                    return cast("MessageEvent", event)
                continue
            if line[0] == ":":
                continue
            field_name, colon, field_value = line.partition(":")
            self._process_field(field_name, field_value.lstrip(" ") if colon else "")
        self._ready_state = READY_STATE_CONNECTING
        if self._on_error:
            self._on_error()
        await self.connect()  # raises StreamEndedError: the server ended the stream
        raise StopAsyncIteration  # pragma: no cover - connect() raised

    def _process_field(self, field_name: str, field_value: str) -> None:
        """Ignore `retry:`: reconnecting is ours, with backoff (the library would sleep first)."""
        if field_name != "retry":
            super()._process_field(field_name, field_value)

    async def connect(self, retry: int = 0) -> None:
        """Open the stream once; a second call means the server ended it."""
        if self._opened:
            raise StreamEndedError("the server ended the stream")
        self._opened = True
        headers = self._kwargs["headers"]
        headers["Accept"] = "text/event-stream"
        headers["Cache-Control"] = "no-cache"
        response = await self._session.request("GET", self._url, **self._kwargs)
        try:
            await raise_for_status(response)
            if response.content_type != "text/event-stream":
                raise NovacoreError(f"unexpected content type {response.content_type}")
        except NovacoreError:
            response.release()
            raise
        self._response = response
        self._origin = str(response.real_url.origin())
        await self._connected()


@dataclass(slots=True)
class StreamStats:
    """Counters of one site stream."""

    connects: int = 0
    disconnects: int = 0
    events: int = 0
    ignored_events: int = 0
    failed_events: int = 0
    """Events whose handling raised (a defect): logged with the traceback and skipped."""
    parse: ParseStats = field(default_factory=ParseStats)
    last_error: str | None = None


class SiteStream:
    """Holds a site's SSE stream open: reconnects with backoff, resumes with Last-Event-ID."""

    def __init__(
        self,
        client: NovacoreClient,
        site_id: str,
        *,
        on_readings: Callable[[list[DerReading]], None],
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[Exception], None] | None = None,
        read_timeout: float | None = None,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
    ) -> None:
        """Prepare the stream; `run` opens it."""
        self._client = client
        self.site_id = site_id
        self._on_readings = on_readings
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.read_timeout = read_timeout or READ_TIMEOUT
        self.backoff_initial = backoff_initial or BACKOFF_INITIAL
        self.backoff_max = backoff_max or BACKOFF_MAX
        self.last_event_id: str | None = None
        self.stats = StreamStats()
        self.connected = False
        self._got_event = False

    async def run(self) -> None:
        """Stream until cancelled. Raises NovacoreAuthError when a bare token is refused."""
        attempt = 0
        auth_failures = 0
        while True:
            delay_floor = 0.0
            error: Exception
            try:
                await self._run_once()
                error = StreamEndedError("the server ended the stream")
            except NovacoreAuthError as err:
                if not self._client.can_mint or auth_failures >= 2:
                    self._set_disconnected(err)
                    raise
                auth_failures += 1
                self._client.invalidate_token()
                error = err
            except NovacoreConnectionError as err:
                error = err
                delay_floor = err.retry_after or 0.0
            except (NovacoreError, aiohttp.ClientError, TimeoutError, ValueError) as err:
                # ValueError: a line over the read buffer, or bytes that are not UTF-8.
                error = err
            if self._got_event:
                attempt = 0
                auth_failures = 0
            self._set_disconnected(error)
            delay = max(delay_floor, backoff_delay(attempt, self.backoff_initial, self.backoff_max))
            attempt += 1
            _LOGGER.debug(
                "Novacore stream of %s closed (%s), reconnecting in %.1f s",
                self.site_id,
                describe(error),
                delay,
            )
            await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        """Hold one connection until it ends."""
        self._got_event = False
        token = await self._client.async_token()
        headers = {"Authorization": f"Bearer {token}"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        source = _SiteEventSource(
            self._client.stream_url(self.site_id),
            self._client.session,
            headers,
            self.read_timeout,
        )
        async with source:
            self.stats.connects += 1
            self.connected = True
            if self._on_connected is not None:
                self._on_connected()
            async for event in source:
                self._handle(event)

    def _handle(self, event: MessageEvent) -> None:
        if event.last_event_id:
            self.last_event_id = event.last_event_id
        if event.type is not None and event.type.lower() in _IGNORED_EVENT_NAMES:
            self.stats.ignored_events += 1
            return
        self.stats.events += 1
        self._got_event = True
        try:
            readings = parse_event(event.data, self.stats.parse)
            if readings:
                self._on_readings(readings)
        except Exception:
            # A defect in handling one event must not end the stream: reconnecting would resume
            # at this very event (Last-Event-ID) and fail on it again, for ever.
            self.stats.failed_events += 1
            # The traceback once at error level; later ones at debug (no log flood).
            _LOGGER.log(
                logging.ERROR if self.stats.failed_events == 1 else logging.DEBUG,
                "Novacore event of site %s could not be applied (%d so far)",
                self.site_id,
                self.stats.failed_events,
                exc_info=True,
            )

    def _set_disconnected(self, error: Exception) -> None:
        self.stats.disconnects += 1
        self.stats.last_error = describe(error)
        self.connected = False
        if self._on_disconnected is not None:
            self._on_disconnected(error)
