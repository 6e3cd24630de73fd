"""Push coordinator shared by both sources: groups of values, availability and dispatch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
import time
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntry, DeviceInfo
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .const import (
    DOMAIN,
    LOGGER,
    STALE_INTERVALS,
    STALE_MIN_SECONDS,
    STREAM_GRACE_PERIOD,
    WATCHDOG_INTERVAL,
)
from .issues import async_raise_issue
from .statistics import StatisticFeed, StatisticsImporter, async_statistic_feed
from .totals import TotalGuard

if TYPE_CHECKING:
    from .descriptions import PointDescription
    from .energy_dashboard import EnergyItem
    from .entity import EnergyTelemetryEntity

type EnergyTelemetryConfigEntry = ConfigEntry[PushCoordinator]

__all__ = ["EnergyTelemetryConfigEntry", "Group", "Point", "PushCoordinator"]


@dataclass(slots=True, eq=False)
class Point:
    """One value of a group; at most one entity shows it."""

    description: PointDescription
    group: Group
    value: float | datetime | str | bool | None = None
    """A number, a time, a text state or a boolean; None before the first value."""
    timestamp: float | None = None
    """Source timestamp (ms) of the value shown."""
    last_reset: datetime | None = None
    guard: TotalGuard | None = None
    entity: EnergyTelemetryEntity | None = None
    statistic: StatisticFeed | None = None
    """Hourly statistic of an energy total, fed with every reading (statistics.py)."""

    @property
    def unique_id(self) -> str:
        """Return the unique id of the point's entity."""
        return f"{self.group.unique_prefix}_{self.description.key}"


@dataclass(slots=True, eq=False)
class Group:
    """The values of one DER or one meter, shown as one device."""

    key: str
    unique_prefix: str
    device_info: DeviceInfo
    points: dict[str, Point] = field(default_factory=dict)
    track_staleness: bool = False
    last_seen: float | None = None
    """Monotonic time of the last reading."""
    interval: float | None = None
    """Smoothed time between readings, in seconds."""
    last_timestamp: float | None = None
    """Source timestamp of the last applied reading (ms), to drop older ones."""
    stale: bool = False
    readings: int = 0
    dropped_stale: int = 0

    def seen(self, now: float) -> bool:
        """Record a reading at monotonic `now`; return True if the group was stale."""
        last = self.last_seen
        if last is not None:
            gap = now - last
            self.interval = gap if self.interval is None else self.interval * 0.8 + gap * 0.2
        self.last_seen = now
        self.readings += 1
        if self.stale:
            self.stale = False
            return True
        return False

    def stale_after(self) -> float:
        """Return how many seconds without a reading make this group stale."""
        if self.interval is None:
            return STALE_MIN_SECONDS
        return max(STALE_MIN_SECONDS, STALE_INTERVALS * self.interval)


