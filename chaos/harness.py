"""Building blocks of the scenarios: entries set up through the real flow, recorders, publishers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import itertools
import logging
import math
import time
from typing import TYPE_CHECKING, Any
import uuid

import aiomqtt
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType

from custom_components.energy_telemetry.ainsite.coordinator import AinsiteCoordinator
from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.novacore.coordinator import NovacoreCoordinator
from custom_components.energy_telemetry.protocol.ainsite import parse_payload, parse_topic
from custom_components.energy_telemetry.protocol.ainsite.client import _guard_socket_registration
from custom_components.energy_telemetry.protocol.novacore import DerReading

if TYPE_CHECKING:
    from simulator.novacore_server import NovacoreServer

NON_VALUES = frozenset({"unavailable", "unknown"})
UPSTREAM_LOGGER_NAME = "chaos.upstream"
_UPSTREAM_LOGGER = logging.getLogger(UPSTREAM_LOGGER_NAME)


# How long a scenario waits for what was sent to arrive before it counts the rest as lost. Only
# reached when something is lost; a busy machine is slow, and a short wait would count the late
# as lost.
DELIVERY_TIMEOUT = 300.0


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02
) -> bool:
    """Wait until predicate() is truthy; return False on timeout instead of raising."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


# --- entries ----------------------------------------------------------------------------------


async def setup_novacore(
    hass: HomeAssistant, server: NovacoreServer, site_id: str, private_key_pem: str
) -> ConfigEntry[Any]:
    """Add a Novacore site through the real config flow and wait for its stream."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "novacore"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"api_url": server.url, "private_key": private_key_pem}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"site_id": site_id})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry: ConfigEntry[Any] = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await server.wait_for_streams(site_id, 1)
    return entry


async def setup_ainsite(
    hass: HomeAssistant,
    port: int,
    username: str,
    password: str,
    customer_id: str,
    subscription_id: str | None,
) -> ConfigEntry[Any]:
    """Add an Ainsite subscription through the real config flow and wait for the session."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "ainsite"}
    )
    data: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": True,
        "username": username,
        "password": password,
        "customer_id": customer_id,
    }
    if subscription_id:
        data["subscription_id"] = subscription_id
    result = await hass.config_entries.flow.async_configure(result["flow_id"], data)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry: ConfigEntry[Any] = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert await wait_for(lambda: entry.runtime_data.connected, 60)
    return entry


def tune_novacore(
    entry: ConfigEntry[Any], backoff_initial: float, backoff_max: float, read_timeout: float
) -> None:
    """Shorten the stream's backoff and read timeout (they apply from the next connection)."""
    stream = entry.runtime_data.stream
    stream.backoff_initial = backoff_initial
    stream.backoff_max = backoff_max
    stream.read_timeout = read_timeout


def tune_ainsite(entry: ConfigEntry[Any], backoff_initial: float, backoff_max: float) -> None:
    """Shorten the MQTT session's reconnect backoff."""
    connection = entry.runtime_data.connection
    connection._backoff_initial = backoff_initial  # noqa: SLF001 - no public setter
    connection._backoff_max = backoff_max  # noqa: SLF001


# --- what Home Assistant shows ----------------------------------------------------------------


def as_number(state: str | None) -> float | None:
    """Return a state as a float, or None for unavailable, unknown or anything not numeric."""
    if state is None or state in NON_VALUES:
        return None
    try:
        return float(state)
    except ValueError:
        return None


@dataclass(slots=True)
class StateLog:
    """Every state_changed of the integration's sensors, with the monotonic time it happened."""

    changes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    non_numeric: list[tuple[str, str]] = field(default_factory=list)
    unavailable_spells: int = 0

    def values(self, entity_id: str) -> list[float]:
        """Return the numeric states an entity went through, in order."""
        return [
            number
            for _, state in self.changes.get(entity_id, [])
            if (number := as_number(state)) is not None
        ]

    def first_after(self, entity_id: str, moment: float, accept: Callable[[float], bool]) -> float:
        """Return the time of the first numeric state after moment that accept() takes, or inf."""
        for when, state in self.changes.get(entity_id, []):
            number = as_number(state)
            if when >= moment and number is not None and accept(number):
                return when
        return math.inf

    def backwards(self, entity_ids: list[str]) -> list[tuple[str, float, float]]:
        """Return every (entity, before, after) where a total decreased."""
        moves = []
        for entity_id in entity_ids:
            values = self.values(entity_id)
            moves.extend(
                (entity_id, before, after)
                for before, after in itertools.pairwise(values)
                if after < before
            )
        return moves


