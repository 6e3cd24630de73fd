"""Hourly statistics in a real recorder: flush an entry's importer, read its rows back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
import threading
from typing import Any

from homeassistant.components.recorder import Recorder
from homeassistant.components.recorder.statistics import get_metadata, statistics_during_period
from homeassistant.components.recorder.tasks import RecorderTask
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from custom_components.energy_telemetry.statistics import StatisticsImporter
from tests.helpers.waiting import wait_for


def hour(offset: float) -> datetime:
    """The start of the hour `offset` hours from the hour 12 hours ago (within the parser's range)."""
    base = dt_util.utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
    return base + timedelta(hours=offset)


def importer_of(entry: Any) -> StatisticsImporter:
    importer = entry.runtime_data.statistics
    assert importer is not None
    return importer


async def flush(hass: HomeAssistant, entry: Any) -> None:
    """Wait for every series to be seeded, import now, wait for the recorder."""
    importer = importer_of(entry)
    await wait_for(lambda: all(feed.series.seeded for feed in importer.feeds.values()))
    importer.async_flush()
    await async_wait_recording_done(hass)


async def hourly(hass: HomeAssistant, statistic: str) -> list[dict[str, Any]]:
    """Return the stored hourly rows of a statistic: start (datetime), sum, state, change."""
    result = await get_instance(hass).async_add_executor_job(
        statistics_during_period,
        hass,
        hour(-48),
        None,
        {statistic},
        "hour",
        None,
        {"sum", "state", "change"},
    )
    return [
        {**row, "start": dt_util.utc_from_timestamp(row["start"])}
        for row in result.get(statistic, [])
    ]


async def metadata_of(hass: HomeAssistant, statistic: str) -> dict[str, Any]:
    return await get_instance(hass).async_add_executor_job(
        partial(get_metadata, hass, statistic_ids={statistic})
    )


def changes(rows: list[dict[str, Any]]) -> dict[datetime, float]:
    return {row["start"]: round(row["change"], 6) for row in rows}


async def compile_short_term(hass: HomeAssistant) -> None:
    """Compile the current 5 minutes' statistics of the sensors now, as the recorder does after.

    Home Assistant's energy validator wants a power sensor's statistics, which the recorder
    makes every 5 minutes.
    """
    now = dt_util.utcnow()
    start = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    await async_wait_recording_done(hass)
    do_adhoc_statistics(hass, start=start)
    await async_wait_recording_done(hass)


@dataclass(slots=True)
class Hold(RecorderTask):
    """Keeps the recorder's thread busy until the gate opens."""

    gate: threading.Event

    def run(self, instance: Recorder) -> None:
        self.gate.wait(10)
