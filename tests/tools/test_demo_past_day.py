"""The demo's past day and clock: readings with past timestamps first, live ones never ahead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
import itertools
import json
import random
from typing import Any

import aiomqtt
import pytest

from simulator.ainsite_publisher import (
    BACKFILL_INTERVAL,
    MeterState,
    PublisherStats,
    backfill_messages,
    run_publisher,
)
from simulator.model import SiteModel
from tests.helpers.site import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, SUBSCRIPTION_ID

HOST = "127.0.0.1"
QUARTER = timedelta(seconds=BACKFILL_INTERVAL)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_site_model_past_day_then_real_clock() -> None:
    """The past day's readings carry simulated time every 15 minutes; then the real clock."""
    end = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
    model = SiteModel(seed=3, speed=720, start=end - timedelta(hours=24), clock=lambda: 1e12)
    steps = list(model.past_readings(end, BACKFILL_INTERVAL))
    assert len(steps) == 24 * 4 + 1
    stamps = [reading["timestamp"] for readings in steps for reading in readings]
    # Every DER of a step shares its timestamp; steps are 15 minutes apart, ending at `end`.
    assert stamps == [
        round((end - timedelta(hours=24) + QUARTER * index).timestamp() * 1000)
        for index in range(len(steps))
        for _ in range(5)
    ]
    meters = [readings[2] for readings in steps]
    for before, after in itertools.pairwise(meters):
        assert after["total_import_Wh"] >= before["total_import_Wh"]
        assert after["total_export_Wh"] >= before["total_export_Wh"]
    # A sunny June day: PV produced, the grid took and gave energy.
    assert steps[-1][0]["total_generation_Wh"] > steps[0][0]["total_generation_Wh"] + 10_000
    # Live readings after it: the real clock, never simulated (sped-up) time.
    assert {reading["timestamp"] for reading in model.step(1.0)} == {10**15}


def test_backfill_messages_on_quarter_hours() -> None:
    """The meters' past day: register 2 every 15 minutes, totals rising into the live ones."""
    meters = [MeterState("m1", 100.0, 1.0), MeterState("m2", 200.0, 2.0)]
    now = datetime(2026, 11, 25, 19, 37, 12, tzinfo=UTC)
    messages, last = backfill_messages(
        meters, CUSTOMER_ID, SUBSCRIPTION_ID, now, 24, random.Random(1)
    )
    assert last == datetime(2026, 11, 25, 19, 30, tzinfo=UTC)
    totals: dict[str, list[tuple[datetime, float]]] = {"m1": [], "m2": []}
    for topic, payload in messages:
        data = json.loads(payload)
        moment = _moment(data.get("data_timestamp_utc") or data["measurement_end_timestamp_utc"])
        assert moment <= last
        if data["register_id"] == 2:
            totals[topic.rsplit("/", 1)[-1]].append((moment, data["meter_reading"]))
    for meter in meters:
        series = totals[meter.meter_id]
        assert [moment for moment, _ in series] == [
            last - timedelta(hours=24) + QUARTER * index for index in range(24 * 4 + 1)
        ]
        values = [value for _, value in series]
        assert values == sorted(values)
        assert values[0] in (100.0, 200.0)
        assert values[-1] == meter.total_kwh  # live readings go on from here


async def test_publisher_backfill_after_gate_and_live_never_ahead(mosquitto: Any) -> None:
    """Live readings are stamped with the real clock; the past day follows the gate, in order."""
    received: list[tuple[datetime, str, dict[str, Any]]] = []
    stats = PublisherStats()
    gate = asyncio.Event()
    live_first = 30
    backfill_size = 2 * (1 + 2 * 4 * 3)  # per meter: a first reading, then 3 per quarter hour
    async with aiomqtt.Client(
        HOST, mosquitto.plain_port, username=MQTT_USERNAME, password=MQTT_PASSWORD
    ) as client:
        await client.subscribe(f"meters/outbound/{CUSTOMER_ID}/#", qos=1)
        publisher = asyncio.create_task(
            run_publisher(
                HOST,
                mosquitto.plain_port,
                MQTT_USERNAME,
                MQTT_PASSWORD,
                CUSTOMER_ID,
                SUBSCRIPTION_ID,
                interval=900,
                speed=72_000,  # 15 simulated minutes every 12.5 ms: far ahead of the clock
                duplicate_rate=0.0,
                seed=4,
                stats=stats,
                backfill_hours=2,
                backfill_gate=gate,
            )
        )
        try:
            async with asyncio.timeout(60):  # a hang guard
                async for message in client.messages:
                    payload = json.loads(message.payload)
                    received.append((datetime.now(UTC), str(message.topic), payload))
                    if len(received) == live_first:
                        gate.set()  # as the demo does once live readings came through
                    if stats.backfilled == backfill_size and len(received) >= stats.published:
                        break
        finally:
            publisher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await publisher

    def stamp(data: dict[str, Any]) -> datetime:
        return _moment(data.get("data_timestamp_utc") or data["measurement_end_timestamp_utc"])

    # Nothing is stamped later than it was received: live time never runs ahead of the clock.
    for arrival, _, data in received:
        assert stamp(data) <= arrival
        if "system_timestamp_utc" in data:
            assert stamp(data) <= _moment(data["system_timestamp_utc"]) <= arrival
    # The past day is one block, after the first live readings, oldest first, on quarter hours.
    first_live = stamp(received[0][2])
    past = [index for index, (_, _, data) in enumerate(received) if stamp(data) < first_live]
    assert past == list(range(past[0], past[0] + backfill_size))
    assert past[0] >= live_first
    for meter in ("mtr-1001", "mtr-1002"):
        totals = [
            (stamp(data), data["meter_reading"])
            for index, (_, topic, data) in enumerate(received)
            if topic.endswith(meter) and data["register_id"] == 2 and index in past
        ]
        moments = [moment for moment, _ in totals]
        assert moments == [moments[0] + QUARTER * index for index in range(2 * 4 + 1)]
        assert moments[-1] <= first_live < moments[-1] + QUARTER + timedelta(seconds=5)
        values = [value for _, value in totals]
        assert values == sorted(values)
        live = [
            data["meter_reading"]
            for index, (_, topic, data) in enumerate(received)
            if topic.endswith(meter) and data["register_id"] == 2 and index not in past
        ]
        # Live totals go on from the past day's last one.
        assert values[-1] <= live[0]
        assert live == sorted(live)