def _is_number(attributes: Mapping[str, Any]) -> bool:
    """Return True for a sensor whose state must be a number (it has a unit or a state class).

    Timestamps, enums (an EV charger's status) and text (its protocol) are not numbers.
    """
    if attributes.get("device_class") in ("timestamp", "enum"):
        return False
    return "unit_of_measurement" in attributes or "state_class" in attributes


@contextlib.contextmanager
def record_states(hass: HomeAssistant, prefix: str = "sensor.") -> Iterator[StateLog]:
    """Record the state changes of entities whose id starts with prefix."""
    log = StateLog()

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        entity_id = event.data["entity_id"]
        new = event.data["new_state"]
        if not entity_id.startswith(prefix) or new is None:
            return
        log.changes.setdefault(entity_id, []).append((time.monotonic(), new.state))
        if new.state == "unavailable":
            log.unavailable_spells += 1
        elif new.state != "unknown" and _is_number(new.attributes):
            number = as_number(new.state)
            if number is None or not math.isfinite(number):
                log.non_numeric.append((entity_id, new.state))

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, _changed)
    try:
        yield log
    finally:
        unsub()


# --- what reached the integration -------------------------------------------------------------


@dataclass(slots=True)
class Deliveries:
    """Every reading handed to a coordinator, before it decides what to keep."""

    mqtt: list[tuple[float, tuple[str, str, float]]] = field(default_factory=list)
    sse: list[tuple[float, DerReading]] = field(default_factory=list)

    def mqtt_keys(self) -> set[tuple[str, str, float]]:
        """Return the distinct (meter, register, timestamp ms) delivered."""
        return {key for _, key in self.mqtt}


@contextlib.contextmanager
def record_deliveries() -> Iterator[Deliveries]:
    """Wrap both coordinators' message handlers (for entries created inside the block)."""
    deliveries = Deliveries()
    on_message = AinsiteCoordinator._async_on_message  # noqa: SLF001
    on_readings = NovacoreCoordinator._async_on_readings  # noqa: SLF001

    def _message(self: AinsiteCoordinator, topic: str, payload: bytes) -> None:
        parts = parse_topic(topic)
        reading = parse_payload(payload)
        if parts is not None and reading is not None:
            key = (parts[2], reading.register_id, reading.timestamp.timestamp() * 1000.0)
            deliveries.mqtt.append((time.monotonic(), key))
        on_message(self, topic, payload)

    def _readings(self: NovacoreCoordinator, readings: list[DerReading]) -> None:
        now = time.monotonic()
        deliveries.sse.extend((now, reading) for reading in readings)
        on_readings(self, readings)

    AinsiteCoordinator._async_on_message = _message  # type: ignore[method-assign]  # noqa: SLF001
    NovacoreCoordinator._async_on_readings = _readings  # type: ignore[method-assign]  # noqa: SLF001
    try:
        yield deliveries
    finally:
        AinsiteCoordinator._async_on_message = on_message  # type: ignore[method-assign]  # noqa: SLF001
        NovacoreCoordinator._async_on_readings = on_readings  # type: ignore[method-assign]  # noqa: SLF001


# --- an SSE source ----------------------------------------------------------------------------


