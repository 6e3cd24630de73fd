"""Publish Ainsite (Smarteo) meter readings over MQTT the way the real service does."""

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
    by_meter: dict[str, int] = field(default_factory=dict)


def cycle_messages(
    meters: list[MeterState],
    customer_id: str,
    subscription_id: str,
    start: datetime,
    end: datetime,
    rng: random.Random,
) -> list[tuple[str, bytes]]:
    """Advance each meter from start to end and return the messages of that interval."""
    hours = (end - start).total_seconds() / 3600
    messages: list[tuple[str, bytes]] = []
    for meter in meters:
        average_kw = max(0.0, meter.base_kw * (0.5 + rng.random()))
        energy = round(average_kw * hours, 6)
        meter.total_kwh = round(meter.total_kwh + energy, 3)
        topic = meter_topic(customer_id, subscription_id, meter.meter_id)
        system_timestamp = end + timedelta(milliseconds=rng.randint(50, 2000))
        messages.append((topic, payload_v1(meter.total_kwh, end, system_timestamp)))
        messages.append((topic, payload_v2(REGISTER_INTERVAL_KWH, energy, start, end)))
        messages.append((topic, payload_v2(REGISTER_AVERAGE_KW, round(average_kw, 3), start, end)))
    return messages


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
) -> PublisherStats:
    """Publish readings every interval simulated seconds (interval / speed real seconds).

    Simulated time starts at start (default: now) and advances by interval per cycle, so with
    speed > 1 the timestamps run ahead of the wall clock. Runs until cancelled or, when cycles
    is given, for that many cycles. Survives broker outages: unsent messages are sent after
    reconnecting, in order.
    """
    rng = random.Random(seed)
    stats = stats if stats is not None else PublisherStats()
    states = [
        MeterState(meter_id, round(rng.uniform(1000, 20000), 3), rng.uniform(0.3, 3.0))
        for meter_id in meters
    ]
    clock = start or datetime.now(UTC)
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
                    if not pending:
                        delay = next_due - loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        next_due += interval / speed
                        end = clock + timedelta(seconds=interval)
                        pending = cycle_messages(
                            states, customer_id, subscription_id, clock, end, rng
                        )
                        clock = end
                        stats.cycles += 1
                    while pending:
                        topic, payload = pending[0]
                        await client.publish(topic, payload, qos=1)
                        pending.pop(0)
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
        )
    )
    _LOGGER.info("Published %s", stats)


if __name__ == "__main__":
    main()
