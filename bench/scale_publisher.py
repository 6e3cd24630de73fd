# ruff: noqa: T201
"""The scale scenario's publisher, in a process of its own: rounds of Ainsite readings on command.

bench/run.py starts it (`python -m bench.scale_publisher ...`) so that sending 10,000 messages
costs neither the Home Assistant process nor the bench's event loop, which times it. It publishes
as the upstream service does (simulator/ainsite_publisher.py: MqttPublisher, QoS 1, in order;
schema 1 payloads for register 2, schema 2 for the others). Commands on standard input, one a
line, each answered with one line on standard output:

    round K    a reading of every register of every meter, round K's values and time; answers
               {"round": K, "messages": n, "first": t, "acked": t}: monotonic times just
               before the first message went, and when the broker had acknowledged the last
    quit       stop

It answers `ready` once connected (a first message, on a topic nobody reads, was acknowledged).
Round K's readings end K x 15 minutes after a moment a day ago (never in the future), and every
value differs from round to round (register 2 grows).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
import json
import os
import sys
import time

from bench.scale import PASSWORD_VARIABLE
from simulator.ainsite_publisher import MqttPublisher, meter_topic, payload_v1, payload_v2

ROUND_INTERVAL = timedelta(minutes=15)
DRAIN_TIMEOUT = 600.0
"""Seconds the broker may take to acknowledge a round (a hang guard only)."""


def meter_id(number: int) -> str:
    """Return the id of meter `number`."""
    return f"mtr-{number:05d}"


def round_messages(
    customer: str,
    subscription: str,
    meters: int,
    registers: list[str],
    base: datetime,
    number: int,
) -> list[tuple[str, bytes]]:
    """Return round `number`'s messages: every register of every meter, meter by meter."""
    end = base + number * ROUND_INTERVAL
    start = end - ROUND_INTERVAL
    messages: list[tuple[str, bytes]] = []
    for meter in range(meters):
        topic = meter_topic(customer, subscription, meter_id(meter))
        for index, register in enumerate(registers):
            if register == "2":
                total = round(1000.0 + 10.0 * number + meter / 1000, 3)
                payload = payload_v1(total, end, end + timedelta(seconds=1))
            else:
                value = round(100.0 * number + index + meter / 1000, 3)
                payload = payload_v2(int(register), value, start, end)
            messages.append((topic, payload))
    return messages


async def serve(args: argparse.Namespace) -> None:
    """Connect, answer `ready`, then publish a round per command."""
    registers = [register for register in args.registers.split(",") if register]
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    password = os.environ[PASSWORD_VARIABLE]  # not on the command line, where ps shows it
    publisher = MqttPublisher(args.port, args.username, password, window=args.window, timeout=30.0)
    async with publisher:
        publisher.put([(f"bench/ready/{publisher.client_id}", b"ready")])
        await publisher.drain(DRAIN_TIMEOUT)
        print("ready", flush=True)
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).split()
            if not line or line[0] == "quit":
                return
            if line[0] != "round" or len(line) != 2:
                raise SystemExit(f"scale publisher: unknown command {line}")
            number = int(line[1])
            messages = round_messages(
                args.customer, args.subscription, args.meters, registers, base, number
            )
            first = time.monotonic()
            publisher.put(messages)
            await publisher.drain(DRAIN_TIMEOUT)
            acked = time.monotonic()
            answer = {"round": number, "messages": len(messages), "first": first, "acked": acked}
            print(json.dumps(answer), flush=True)


def main() -> None:
    """Parse the arguments and serve until `quit` or the end of the input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--customer", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--meters", type=int, required=True)
    parser.add_argument("--registers", required=True, help="comma-separated register ids")
    parser.add_argument("--window", type=int, default=1000, help="messages in flight")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
