"""Building blocks of the scenarios: recorders of what reached Home Assistant, sources, waits.

The peers (broker, publisher, Novacore server) and the set-up through the real config flow come
from simulator/. The rule: a scenario's waits read live state, and a wait that times out fails
the scenario saying what was still missing (`expect`), so the table shows why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import itertools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback

from custom_components.energy_telemetry.ainsite.coordinator import AinsiteCoordinator
from custom_components.energy_telemetry.novacore.coordinator import NovacoreCoordinator
from custom_components.energy_telemetry.protocol.ainsite import parse_payload, parse_topic
from custom_components.energy_telemetry.protocol.novacore import DerReading
from simulator.ainsite_publisher import MqttPublisher
from simulator.flows import setup_ainsite
from simulator.wait import WaitTimeoutError

from .report import ScenarioResult

if TYPE_CHECKING:
    from simulator.broker import Mosquitto
    from simulator.novacore_server import NovacoreServer

NON_VALUES = frozenset({"unavailable", "unknown"})
UPSTREAM_LOGGER_NAME = "chaos.upstream"
_UPSTREAM_LOGGER = logging.getLogger(UPSTREAM_LOGGER_NAME)


# How long a scenario waits for what was sent to arrive before it counts the rest as lost. Only
# reached when something is lost; a busy machine is slow, and a short wait would count the late
# as lost.
DELIVERY_TIMEOUT = 300.0


async def expect(result: ScenarioResult, wait: Awaitable[object]) -> bool:
    """Await a wait; if it times out, fail the scenario saying what was missing.

    Returns whether it held: the scenario goes on to measure what it can, and its row says why
    it failed.
    """
    try:
        await wait
    except WaitTimeoutError as err:
        result.failures.append(str(err))
        return False
    return True


@dataclass(frozen=True, slots=True)
class AinsitePeer:
    """A Home Assistant, the broker, and the account an Ainsite entry of the scenarios uses."""

    hass: HomeAssistant
    broker: Mosquitto
    username: str
    password: str
    customer_id: str
    subscription_id: str

    async def add_entry(self) -> ConfigEntry[Any]:
        """Add the subscription through the real config flow (TLS); return once connected."""
        return await setup_ainsite(
            self.hass,
            self.broker.tls_port,
            self.username,
            self.password,
            self.customer_id,
            self.subscription_id,
        )

    def upstream(self, window: int = 20) -> MqttPublisher:
        """Return the upstream service's publisher: the admin on the plain listener, queued.

        A short ack timeout: a publish the broker does not acknowledge within 2 s is sent again
        on a new connection (QoS 1 allows it), which a broker restart needs.
        """
        return self.broker.publisher(window=window, timeout=2, logger=_UPSTREAM_LOGGER)


# --- entries ----------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Final:
    """The last number an entity showed, its unit, and whether only the log still held it."""

    value: float | None
    unit: str | None
    stale: bool


def final_value(hass: HomeAssistant, log: StateLog, entity_id: str) -> Final:
    """Return the last number an entity showed.

    A total goes unavailable when its source falls silent (a DER is stale after a minute by
    design): a scenario that stopped sending checks the value the integration last held, from
    its log of state changes, not the unavailable its own silence caused.
    """
    state = hass.states.get(entity_id)
    shown = None if state is None else as_number(state.state)
    if state is not None and shown is not None:
        return Final(shown, state.attributes.get("unit_of_measurement"), stale=False)
    held = log.values(entity_id)
    if state is not None and state.state == "unavailable" and held:
        return Final(held[-1], log.units.get(entity_id), stale=True)
    return Final(None, None, stale=False)


@dataclass(slots=True)
class StateLog:
    """Every state_changed of the integration's sensors, with the monotonic time it happened."""

    changes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    units: dict[str, str | None] = field(default_factory=dict)
    """Entity id -> the unit of its last numeric state."""
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
            else:
                log.units[entity_id] = new.attributes.get("unit_of_measurement")

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


@dataclass(slots=True)
class SsePusher:
    """Pushes numbered meter readings to a site: W is the sequence number, the total grows.

    start() pushes one every `period` seconds until stop(); push_next() pushes one now.
    """

    server: NovacoreServer
    site_id: str
    der_id: str
    period: float = 0.05
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 10**8)
    """The first reading's timestamp: in the past, so that none is ever from the future."""
    seq: int = 0
    sent: dict[int, float] = field(default_factory=dict)
    """Sequence number -> monotonic time it was pushed."""
    paused: bool = False
    _task: asyncio.Task[None] | None = None

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


class Timings:
    """The timings of a run: shorter than the integration's, so faults fit in minutes.

    The long run (scripts/chaos, `full`) holds the tight bounds. The test suite runs on busy CI
    machines, where the scheduler, not the integration, decides how soon a process gets to run:
    `slack` allows that much more on a measured reconnect or recovery, and every other target
    holds exactly.
    """

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
        """Seconds a busy machine may add to a measured reconnect or recovery."""
        return 0.0 if self.full else 15.0

    @property
    def read_timeout(self) -> float:
        """Stream read timeout used (the integration's default is 120 s)."""
        return 2.0 if self.full else 1.0

    @property
    def hold(self) -> float:
        """How long a fault lasts."""
        return 8.0 if self.full else 2.0