class PushCoordinator(DataUpdateCoordinator[dict[str, Group]]):
    """Holds a push connection's values; entities are written only when their value changes."""

    config_entry: EnergyTelemetryConfigEntry

    def __init__(self, hass: HomeAssistant, entry: EnergyTelemetryConfigEntry, name: str) -> None:
        """Initialise an empty coordinator; no polling."""
        super().__init__(hass, LOGGER, config_entry=entry, name=name, update_interval=None)
        self.data = {}
        self.connected = False
        self.connection_available = False
        """False once the connection has been down for longer than the grace period."""
        self._down_since: float | None = None
        self._grace_unsub: CALLBACK_TYPE | None = None
        self._logged_down = False
        self.down_reason = ""
        self._new_points_listeners: dict[str, Callable[[list[Point]], None]] = {}
        """The callback of each entity platform (sensor, binary_sensor) that adds entities."""
        self._unannounced: list[Point] = []
        """Points created for a reading being applied: their entities wait for its values."""
        self.grace_period = STREAM_GRACE_PERIOD.total_seconds()
        self.statistics: StatisticsImporter | None = None
        self.limits: dict[str, int] = {}
        """What a peer can make this entry create, by issue kind (`issues.LIMIT_KINDS`)."""
        self.dropped_at_limit: Counter[str] = Counter()
        """What was dropped because a limit was reached, by issue kind."""

    # --- life cycle ---------------------------------------------------------------------------

    @callback
    def async_start(self) -> None:
        """Open the connection as a background task of the entry."""
        raise NotImplementedError

    async def async_stop_connection(self) -> None:
        """Stop the connection before the entities are removed (on unload); default: nothing."""

    @callback
    def async_run_connection(
        self, run: Coroutine[Any, Any, None], refused: type[Exception], why: str
    ) -> None:
        """Run the connection as a background task of the entry; refused credentials: reauth."""

        async def _async_run() -> None:
            try:
                await run
            except refused:
                LOGGER.warning("%s: %s; please re-authenticate", self.name, why)
                self.config_entry.async_start_reauth(self.hass)

        self.config_entry.async_create_background_task(
            self.hass, _async_run(), f"{self.name} connection"
        )

    def async_remove_device(self, device: DeviceEntry) -> bool:
        """Forget a device a user deletes and return True, or refuse while it is in use."""
        return False

    @callback
    def async_start_watchdog(self) -> None:
        """Check staleness periodically until the entry unloads."""
        entry = self.config_entry
        entry.async_on_unload(
            async_track_time_interval(self.hass, self._async_watchdog, WATCHDOG_INTERVAL)
        )
        entry.async_on_unload(self._cancel_grace)

    @callback
    def _cancel_grace(self) -> None:
        if self._grace_unsub is not None:
            self._grace_unsub()
            self._grace_unsub = None

    # --- entities -----------------------------------------------------------------------------

    @callback
    def async_set_new_points_listener(
        self, listener: Callable[[list[Point]], None], platform: str = Platform.SENSOR
    ) -> None:
        """Register a platform's callback and hand it the points of that platform known so far."""
        self._new_points_listeners[platform] = listener

        @callback
        def _forget() -> None:  # its platform is gone
            self._new_points_listeners.pop(platform, None)

        self.config_entry.async_on_unload(_forget)
        points = [
            point
            for group in self.data.values()
            for point in group.points.values()
            if point.description.platform == platform
        ]
        if points:
            listener(points)

    @callback
    def async_add_point(
        self, group: Group, description: PointDescription, *, announce: bool = True
    ) -> Point:
        """Create a point; its entity is added right away (or when its platform is ready).

        `announce=False`: the entity is added by the next `async_announce_points`, once the point
        holds its first value. Home Assistant adds an entity at once, in the caller's turn; added
        before its value, it would first show unavailable.
        """
        point = Point(description, group, guard=TotalGuard() if description.guarded else None)
        point.statistic = async_statistic_feed(self, point)
        group.points[description.key] = point
        if announce:
            self._announce([point])
        else:
            self._unannounced.append(point)
        return point

    @callback
    def async_announce_points(self) -> None:
        """Add the entities of the points created with `announce=False` since the last call."""
        if self._unannounced:
            points, self._unannounced = self._unannounced, []
            self._announce(points)

    def _announce(self, points: list[Point]) -> None:
        by_platform: dict[str, list[Point]] = {}
        for point in points:
            by_platform.setdefault(point.description.platform, []).append(point)
        for platform, items in by_platform.items():
            if (listener := self._new_points_listeners.get(platform)) is not None:
                listener(items)

    @callback
    def async_set_value(
        self,
        point: Point,
        value: float | datetime | str | bool,
        timestamp: float | None,
        write: bool = True,
        force: bool = False,
    ) -> None:
        """Apply a value to a point and write its entity if the shown state changed."""
        if (statistic := point.statistic) is not None and isinstance(value, float):
            statistic(value, timestamp, point.last_reset)
        guard = point.guard
        if guard is not None:
            if not guard.accept(value, timestamp):  # type: ignore[arg-type]
                return
            value = guard.value  # type: ignore[assignment]
        point.timestamp = timestamp
        if point.value == value and not force:
            return
        point.value = value
        if write and (entity := point.entity) is not None:
            entity.async_write_ha_state()

    @callback
    def async_group_seen(self, group: Group) -> None:
        """Note a reading for a group; writes its entities if it comes back from stale."""
        if group.seen(time.monotonic()):
            self._write_group(group)

    @callback
    def _write_group(self, group: Group) -> None:
        for point in group.points.values():
            if point.entity is not None:
                point.entity.async_write_ha_state()

    @callback
    def _write_all(self) -> None:
        for group in self.data.values():
            self._write_group(group)

    @callback
    def async_limit_reached(self, kind: str, item: str) -> None:
        """Drop what a peer sent beyond a limit: counted; the first time, a warning and an issue.

        `item` names what was dropped (a meter id, a DER). What the entry already has is not
        touched; only the new meter, register, DER or field is dropped, each time it is sent.
        """
        dropped = self.dropped_at_limit
        dropped[kind] += 1
        if dropped[kind] > 1:
            return
        limit = self.limits[kind]
        LOGGER.warning(
            "%s: the %s of %d is reached (%.100s is dropped, and so is anything more); what"
            " the entry has keeps working, see the repair issue",
            self.name,
            kind.replace("_", " "),
            limit,
            item,
        )
        async_raise_issue(self.hass, kind, self.config_entry, {"limit": str(limit), "item": item})

    def energy_items(self) -> list[EnergyItem]:
        """Return what this entry can add to the energy dashboard (`energy_dashboard.py`)."""
        return []

    def entity_id(self, point: Point | None) -> str | None:
        """Return the entity id of a point's entity (None: it has none, or it is disabled)."""
        if point is None:
            return None
        registry = er.async_get(self.hass)
        platform = point.description.platform
        entity_id = registry.async_get_entity_id(platform, DOMAIN, point.unique_id)
        entry = None if entity_id is None else registry.async_get(entity_id)
        return None if entry is None or entry.disabled_by is not None else entity_id

    def point_available(self, point: Point) -> bool:
        """Return True when a point's entity has a current value to show."""
        return self.connection_available and not point.group.stale and point.value is not None

    # --- connection health --------------------------------------------------------------------

    @callback
    def async_connection_up(self) -> None:
        """Call when the connection is (re)established."""
        self.connected = True
        self._down_since = None
        self._cancel_grace()
        if self._logged_down:
            self._logged_down = False
            LOGGER.info("%s: connection restored", self.name)
        if not self.connection_available:
            self.connection_available = True
            self._write_all()

    @callback
    def async_connection_down(self, reason: str) -> None:
        """Call when the connection is lost; entities go unavailable after the grace period."""
        self.connected = False
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        LOGGER.debug("%s: connection lost (%s)", self.name, reason)
        self.down_reason = reason
        # Also when the connection has never been up: a stream that cannot be opened is reported.
        self._grace_unsub = async_call_later(
            self.hass, self.grace_period, self._async_grace_expired
        )

    @callback
    def _async_grace_expired(self, _now: datetime) -> None:
        self._grace_unsub = None
        if self.connected:
            return
        if not self._logged_down:
            self._logged_down = True
            LOGGER.warning(
                "%s: connection down for more than %d s (%s); entities are unavailable until it"
                " returns",
                self.name,
                self.grace_period,
                self.down_reason,
            )
        self.connection_available = False
        self._write_all()

    @callback
    def _async_watchdog(self, _now: datetime) -> None:
        now = time.monotonic()
        for group in self.data.values():
            if (
                group.track_staleness
                and not group.stale
                and group.last_seen is not None
                and now - group.last_seen > group.stale_after()
            ):
                group.stale = True
                LOGGER.debug(
                    "%s: no reading from %s for %.0f s, marking it unavailable",
                    self.name,
                    group.key,
                    now - group.last_seen,
                )
                self._write_group(group)

    # --- diagnostics --------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        """Return the state of the coordinator for the diagnostics download."""
        data: dict[str, Any] = {
            "connected": self.connected,
            "connection_available": self.connection_available,
            "groups": {
                key: {
                    "readings": group.readings,
                    "dropped_stale": group.dropped_stale,
                    "stale": group.stale,
                    "interval": group.interval,
                    "points": {
                        point.description.key: {
                            "value": point.value,
                            "has_entity": point.entity is not None,
                            "guard": None
                            if point.guard is None
                            else {
                                "rejected": point.guard.rejected,
                                "resets": point.guard.resets,
                                "timestamp": point.guard.timestamp,
                            },
                        }
                        for point in group.points.values()
                    },
                }
                for key, group in self.data.items()
            },
        }
        data["limits"] = {
            kind: {"limit": limit, "dropped": self.dropped_at_limit[kind]}
            for kind, limit in self.limits.items()
        }
        if self.statistics is not None and self.statistics.enabled:
            data["statistics"] = self.statistics.diagnostics()
        return data
