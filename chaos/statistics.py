"""Hourly statistics when Home Assistant was down: readings queue, then arrive in one burst.

Meters report their accumulated energy every 15 simulated minutes (fed fast, at the source's
timestamps). Home Assistant runs for 3 simulated hours, is down for 6 (the entry is unloaded;
the broker keeps the readings in the persistent session), comes back (the queue arrives in one
burst, and its last hour once more as duplicates) and runs 3 more hours. Afterwards every meter's hourly statistic must equal the source's
hourly consumption, hour by hour: the burst must not land as one tall bar at its arrival.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
import math
import random
import time
from typing import Any

from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import slugify

from simulator.ainsite_publisher import Message, MqttPublisher
from simulator.wait import wait_for

from .harness import record_deliveries, record_states
from .mqtt import MqttSetup, coordinator_note, evaluate
from .report import ScenarioResult

STEP = timedelta(minutes=15)
UP_BEFORE = 3
DOWN = 6
UP_AFTER = 3
TOLERANCE = 1e-6
"""kWh an hour may differ from the source's (floating point only)."""


class HourlyFleet:
    """Meters whose readings land exactly on quarter hours; knows each hour's consumption."""

    def __init__(self, setup: MqttSetup, count: int, start: datetime) -> None:
        """Prepare `count` meters starting at `start` (an hour boundary)."""
        self.fleet = setup.fleet(count)
        self.start = start
        self.readings: dict[str, dict[datetime, float]] = {meter: {} for meter in self.meters}
        self._rng = random.Random(11)
        self._clock = start

    @property
    def meters(self) -> list[str]:
        """Return the meter ids."""
        return self.fleet.meters

    def hours(self, count: int) -> list[Message]:
        """Return the readings of the next `count` hours (the first call includes the start)."""
        messages = []
        end = self._clock + timedelta(hours=count)
        moment = self._clock if not any(self.readings.values()) else self._clock + STEP
        while moment <= end:
            for meter in self.meters:
                previous = self.fleet.totals.get(meter, 1000.0 + self._rng.uniform(0, 100))
                # Some quarters nothing, some a lot: the hours differ.
                total = round(previous + self._rng.choice((0.0, 0.05, 0.3, 1.2)), 3)
                self.fleet.totals[meter] = total
                self.readings[meter][moment] = total
                messages.append(self.fleet.message(meter, total, moment))
            moment += STEP
        self._clock = end
        return messages

    def consumption(self, meter: str) -> dict[datetime, float]:
        """Return the source's energy per hour (from the readings at the hour boundaries)."""
        readings = self.readings[meter]
        result = {}
        hour = self.start
        while hour + timedelta(hours=1) <= self._clock:
            result[hour] = readings[hour + timedelta(hours=1)] - readings[hour]
            hour += timedelta(hours=1)
        return result


async def _hourly_sums(
    setup: MqttSetup, statistic_ids: set[str], start: datetime
) -> dict[str, list[dict[str, Any]]]:
    hass = setup.hass
    result: dict[str, list[dict[str, Any]]] = await get_instance(hass).async_add_executor_job(
        partial(
            statistics_during_period,
            hass,
            start,
            None,
            statistic_ids,
            "hour",
            None,
            {"sum"},
        )
    )
    return result


async def _parsed(entry: ConfigEntry[Any], count: int, what: str) -> None:
    """Wait until the entry has parsed `count` readings in all."""
    stats = entry.runtime_data.stats
    await wait_for(
        lambda: stats.accepted >= count,
        timeout=120,
        what=lambda: f"{count - stats.accepted} {what} parsed by the entry",
    )


async def _deliver(
    entry: ConfigEntry[Any], publisher: MqttPublisher, messages: list[Message]
) -> None:
    """Publish, and wait until the entry parsed all of them."""
    before = entry.runtime_data.stats.accepted
    publisher.put(messages)
    await publisher.drain(120)
    await _parsed(entry, before + len(messages), "published readings")


async def ha_down_6h(setup: MqttSetup) -> ScenarioResult:
    """Home Assistant down for 6 simulated hours: the hourly statistics still match the source."""
    started = time.monotonic()
    hass = setup.hass
    count = 100 if setup.full else 5
    result = ScenarioResult(
        "stats_ha_down_6h",
        f"{count} meters every 15 simulated min; HA up {UP_BEFORE} h, down {DOWN} h (readings "
        f"queue in the persistent session), up {UP_AFTER} h",
    )
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=UP_BEFORE + DOWN + UP_AFTER + 2)
    fleet = HourlyFleet(setup, count, start)
    publisher = setup.publisher()
    with record_deliveries() as deliveries, record_states(hass) as log:
        entry = await setup.entry()
        publisher.start()
        await _deliver(entry, publisher, fleet.hours(UP_BEFORE))
        # Home Assistant goes down: whatever it had is imported, then readings queue upstream.
        client_id = entry.runtime_data.connection.client_id
        assert await hass.config_entries.async_unload(entry.entry_id)
        queued = fleet.hours(DOWN)
        publisher.put(queued)
        await publisher.drain(120)
        # It comes back with the same client id: the queue arrives in one burst.
        assert await hass.config_entries.async_setup(entry.entry_id)
        assert entry.runtime_data.connection.client_id == client_id
        await _parsed(entry, len(queued), "readings queued while Home Assistant was down")
        # The upstream sends the last queued hour again (QoS 1 allows it): nothing may change.
        await _deliver(entry, publisher, queued[-4 * count :])
        await _deliver(entry, publisher, fleet.hours(UP_AFTER))
        importer = entry.runtime_data.statistics
        assert importer is not None
        await wait_for(
            lambda: all(feed.series.seeded for feed in importer.feeds.values()),
            timeout=120,
            what=lambda: (
                f"{sum(not f.series.seeded for f in importer.feeds.values())} statistic"
                " series seeded"
            ),
        )
        importer.async_flush()
        await get_instance(hass).async_block_till_done()
        await publisher.stop()
        await hass.async_block_till_done()
        evaluate(result, setup, fleet.fleet, publisher, deliveries, log)
        result.notes.append(coordinator_note(entry))

        ids = {
            meter: f"energy_telemetry:{slugify(f'{setup.customer_id}_{meter}_2')}"
            for meter in fleet.meters
        }
        stored = await _hourly_sums(setup, set(ids.values()), start)
        largest = 0.0
        worst = ""
        compared = missing = wrong = 0
        for meter, statistic in ids.items():
            rows = {
                datetime.fromtimestamp(row["start"], UTC): row["sum"]
                for row in stored.get(statistic, [])
            }
            previous = 0.0
            for hour, energy in fleet.consumption(meter).items():
                total = rows.get(hour)
                if total is None:
                    missing += 1
                    continue
                error = abs((total - previous) - energy)
                previous = total
                compared += 1
                if error > TOLERANCE:
                    wrong += 1
                if error >= largest:
                    largest, worst = error, f"{meter} {hour:%H:%M}"
        result.wrong += wrong + missing
        result.notes.append(
            f"hourly statistic vs the source's hourly consumption: {compared} meter-hours "
            f"compared, {missing} missing, {wrong} off by more than {TOLERANCE:g} kWh; "
            f"largest error {largest:.3g} kWh ({worst})"
        )
        result.check(compared > 0 and not math.isnan(largest), "no hourly statistic to compare")
        result.notes.append(
            f"statistics: {importer.imports} imports, {importer.rows} rows in the last run"
        )
        assert await hass.config_entries.async_unload(entry.entry_id)
    result.duration_s = time.monotonic() - started
    return result
