"""Publish Ainsite (Smarteo) meter readings over MQTT the way the real service does.

MqttPublisher is the tools' one MQTT publisher (the demo, the test broker, the chaos scenarios
and the benchmark use it): QoS 1 from a queue, in order, nothing dropped. The rule of the
simulated meters: live readings carry the real clock's time. With `speed` > 1 each reading holds
`interval` simulated seconds of energy but is stamped when it is sent, so a sped-up simulation
never sends a timestamp from the future (the integration rejects those, and its statistics would
fill hours that have not happened). A backfill (`backfill_hours`) sends the past hours first, at
real-time rates with their past timestamps, in one burst, as the persistent session does after
an outage.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Iterable
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import functools
import json
import logging
import random
import ssl
import time
from typing import NamedTuple, Self
import uuid

import aiomqtt

from custom_components.energy_telemetry.protocol.ainsite.client import _guard_socket_registration

from .wait import wait_for

_LOGGER = logging.getLogger(__name__)

REGISTER_ACCUMULATED_KWH = 2
BACKFILL_INTERVAL = 900.0
"""Seconds between two backfilled readings of a meter (a meter read every 15 minutes)."""
REGISTER_INTERVAL_KWH = 12
REGISTER_AVERAGE_KW = 7
DEFAULT_METERS = ("mtr-1001", "mtr-1002")


def format_timestamp(moment: datetime) -> str:
    """Return an Ainsite timestamp: UTC, milliseconds, "Z" suffix."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def payload_v1(
    meter_reading: float,
    data_timestamp: datetime,
    system_timestamp: datetime | None = None,
    register_id: int = REGISTER_ACCUMULATED_KWH,
) -> bytes:
    """Return a schema 1 payload (register 2, accumulated energy) as JSON bytes."""
    return json.dumps(
        {
            "smarteo_payload_schema_version": 1,
            "data_timestamp_utc": format_timestamp(data_timestamp),
            "system_timestamp_utc": format_timestamp(system_timestamp or data_timestamp),
            "register_id": register_id,
            "meter_reading": meter_reading,
        },
        indent=4,
    ).encode()


def payload_v2(register_id: int, value: float, start: datetime, end: datetime) -> bytes:
    """Return a schema 2 payload (any other register) as JSON bytes."""
    return json.dumps(
        {
            "smarteo_payload_schema_version": 2,
            "measurement_start_timestamp_utc": format_timestamp(start),
            "measurement_end_timestamp_utc": format_timestamp(end),
            "register_id": register_id,
            "value": value,
        },
        indent=4,
    ).encode()


def meter_topic(customer_id: str, subscription_id: str, meter_id: str) -> str:
    """Return the topic a meter's readings are published on."""
    return f"meters/outbound/{customer_id}/{subscription_id}/{meter_id}"


@dataclass(slots=True)
class MeterState:
    """Simulated state of one meter."""

    meter_id: str
    total_kwh: float
    base_kw: float


@dataclass(slots=True)
class PublisherStats:
    """What run_publisher has sent, counted as the broker acknowledges it."""

    cycles: int = 0
    """Live cycles generated (a reading of each register of each meter)."""
    published: int = 0
    """Messages acknowledged, the backfill's included, the duplicates not."""
    duplicates: int = 0
    """Messages sent a second time on purpose (duplicate_rate), acknowledged."""
    reconnects: int = 0
    """Connections lost and made again."""
    backfilled: int = 0
    """Messages of the backfill acknowledged (duplicates not counted)."""


