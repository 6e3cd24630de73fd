"""Publish Ainsite (Smarteo) meter readings over MQTT the way the real service does.

Live readings carry the real clock's time: with `speed` > 1 each reading holds `interval`
simulated seconds of energy but is stamped when it is sent, so a sped-up simulation never sends
a timestamp from the future (the integration rejects those, and its statistics would fill hours
that have not happened). A backfill (`backfill_hours`) sends the past hours first, at real-time
rates with their past timestamps, in one burst, as the persistent session does after an outage.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import json
import logging
import random
import ssl
import uuid

import aiomqtt

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
    """What the publisher has sent."""

    cycles: int = 0
    published: int = 0
    duplicates: int = 0
    reconnects: int = 0
    backfilled: int = 0
    """Messages of the backfill sent (duplicates not counted)."""
    by_meter: dict[str, int] = field(default_factory=dict)


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
) -> PublisherStats:
    """Publish readings every interval simulated seconds (interval / speed real seconds).

    Each cycle holds `interval` simulated seconds of energy and is stamped with the real clock
    (never ahead of it); its interval registers cover the real time since the previous cycle
    (the first from `start`, default one cycle ago). Runs until cancelled or, when cycles is
    given, for that many cycles. Survives broker outages: unsent messages are sent after
    reconnecting, in order.

    With `backfill_hours`, the meters first run through that many past hours (a reading every
    15 minutes, real-time rates, past timestamps), and those messages are sent in one burst,
    oldest first, before the next live cycle once `backfill_gate` is set (at once without a
    gate). Live totals continue from where the backfill ends.
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
    backfill_left = 0
    """Backfill messages at the front of `pending`."""
    pending: list[tuple[str, bytes]] = []
    client_id = f"ainsite-sim-{uuid.uuid4().hex[:12]}"
    loop = asyncio.get_running_loop()
    next_due = loop.time()
    while cycles is None or stats.cycles < cycles:
        try:
            async with aiomqtt.Client(
                host,
                port,
                username=username,
                password=password,
                identifier=client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                tls_context=tls_context,
                max_inflight_messages=100,
            ) as client:
                while cycles is None or stats.cycles < cycles or pending:
                    if backfill and (backfill_gate is None or backfill_gate.is_set()):
                        pending[0:0] = backfill
                        backfill_left += len(backfill)
                        backfill = []
                    if not pending:
                        delay = next_due - loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        next_due += interval / speed
                        end, sent = _live_end(clock, rng)
                        pending = cycle_messages(
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
                    while pending:
                        topic, payload = pending[0]
                        await client.publish(topic, payload, qos=1)
                        pending.pop(0)
                        if backfill_left:
                            backfill_left -= 1
                            stats.backfilled += 1
                        stats.published += 1
                        meter_id = topic.rsplit("/", 1)[-1]
                        stats.by_meter[meter_id] = stats.by_meter.get(meter_id, 0) + 1
                        if duplicate_rate > 0 and rng.random() < duplicate_rate:
                            await client.publish(topic, payload, qos=1)
                            stats.duplicates += 1
                    if cycles is not None and stats.cycles >= cycles:
                        return stats
        except aiomqtt.MqttError as err:
            stats.reconnects += 1
            _LOGGER.info("Publisher lost the broker (%s); retrying in %.1f s", err, reconnect_delay)
            await asyncio.sleep(reconnect_delay)
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