class SsePusher:
    """Pushes numbered meter readings to a site: W is the sequence number, the total grows."""

    def __init__(
        self, server: NovacoreServer, site_id: str, der_id: str, start_ms: int, period: float
    ) -> None:
        """Prepare; start() pushes every period seconds until stop()."""
        self.server = server
        self.site_id = site_id
        self.der_id = der_id
        self.start_ms = start_ms
        self.period = period
        self.seq = 0
        self.sent: dict[int, float] = {}
        """Sequence number -> monotonic time it was pushed."""
        self.paused = False
        self._task: asyncio.Task[None] | None = None

    def event(self, seq: int, **extra: Any) -> dict[str, Any]:
        """Return reading number seq."""
        return {
            "type": "meter",
            "der_id": self.der_id,
            "W": seq,
            "total_import_Wh": 100000 + seq,
            "timestamp": self.start_ms + seq * 1000,
            **extra,
        }

    async def push_next(self, **extra: Any) -> int:
        """Push the next reading (if the site exists) and return its number."""
        self.seq += 1
        seq = self.seq
        if not self.server.has_site(self.site_id):
            return seq
        self.sent[seq] = time.monotonic()
        await self.server.push(self.site_id, self.event(seq, **extra))
        return seq

    def start(self) -> None:
        """Push in the background."""
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            if not self.paused:
                await self.push_next()
            await asyncio.sleep(self.period)

    async def stop(self) -> None:
        """Stop pushing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# --- an MQTT source ---------------------------------------------------------------------------


@dataclass(slots=True)
class Outgoing:
    """One message the upstream service must deliver, with the reading it carries."""

    topic: str
    payload: bytes
    key: tuple[str, str, float]


class QueuedPublisher:
    """Publishes at QoS 1 from a local queue like the upstream service: nothing is dropped.

    A message leaves the queue only once the broker acknowledged it; while the broker is down the
    queue grows and is sent in order when it returns (messages in flight at a failure are sent
    again, which is QoS 1's at-least-once).
    """

    def __init__(self, port: int, username: str, password: str, window: int = 20) -> None:
        """Prepare; start() connects."""
        self.port = port
        self.username = username
        self.password = password
        self.window = window
        self.queue: list[Outgoing] = []
        self.acked: dict[tuple[str, str, float], float] = {}
        """Key -> monotonic time of the first acknowledgement."""
        self.enqueued_at: dict[tuple[str, str, float], float] = {}
        self.publishes = 0
        self.reconnects = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client_id = f"chaos-upstream-{uuid.uuid4().hex[:8]}"

    def put(self, messages: list[Outgoing]) -> None:
        """Queue messages for publishing."""
        now = time.monotonic()
        for message in messages:
            self.enqueued_at.setdefault(message.key, now)
        self.queue.extend(messages)
        self._wake.set()

    def start(self) -> None:
        """Publish in the background."""
        self._task = asyncio.create_task(self._run())

    @property
    def idle(self) -> bool:
        """Whether everything queued was acknowledged."""
        return not self.queue

    async def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty."""
        return await wait_for(lambda: self.idle, timeout)

    async def _run(self) -> None:
        while True:
            client = aiomqtt.Client(
                "127.0.0.1",
                self.port,
                username=self.username,
                password=self.password,
                identifier=self._client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                max_inflight_messages=self.window,
                timeout=2,
                logger=_UPSTREAM_LOGGER,
            )
            # A full window is expected here, not a warning.
            client.pending_calls_threshold = max(client.pending_calls_threshold, self.window)
            # aiomqtt's own writer registration can reach a socket a broker restart closed and
            # raise EBADF in the event loop: guard it as the integration does.
            _guard_socket_registration(client)
            try:
                async with client:
                    await self._publish(client)
            except (aiomqtt.MqttError, OSError, TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(0.1)
            finally:
                # aiomqtt keeps the reason of a lost connection in a future nobody reads.
                disconnected = client._disconnected  # noqa: SLF001
                if disconnected.done() and not disconnected.cancelled():
                    disconnected.exception()

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self.queue[: self.window]
            self.publishes += len(batch)
            results = await asyncio.gather(
                *(client.publish(m.topic, m.payload, qos=1) for m in batch),
                return_exceptions=True,
            )
            done = 0
            now = time.monotonic()
            for message, outcome in zip(batch, results, strict=True):
                if isinstance(outcome, BaseException):
                    break
                self.acked.setdefault(message.key, now)
                done += 1
            del self.queue[:done]
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed

    async def stop(self) -> None:
        """Stop publishing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Timings:
    """The reconnect timings of a run: shorter than the integration's, so faults fit in minutes."""

    __slots__ = ()
    full: bool

    @property
    def cap(self) -> float:
        """Backoff cap used (the integration's default is 60 s)."""
        return 2.0 if self.full else 1.0

    @property
    def initial(self) -> float:
        """First backoff delay used (the integration's default is 1 s)."""
        return 0.1

    @property
    def slack(self) -> float:
        """Seconds a busy machine may add to a measured reconnect or recovery.

        scripts/chaos (full) holds the tight bounds. The test suite runs on busy CI machines,
        where the scheduler, not the integration, decides how soon a process gets to run: it
        allows this much more, and still holds every other target exactly.
        """
        return 0.0 if self.full else 15.0