def cycle_messages(
    meters: list[MeterState],
    customer_id: str,
    subscription_id: str,
    start: datetime,
    end: datetime,
    rng: random.Random,
    *,
    hours: float | None = None,
    sent: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """Advance each meter from start to end and return the messages of that interval.

    `hours`: the energy of how many hours the interval holds (default: its length; more for
    sped-up simulated time). `sent`: the system timestamp (default: a moment after `end`).
    """
    if hours is None:
        hours = (end - start).total_seconds() / 3600
    messages: list[tuple[str, bytes]] = []
    for meter in meters:
        average_kw = max(0.0, meter.base_kw * (0.5 + rng.random()))
        energy = round(average_kw * hours, 6)
        meter.total_kwh = round(meter.total_kwh + energy, 3)
        topic = meter_topic(customer_id, subscription_id, meter.meter_id)
        system_timestamp = sent or end + timedelta(milliseconds=rng.randint(50, 2000))
        messages.append((topic, payload_v1(meter.total_kwh, end, system_timestamp)))
        messages.append((topic, payload_v2(REGISTER_INTERVAL_KWH, energy, start, end)))
        messages.append((topic, payload_v2(REGISTER_AVERAGE_KW, round(average_kw, 3), start, end)))
    return messages


def backfill_messages(
    meters: list[MeterState],
    customer_id: str,
    subscription_id: str,
    end: datetime,
    hours: float,
    rng: random.Random,
    interval: float = BACKFILL_INTERVAL,
) -> tuple[list[tuple[str, bytes]], datetime]:
    """Return the messages of the past `hours` up to `end`, oldest first, and where they end.

    Readings fall on whole multiples of `interval` (15 minutes: :00, :15, :30, :45), from the
    meters' current totals onwards, starting with a register 2 reading at the first boundary;
    the meters end at the totals of the last one.
    """
    step = timedelta(seconds=interval)
    epoch = end.timestamp()
    last = datetime.fromtimestamp(epoch - epoch % interval, UTC)
    moment = last - timedelta(hours=hours)
    messages = [
        (
            meter_topic(customer_id, subscription_id, meter.meter_id),
            payload_v1(meter.total_kwh, moment),
        )
        for meter in meters
    ]
    while moment < last:
        messages += cycle_messages(meters, customer_id, subscription_id, moment, moment + step, rng)
        moment += step
    return messages, last


def _live_end(previous: datetime, rng: random.Random) -> tuple[datetime, datetime]:
    """Return a live reading's data and system timestamps: both at or before the real clock."""
    sent = datetime.now(UTC)
    end = sent - timedelta(milliseconds=rng.randint(50, 2000))
    if end <= previous:
        end = previous + timedelta(milliseconds=1)
    return end, max(sent, end)


# --- the upstream's publishing ----------------------------------------------------------------


class Message(NamedTuple):
    """One message to publish; `key` names what it carries, to record its acknowledgement."""

    topic: str
    payload: bytes | str
    key: Hashable | None = None


class MqttPublisher:
    """Publishes at QoS 1 from a local queue, in order, like the upstream service: nothing dropped.

    Up to `window` messages are in flight; a message leaves the queue once the broker
    acknowledged it. While the broker is away the queue grows; after reconnecting (same client
    id) the messages in flight at the failure are sent again (QoS 1: at least once), then the
    rest, in order. `put` never blocks; `drain` waits until everything was acknowledged.
    """

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        *,
        host: str = "127.0.0.1",
        tls_context: ssl.SSLContext | None = None,
        window: int = 20,
        timeout: float = 10.0,
        reconnect_delay: float = 0.1,
        client_id: str | None = None,
        logger: logging.Logger | None = None,
        on_acked: Callable[[Message], None] | None = None,
    ) -> None:
        """Prepare; start() (or `async with`) connects. `timeout` bounds a connect and an ack."""
        self.address = f"{host}:{port}"
        self.client_id = client_id or f"ainsite-upstream-{uuid.uuid4().hex[:12]}"
        self._client = functools.partial(
            aiomqtt.Client,
            host,
            port,
            username=username,
            password=password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            tls_context=tls_context,
            max_inflight_messages=window,
            timeout=timeout,
            logger=logger,
        )
        """A new client with the same identity: the broker keeps its session."""
        self.window = window
        self.reconnect_delay = reconnect_delay
        self.on_acked = on_acked
        self.acked: dict[Hashable, float] = {}
        """Key -> monotonic time of its message's first acknowledgement."""
        self.publishes = 0
        """PUBLISH packets sent, those sent again after a failure included."""
        self.published = 0
        """Messages acknowledged (each once)."""
        self.reconnects = 0
        self._queue: deque[Message] = deque()
        self._in_flight: deque[asyncio.Task[None]] = deque()
        self._failure: BaseException | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def put(self, messages: Iterable[Message | tuple[str, bytes]], *, first: bool = False) -> None:
        """Queue messages; `first`: ahead of all not sent yet (behind those in flight)."""
        items = [item if isinstance(item, Message) else Message(*item) for item in messages]
        if first:
            sent = len(self._in_flight)
            self._queue.rotate(-sent)
            self._queue.extendleft(reversed(items))
            self._queue.rotate(sent)
        else:
            self._queue.extend(items)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Messages not acknowledged yet."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Whether everything queued was acknowledged."""
        return not self._queue

    def start(self) -> None:
        """Publish in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-publisher-{self.client_id}")

    async def stop(self) -> None:
        """Stop publishing (what is not acknowledged stays queued)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        """Start publishing."""
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop publishing."""
        await self.stop()

    async def drain(self, timeout: float) -> None:
        """Wait until every queued message was acknowledged; raise WaitTimeoutError if not in time."""

        def settled() -> bool:
            if self._task is not None and self._task.done():
                self._task.result()  # what ended the publisher, raised here
            return not self._queue

        await wait_for(
            settled,
            timeout=timeout,
            what=lambda: (
                f"acknowledgements of {len(self._queue)} messages published to "
                f"{self.address} ({self.published} acknowledged, {self.reconnects} "
                "reconnects)"
            ),
            interval=0.005,
        )

    async def _run(self) -> None:
        while True:
            client = self._client()
            # A full window is expected here, not a warning.
            client.pending_calls_threshold = max(client.pending_calls_threshold, self.window)
            # aiomqtt's own writer registration can reach a socket a broker restart closed and
            # raise EBADF in the event loop: guarded as the integration does.
            _guard_socket_registration(client)
            try:
                async with client:
                    await self._publish(client)
            except (aiomqtt.MqttError, OSError, TimeoutError) as err:
                self.reconnects += 1
                _LOGGER.info(
                    "Publisher lost the broker (%s); retrying in %.1f s", err, self.reconnect_delay
                )
                await asyncio.sleep(self.reconnect_delay)
            finally:
                await self._abandon_in_flight()
                # aiomqtt keeps the reason of a lost connection in a future nobody reads.
                disconnected = client._disconnected  # noqa: SLF001
                if disconnected.done() and not disconnected.cancelled():
                    disconnected.exception()

    async def _publish(self, client: aiomqtt.Client) -> None:
        """Keep the window full; retire acknowledged messages from the front, in order."""
        self._failure = None
        while True:
            in_flight = self._in_flight
            while in_flight and in_flight[0].done() and not in_flight[0].cancelled():
                if in_flight[0].exception() is not None:
                    break
                in_flight.popleft()
                message = self._queue.popleft()
                self.published += 1
                if self.on_acked is not None:
                    self.on_acked(message)
            if self._failure is not None:
                raise self._failure
            while len(in_flight) < min(self.window, len(self._queue)):
                task = asyncio.create_task(self._send(client, self._queue[len(in_flight)]))
                task.add_done_callback(self._sent)
                in_flight.append(task)
                self.publishes += 1
            self._wake.clear()
            if not (in_flight and in_flight[0].done()):
                await self._wake.wait()

    async def _send(self, client: aiomqtt.Client, message: Message) -> None:
        await client.publish(message.topic, message.payload, qos=1)
        if message.key is not None:
            self.acked.setdefault(message.key, time.monotonic())

    def _sent(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (failure := task.exception()) is not None:
            self._failure = self._failure or failure
        self._wake.set()

    async def _abandon_in_flight(self) -> None:
        """Cancel what is in flight: it stays queued, and goes again after the reconnect."""
        tasks = list(self._in_flight)
        self._in_flight.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the simulated meters ---------------------------------------------------------------------

LIVE = "live"
BACKFILL = "backfill"
DUPLICATE = "duplicate"


async def run_publisher(
    host: str,
    port: int,
    username: str,
    password: str,
    customer_id: str,
    subscription_id: str,
    meters: tuple[str, ...] | list[str] = DEFAULT_METERS,
    interval: float = 60.0,
    speed: float = 1.0,
    duplicate_rate: float = 0.1,
    tls_context: ssl.SSLContext | None = None,
    seed: int | None = None,
    *,
    cycles: int | None = None,
    start: datetime | None = None,
    stats: PublisherStats | None = None,
    reconnect_delay: float = 1.0,
    backfill_hours: float = 0.0,
    backfill_gate: asyncio.Event | None = None,
    drain_timeout: float = 300.0,
) -> PublisherStats:
    """Publish readings every interval simulated seconds (interval / speed real seconds).

    Each cycle holds `interval` simulated seconds of energy and is stamped with the real clock
    (never ahead of it); its interval registers cover the real time since the previous cycle
    (the first from `start`, default one cycle ago). Runs until cancelled or, when cycles is
    given, for that many cycles. A cycle goes once the broker acknowledged the one before, and
    survives a broker outage of up to `drain_timeout` seconds (an MqttPublisher: unsent messages
    go after reconnecting, in order); a longer one raises WaitTimeoutError.

    With `backfill_hours`, the meters first run through that many past hours (a reading every
    15 minutes, real-time rates, past timestamps), and those messages are sent in one burst,
    oldest first, ahead of the live ones not sent yet, once `backfill_gate` is set (at once
    without a gate). Live totals continue from where the backfill ends.
    """
    rng = random.Random(seed)
    stats = stats if stats is not None else PublisherStats()
    states = [
        MeterState(meter_id, round(rng.uniform(1000, 20000), 3), rng.uniform(0.3, 3.0))
        for meter_id in meters
    ]
    backfill: list[tuple[str, bytes]] = []
    clock = start or datetime.now(UTC) - timedelta(seconds=interval / speed)
    if backfill_hours > 0:
        backfill, clock = backfill_messages(
            states, customer_id, subscription_id, datetime.now(UTC), backfill_hours, rng
        )

    def acked(message: Message) -> None:
        if message.key == DUPLICATE:
            stats.duplicates += 1
            return
        stats.published += 1
        if message.key == BACKFILL:
            stats.backfilled += 1

    def with_duplicates(messages: list[tuple[str, bytes]], key: str) -> list[Message]:
        out: list[Message] = []
        for topic, payload in messages:
            out.append(Message(topic, payload, key))
            if duplicate_rate > 0 and rng.random() < duplicate_rate:
                out.append(Message(topic, payload, DUPLICATE))
        return out

    async def send_backfill(publisher: MqttPublisher) -> None:
        if backfill_gate is not None:
            await backfill_gate.wait()
        publisher.put(with_duplicates(backfill, BACKFILL), first=True)

    publisher = MqttPublisher(
        port,
        username,
        password,
        host=host,
        tls_context=tls_context,
        window=100,
        reconnect_delay=reconnect_delay,
        client_id=f"ainsite-sim-{uuid.uuid4().hex[:12]}",
        on_acked=acked,
    )
    loop = asyncio.get_running_loop()
    next_due = loop.time()
    async with publisher:
        backfilling = asyncio.create_task(send_backfill(publisher)) if backfill else None
        try:
            while cycles is None or stats.cycles < cycles:
                await asyncio.sleep(max(0.0, next_due - loop.time()))
                next_due += interval / speed
                end, sent = _live_end(clock, rng)
                messages = cycle_messages(
                    states,
                    customer_id,
                    subscription_id,
                    clock,
                    end,
                    rng,
                    hours=interval / 3600,
                    sent=sent,
                )
                clock = end
                stats.cycles += 1
                publisher.put(with_duplicates(messages, LIVE))
                # As the service's sender: the next cycle once the broker has this one.
                await publisher.drain(drain_timeout)
                stats.reconnects = publisher.reconnects
        finally:
            stats.reconnects = publisher.reconnects
            if backfilling is not None:
                backfilling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await backfilling
    return stats


def main() -> None:
    """Run the publisher from the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--customer", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--meters", default=",".join(DEFAULT_METERS))
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--duplicate-rate", type=float, default=0.1)
    parser.add_argument("--cycles", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--backfill-hours", type=float, default=0.0, help="first send this many past hours"
    )
    parser.add_argument("--cafile", help="CA file; enables TLS")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    tls_context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    stats = asyncio.run(
        run_publisher(
            args.host,
            args.port,
            args.username,
            args.password,
            args.customer,
            args.subscription,
            meters=[meter for meter in args.meters.split(",") if meter],
            interval=args.interval,
            speed=args.speed,
            duplicate_rate=args.duplicate_rate,
            tls_context=tls_context,
            seed=args.seed,
            cycles=args.cycles,
            backfill_hours=args.backfill_hours,
        )
    )
    _LOGGER.info("Published %s", stats)


if __name__ == "__main__":
    main()
