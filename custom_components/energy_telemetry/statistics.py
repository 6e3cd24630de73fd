"""Hourly long-term statistics at the source's timestamps: one importer per config entry.

Every energy total the integration shows also feeds an external statistic
`energy_telemetry:<slugified sensor unique id>`, whose rows `energy_hours` computes; closed hours
are imported in batches, never one import per reading. Without the recorder there are no
statistics and the sensors work as before. How it works: docs/statistics.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from functools import partial
import time
from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import (
    async_add_external_statistics,
    get_last_statistics,
    get_metadata,
)
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import ATTR_FRIENDLY_NAME, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util, slugify
from sqlalchemy.exc import SQLAlchemyError

from .compat import energy_statistic_class
from .const import DOMAIN, LOGGER
from .descriptions import EnergyTelemetrySensorEntityDescription
from .energy_hours import HourRow, IntervalSeries, MeterSeries, Series
from .totals import TotalGuard

if TYPE_CHECKING:
    from .coordinator import EnergyTelemetryConfigEntry, Point, PushCoordinator
    from .descriptions import PointDescription

FLUSH_DELAY: Final = 5.0
"""Seconds from the first changed hour to the import that carries it (and everything since)."""
RETRY_DELAY: Final = 60.0
"""Seconds before the recorder is asked again after it could not be read."""
SEED_WAIT: Final = 8.0
"""Seconds an unload or a stop waits for the last rows to be read back, so nothing held is lost
(Home Assistant itself waits 10 s for an unloading entry's tasks)."""
STORED_WAIT: Final = 10.0
"""Seconds the energy dashboard waits for the recorder to know the statistics it is offered."""
STORE_VERSION: Final = 1
STORE_SAVE_DELAY: Final = 60.0


def statistic_id(unique_id: str) -> str:
    """Return the external statistic id of a sensor's unique id."""
    return f"{DOMAIN}:{slugify(unique_id)}"


def statistic_kind(description: PointDescription) -> str | None:
    """Return "meter" (a growing energy total), "interval" (energy per interval) or None."""
    if (
        not isinstance(description, EnergyTelemetrySensorEntityDescription)
        or description.device_class is not SensorDeviceClass.ENERGY
    ):
        return None
    if description.state_class is SensorStateClass.TOTAL_INCREASING:
        return "meter"
    if description.state_class is SensorStateClass.TOTAL:
        return "interval"
    return None


def _read_last_rows(hass: HomeAssistant, ids: list[str]) -> dict[str, HourRow]:
    """Return the last stored row of each statistic that has one (in the recorder's executor)."""
    found: dict[str, HourRow] = {}
    for statistic in ids:
        rows = get_last_statistics(hass, 1, statistic, False, {"state", "sum"}).get(statistic)
        if rows:
            row = rows[0]
            found[statistic] = HourRow(
                float(row["start"]), float(row.get("sum") or 0.0), float(row.get("state") or 0.0)
            )
    return found


class StatisticFeed:
    """The statistic of one point: every reading of that point goes in."""

    __slots__ = ("importer", "point", "statistic_id")

    interval = False
    series: Series

    def __init__(self, importer: StatisticsImporter, point: Point) -> None:
        """Name the statistic of a point."""
        self.importer = importer
        self.point = point
        self.statistic_id = statistic_id(point.unique_id)

    def __call__(
        self, value: float | datetime, timestamp: float | None, start: datetime | None
    ) -> None:
        """Add a reading: its value, its source timestamp (ms) and, per interval, its start."""
        raise NotImplementedError

    def seed(self, last: HourRow | None, stored: list[list[float]]) -> None:
        """Continue from the last stored row (and what the last run kept), then mark for import."""
        raise NotImplementedError


class MeterFeed(StatisticFeed):
    """A growing energy total; its in-order readings are judged by a total guard of its own."""

    __slots__ = ("series",)

    def __init__(self, importer: StatisticsImporter, point: Point) -> None:
        """Create the series."""
        super().__init__(importer, point)
        self.series: MeterSeries = MeterSeries(TotalGuard(), self.statistic_id)

    def __call__(
        self, value: float | datetime, timestamp: float | None, start: datetime | None
    ) -> None:
        """Add a meter reading at its source timestamp (ms; None: now)."""
        if isinstance(value, datetime):
            return
        moment = time.time() if timestamp is None else timestamp / 1000.0
        series = self.series
        if series.add(moment, value) is not None and series.has_work():
            self.importer.async_mark(self)

    def seed(self, last: HourRow | None, stored: list[list[float]]) -> None:
        """Continue from the last stored row."""
        self.series.seed(last)


class IntervalFeed(StatisticFeed):
    """Energy per interval: each reading covers its start to its end."""

    __slots__ = ("series",)

    interval = True

    def __init__(self, importer: StatisticsImporter, point: Point) -> None:
        """Create the series."""
        super().__init__(importer, point)
        self.series: IntervalSeries = IntervalSeries(self.statistic_id)

    def __call__(
        self, value: float | datetime, timestamp: float | None, start: datetime | None
    ) -> None:
        """Add the energy of an interval ending at `timestamp` (ms)."""
        if isinstance(value, datetime) or timestamp is None:
            return
        if start is None:
            self.importer.without_start += 1
            return
        series = self.series
        if series.add(start.timestamp(), timestamp / 1000.0, value) is not None and (
            series.has_work()
        ):
            self.importer.async_mark(self)

    def seed(self, last: HourRow | None, stored: list[list[float]]) -> None:
        """Continue from the last stored row and the intervals the last run had not imported."""
        series = self.series
        series.seed(last)
        for item in stored:
            series.add(float(item[0]), float(item[1]), float(item[2]))


class StatisticsImporter:
    """Imports the hourly rows of a config entry's energy totals, batched."""

    def __init__(self, hass: HomeAssistant, entry: EnergyTelemetryConfigEntry, name: str) -> None:
        """Start idle; series are added with `async_feed`."""
        self.hass = hass
        self.entry = entry
        self.name = name
        self.enabled = "recorder" in hass.config.components
        if not self.enabled:
            LOGGER.debug("%s: the recorder is not loaded; no long-term statistics", name)
        self.feeds: dict[str, StatisticFeed] = {}
        self._dirty: set[StatisticFeed] = set()
        self._to_seed: list[StatisticFeed] = []
        self._seeding: asyncio.Task[None] | None = None
        """Reads the last rows back for new series; their readings wait for it."""
        self._flush_unsub: CALLBACK_TYPE | None = None
        self._retry_unsub: CALLBACK_TYPE | None = None
        self._store: Store[dict[str, Any]] = Store(
            hass, STORE_VERSION, f"{DOMAIN}.statistics.{entry.entry_id}"
        )
        self._stored: dict[str, Any] | None = None
        self._started = False
        self.imports = 0
        self.rows = 0
        self.failed = 0
        self.read_errors = 0
        self.without_start = 0
        self.stored_wait = STORED_WAIT

    # --- series -------------------------------------------------------------------------------

    @callback
    def async_feed(self, point: Point) -> StatisticFeed | None:
        """Return the feed of a point's statistic, or None when the point gets none."""
        if not self.enabled:
            return None
        kind = statistic_kind(point.description)
        if kind is None or not self._shown(point):
            return None
        feed = IntervalFeed(self, point) if kind == "interval" else MeterFeed(self, point)
        if feed.statistic_id in self.feeds:
            LOGGER.debug(
                "%s: %s has the statistic id of another sensor (%s); it gets none",
                self.name,
                point.unique_id,
                feed.statistic_id,
            )
            return None
        self.feeds[feed.statistic_id] = feed
        self._start()
        self._to_seed.append(feed)
        self._async_start_seeding()
        return feed

    @callback
    def _async_start_seeding(self) -> None:
        if (self._seeding is None or self._seeding.done()) and self._to_seed:
            # Not a background task: an unload does not cancel it but waits for it (shutdown).
            self._seeding = self.entry.async_create_task(
                self.hass, self._async_seed(), f"{self.name} statistics"
            )

    def _shown(self, point: Point) -> bool:
        """Return False for a sensor the user disabled (or disabled by default and never enabled)."""
        registry = er.async_get(self.hass)
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, point.unique_id)
        if entity_id is None:
            return point.description.entity_registry_enabled_default
        entry = registry.async_get(entity_id)
        return entry is not None and entry.disabled_by is None

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self.entry.async_on_unload(self.async_shutdown)
        self.entry.async_on_unload(
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self._async_on_stop)
        )

    async def _async_seed(self) -> None:
        """Read the last rows of new series back, then let them continue from there."""
        try:
            instance = get_instance(self.hass)
            if not await instance.async_db_ready:
                LOGGER.debug("%s: the recorder's database is not ready; no statistics", self.name)
                self.enabled = False
                return
            while self._to_seed:
                batch, self._to_seed = self._to_seed, []
                if self._stored is None and any(feed.interval for feed in batch):
                    self._stored = await self._store.async_load() or {}
                try:
                    # Rows queued before (by this entry's last run, on a reload) are stored first.
                    await instance.async_block_till_done()
                    last = await instance.async_add_executor_job(
                        _read_last_rows, self.hass, [feed.statistic_id for feed in batch]
                    )
                except (HomeAssistantError, SQLAlchemyError) as err:  # the database went away
                    self.read_errors += 1
                    LOGGER.debug("%s: cannot read statistics back (%s); retrying", self.name, err)
                    self._to_seed = batch + self._to_seed
                    self._retry_unsub = async_call_later(
                        self.hass, RETRY_DELAY, self._async_retry_seed
                    )
                    return
                for feed in batch:
                    self._seed(feed, last.get(feed.statistic_id))
        finally:
            self._seeding = None

    @callback
    def _async_retry_seed(self, _now: datetime) -> None:
        self._retry_unsub = None
        self._async_start_seeding()

    def _seed(self, feed: StatisticFeed, last: HourRow | None) -> None:
        stored = (self._stored or {}).get("intervals", {}).get(feed.statistic_id, [])
        feed.seed(last, stored)
        if feed.series.has_work():
            self.async_mark(feed)

    # --- imports ------------------------------------------------------------------------------

    @callback
    def async_mark(self, feed: StatisticFeed) -> None:
        """Note that a feed has rows to import; they go with the next flush."""
        self._dirty.add(feed)
        if self._flush_unsub is None:
            self._flush_unsub = async_call_later(self.hass, FLUSH_DELAY, self._async_flush_later)

    @callback
    def _async_flush_later(self, _now: datetime) -> None:
        self._flush_unsub = None
        self.async_flush()

    @callback
    def async_flush(self) -> None:
        """Import the rows of every changed series now."""
        if self._flush_unsub is not None:
            self._flush_unsub()
            self._flush_unsub = None
        dirty, self._dirty = self._dirty, set()
        intervals = False
        for feed in dirty:
            rows = feed.series.take_rows()
            if rows:
                self._import(feed, rows)
            intervals = intervals or feed.interval
        if intervals:
            self._store.async_delay_save(self._store_data, STORE_SAVE_DELAY)

    def _import(self, feed: StatisticFeed, rows: list[HourRow]) -> None:
        utc = dt_util.utc_from_timestamp
        statistics = [
            StatisticData(start=utc(row.start), sum=row.sum, state=row.state) for row in rows
        ]
        try:
            async_add_external_statistics(self.hass, self._metadata(feed), statistics)
        except HomeAssistantError as err:
            self.failed += 1
            LOGGER.debug("%s: statistic %s refused: %s", self.name, feed.statistic_id, err)
            return
        self.imports += 1
        self.rows += len(rows)

    def _metadata(self, feed: StatisticFeed) -> StatisticMetaData:
        description = feed.point.description
        assert isinstance(description, EnergyTelemetrySensorEntityDescription)  # statistic_kind
        metadata: dict[str, Any] = {
            "has_sum": True,
            "mean_type": StatisticMeanType.NONE,
            "name": self._name(feed.point),
            "source": DOMAIN,
            "statistic_id": feed.statistic_id,
            "unit_of_measurement": description.native_unit_of_measurement,
        }
        metadata.update(energy_statistic_class())
        return cast("StatisticMetaData", metadata)

    def _name(self, point: Point) -> str:
        """Return the sensor's name as shown (its friendly name), or its device and key."""
        entity = point.entity
        if entity is not None and entity.entity_id:
            state = self.hass.states.get(entity.entity_id)
            if state is not None and (name := state.attributes.get(ATTR_FRIENDLY_NAME)):
                return str(name)
        device = point.group.device_info.get("name") or point.group.key
        return f"{device} {point.description.key}"

    def _store_data(self) -> dict[str, Any]:
        return {
            "intervals": {
                feed.statistic_id: [list(item) for item in feed.series.open_intervals()]
                for feed in self.feeds.values()
                if isinstance(feed, IntervalFeed) and feed.series.seeded
            }
        }

    # --- life cycle ---------------------------------------------------------------------------

    @callback
    async def _async_on_stop(self, _event: Event) -> None:
        await self._async_wait_for_seeding()
        self.async_flush()

    async def _async_wait_for_seeding(self) -> None:
        """Let a running read-back finish, so the readings held for it are imported, not lost.

        Home Assistant may stop (or the entry unload) moments after a start, while the recorder
        is still busy: the readings that arrived meanwhile wait for their series' last row.
        """
        if (seeding := self._seeding) is not None and not seeding.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SEED_WAIT):
                    await asyncio.shield(seeding)

    async def async_stored(self, ids: list[str]) -> set[str]:
        """Make sure the recorder knows the statistics `ids`; return those it knows.

        For the energy dashboard, which takes only statistics that exist: what is pending is
        imported now, and a statistic whose first hour has not closed yet is registered with
        its metadata (its rows follow as its hours close). Waits up to `STORED_WAIT` seconds
        for the recorder to have them.
        """
        if not self.enabled:
            return set()
        await self._async_wait_for_seeding()
        self.async_flush()
        instance = get_instance(self.hass)
        wanted = set(ids)
        known: set[str] = set()
        registered = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stored_wait):
                while True:
                    await instance.async_block_till_done()
                    known = set(
                        await instance.async_add_executor_job(
                            partial(get_metadata, self.hass, statistic_ids=wanted)
                        )
                    )
                    missing = [self.feeds[stat] for stat in wanted - known if stat in self.feeds]
                    if not missing:
                        break
                    if not registered:
                        registered = True
                        for feed in missing:
                            async_add_external_statistics(self.hass, self._metadata(feed), [])
                    await asyncio.sleep(0.1)  # the recorder works in its own thread
        return known

    async def async_shutdown(self) -> None:
        """Import what is pending and keep open intervals for the next start (on unload)."""
        if self._retry_unsub is not None:
            self._retry_unsub()
            self._retry_unsub = None
        await self._async_wait_for_seeding()
        self.async_flush()
        if any(feed.interval and feed.series.seeded for feed in self.feeds.values()):
            await self._store.async_save(self._store_data())

    def diagnostics(self) -> dict[str, Any]:
        """Return the importer's counters."""
        series = [feed.series for feed in self.feeds.values()]
        return {
            "series": len(series),
            "imports": self.imports,
            "rows": self.rows,
            "failed_imports": self.failed,
            "read_errors": self.read_errors,
            "without_start": self.without_start,
            "duplicates": sum(item.duplicates for item in series),
            "conflicts": sum(item.conflicts for item in series),
            "glitches": sum(item.glitches for item in series),
            "too_old": sum(item.too_old for item in series),
            "dropped_pending": sum(item.dropped_pending for item in series),
        }


@callback
def async_statistic_feed(coordinator: PushCoordinator, point: Point) -> StatisticFeed | None:
    """Return the statistic feed of a new point (creating the entry's importer on first use)."""
    importer = coordinator.statistics
    if importer is None:
        importer = coordinator.statistics = StatisticsImporter(
            coordinator.hass, coordinator.config_entry, coordinator.name
        )
    return importer.async_feed(point)


async def async_remove_store(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the file that keeps open intervals of a removed entry."""
    await Store[dict[str, Any]](
        hass, STORE_VERSION, f"{DOMAIN}.statistics.{entry_id}"
    ).async_remove()
