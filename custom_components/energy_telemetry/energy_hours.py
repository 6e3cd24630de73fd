"""Energy in the hour it was measured: hourly rows of a long-term statistic from timestamped readings.

Per energy total (a *series*) it computes the rows Home Assistant's long-term statistics want
(`start` of a UTC hour, `sum` from the series' first reading, `state` at the end of the hour) from
the readings' own timestamps: the energy between two readings is split across the hours between
them in proportion to time, and an hour is imported only once a reading at or after its end
exists. The rules in full (late readings, resets, intervals, memory, restarts) are in
docs/statistics.md.

Timestamps are UTC epoch seconds. This module does not depend on Home Assistant.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
import logging
import math
from typing import Final, Protocol

_LOGGER = logging.getLogger(__name__)

HOUR: Final = 3600.0
WINDOW: Final = 3 * 86400.0
"""Readings are kept for this long behind the newest one; older hours are frozen."""
PRUNE_SLACK: Final = 86400.0
"""The window is cut back only once it is this much longer than WINDOW (amortised work)."""
MAX_POINTS: Final = 20_000
"""At most this many readings per series (a meter reading every few seconds)."""
MAX_PENDING: Final = 10_000
"""At most this many readings are held per series until it is seeded; older ones are dropped."""


def hour_start(timestamp: float) -> float:
    """Return the start of the UTC hour a timestamp falls in."""
    return math.floor(timestamp / HOUR) * HOUR


@dataclass(frozen=True, slots=True)
class HourRow:
    """One hourly row of a statistic."""

    start: float
    """Start of the hour (UTC epoch seconds)."""
    sum: float
    """Energy from the series' first reading to the end of the hour."""
    state: float
    """Meter reading at the end of the hour."""


class Guard(Protocol):
    """What a series needs of the sensors' total guard (`totals.TotalGuard`)."""

    resets: int

    @property
    def candidate(self) -> tuple[float, float | None] | None:
        """Return the low reading (value, timestamp) that a reset would start from."""

    def seed(self, value: float | None, timestamp: float | None) -> bool:
        """Set the last value known."""

    def accept(self, value: float, timestamp: float | None) -> bool:
        """Return True when a newer reading is applied."""


class Series:
    """What both kinds of series share: seeding, frozen hours, dirty hours, counters."""

    __slots__ = (
        "_pending",
        "conflicts",
        "dirty_from",
        "dropped_pending",
        "duplicates",
        "frozen",
        "glitches",
        "imported_until",
        "name",
        "too_old",
    )

    def __init__(self, name: str = "") -> None:
        """Start unseeded: readings are held until `seed`."""
        self.name = name
        self.frozen: float | None = None
        """Hours before this boundary are final: nothing may change them any more."""
        self.imported_until: float | None = None
        """Start of the last hour handed out by `take_rows` (or seeded)."""
        self.dirty_from: float | None = None
        """Earliest hour changed since the last `take_rows`."""
        self.duplicates = 0
        self.conflicts = 0
        """Readings with the timestamp of another one but a different value (the first is kept)."""
        self.glitches = 0
        self.too_old = 0
        self.dropped_pending = 0
        self._pending: list[tuple[float, ...]] | None = []

    @property
    def seeded(self) -> bool:
        """Return True once the series knows where it continues from."""
        return self._pending is None

    def _hold(self, item: tuple[float, ...]) -> None:
        pending = self._pending
        assert pending is not None
        if len(pending) >= MAX_PENDING:
            del pending[0]
            self.dropped_pending += 1
        pending.append(item)

    def _replay(self) -> None:
        pending = self._pending or []
        self._pending = None
        for item in pending:
            self._add(*item)

    def _add(self, *item: float) -> float | None:
        raise NotImplementedError

    def _dirty(self, hour: float) -> float:
        if self.dirty_from is None or hour < self.dirty_from:
            self.dirty_from = hour
        return hour

    def _too_old(self, timestamp: float) -> None:
        self.too_old += 1
        _LOGGER.debug(
            "%s: dropping a reading at %.0f that would change a frozen hour (before %.0f)",
            self.name,
            timestamp,
            self.frozen,
        )

    # --- rows ---------------------------------------------------------------------------------

    def _first_hour(self) -> float | None:
        """Return the first hour rows can be computed for (None when there is no data)."""
        raise NotImplementedError

    def _last_time(self) -> float | None:
        """Return the newest timestamp known."""
        raise NotImplementedError

    def rows(self, first: float, last: float) -> list[HourRow]:
        """Return the rows of the hours starting at `first` up to `last` (inclusive)."""
        raise NotImplementedError

    def closed_until(self) -> float | None:
        """Return the start of the last closed hour (a reading at or after its end exists)."""
        newest = self._last_time()
        first = self._first_hour()
        if newest is None or first is None:
            return None
        last = hour_start(newest) - HOUR
        return last if last >= first else None

    def _next_hour(self) -> float | None:
        if self.imported_until is not None:
            return self.imported_until + HOUR
        return self._first_hour()

    def _work(self) -> tuple[float, float] | None:
        if self._pending is not None:
            return None
        last = self.closed_until()
        start = self._next_hour()
        if last is None or start is None:
            return None
        if self.dirty_from is not None and self.dirty_from < start:
            start = self.dirty_from
        first = self._first_hour()
        assert first is not None
        start = max(start, first)
        return (start, last) if start <= last else None

    def has_work(self) -> bool:
        """Return True when `take_rows` would return rows."""
        return self._work() is not None

    def take_rows(self) -> list[HourRow]:
        """Return the rows to import now (closed hours, from the earliest changed one)."""
        work = self._work()
        if work is None:
            if self._pending is None:
                self.dirty_from = None
            return []
        start, last = work
        self.imported_until = last
        self.dirty_from = None
        return self.rows(start, last)

    def _freeze(self, cutoff: float) -> None:
        self.frozen = cutoff
        if self.imported_until is None or self.imported_until < cutoff - HOUR:
            self.imported_until = cutoff - HOUR  # only when forced: those hours are given up

    def _prune_cutoff(self, newest: float, forced_from: float | None) -> float | None:
        """Return the boundary to freeze up to, or None; never past unimported hours."""
        cutoff = hour_start(newest - WINDOW)
        if forced_from is not None:
            return max(cutoff, hour_start(forced_from))
        limit = self._next_hour()
        if self.dirty_from is not None and (limit is None or self.dirty_from < limit):
            limit = self.dirty_from
        if limit is None:
            return None
        cutoff = min(cutoff, limit)
        if self.frozen is not None and cutoff <= self.frozen:
            return None
        return cutoff


class MeterSeries(Series):
    """A meter reading that only grows (cumulative energy), read at irregular times."""

    __slots__ = ("_guard", "_s", "_starts", "_t", "_v", "resets")

    def __init__(self, guard: Guard, name: str = "") -> None:
        """Start empty; `guard` judges in-order readings as the sensor's guard does."""
        super().__init__(name)
        self._guard = guard
        self._t = array("d")
        """Timestamps, ascending."""
        self._v = array("d")
        """Meter readings."""
        self._s = array("d")
        """Sum (energy since the first reading) at each reading."""
        self._starts: set[float] = set()
        """Timestamps of readings that start a new segment (the first after a meter reset)."""
        self.resets = 0

    def __len__(self) -> int:
        """Return the number of readings held."""
        return len(self._t)

    def seed(self, last: HourRow | None) -> None:
        """Continue from the last row already stored (None: a new series) and apply held readings."""
        if last is not None:
            boundary = last.start + HOUR
            self._t.append(boundary)
            self._v.append(last.state)
            self._s.append(last.sum)
            self.frozen = boundary
            self.imported_until = last.start
            self._guard.seed(last.state, boundary)
        else:
            self._guard.seed(None, None)
        self._replay()

    def add(self, timestamp: float, value: float) -> float | None:
        """Add a reading; return the earliest hour it changed, or None if it changed nothing."""
        if self._pending is not None:
            self._hold((timestamp, value))
            return None
        return self._add(timestamp, value)

    def _add(self, *item: float) -> float | None:
        timestamp, value = item
        if self.frozen is not None and timestamp <= self.frozen:
            self._too_old(timestamp)
            return None
        times = self._t
        if not times:
            self._guard.accept(value, timestamp)
            self._push(timestamp, value, 0.0)
            return self._dirty(hour_start(timestamp))
        if timestamp > times[-1]:
            return self._append(timestamp, value)
        index = bisect_left(times, timestamp)
        if times[index] == timestamp:
            if self._v[index] == value:
                self.duplicates += 1
            else:
                self.conflicts += 1
            return None
        if index == 0:
            return self._prepend(timestamp, value)
        return self._insert(index, timestamp, value)

    def _push(self, timestamp: float, value: float, total: float, start: bool = False) -> None:
        self._t.append(timestamp)
        self._v.append(value)
        self._s.append(total)
        if start:
            self._starts.add(timestamp)

    def _append(self, timestamp: float, value: float) -> float | None:
        guard = self._guard
        resets = guard.resets
        candidate = guard.candidate
        if not guard.accept(value, timestamp):
            self.glitches += 1
            return None
        previous = self._t[-1]
        total = self._s[-1]
        if guard.resets != resets:
            self.resets += 1
            low = candidate[0] if candidate is not None else None
            low_time = candidate[1] if candidate is not None else None
            if low is not None and low_time is not None and previous < low_time < timestamp:
                # The reset happened before the first low reading: the new segment starts there.
                self.glitches -= 1  # it was counted as one while the guard held it
                self._push(low_time, low, total, start=True)
                self._push(timestamp, value, total + (value - low))
            else:
                self._push(timestamp, value, total, start=True)
        else:
            self._push(timestamp, value, total + (value - self._v[-1]))
        times = self._t
        if len(times) > MAX_POINTS or times[0] < timestamp - WINDOW - PRUNE_SLACK:
            self._prune()
        return self._dirty(hour_start(previous))

    def _prepend(self, timestamp: float, value: float) -> float | None:
        """A reading older than all others (never reached once hours are frozen)."""
        values = self._v
        if value > values[0]:
            self.glitches += 1
            return None
        shift = values[0] - value
        self._t.insert(0, timestamp)
        values.insert(0, value)
        sums = self._s
        sums.insert(0, 0.0)
        for index in range(1, len(sums)):
            sums[index] += shift
        return self._dirty(hour_start(timestamp))

    def _insert(self, index: int, timestamp: float, value: float) -> float | None:
        """A reading between two others."""
        times, values, sums = self._t, self._v, self._s
        before, after = index - 1, index
        if self.frozen is not None and times[before] < self.frozen:
            self._too_old(timestamp)
            return None
        shift = 0.0
        if times[after] in self._starts:
            # The gap holds a meter reset: the reading is the old meter's or the new one's.
            if value >= values[before]:
                total = sums[before] + (value - values[before])
                shift = value - values[before]
            elif value <= values[after]:
                total = sums[before]
                shift = values[after] - value
                self._starts.discard(times[after])
                self._starts.add(timestamp)
            else:
                self.glitches += 1
                return None
        elif values[before] <= value <= values[after]:
            # Never above the next sum, whatever the rounding of the two paths to it.
            total = min(sums[before] + (value - values[before]), sums[after])
        else:
            self.glitches += 1
            return None
        times.insert(index, timestamp)
        values.insert(index, value)
        sums.insert(index, total)
        if shift:
            for position in range(index + 1, len(sums)):
                sums[position] += shift
        return self._dirty(hour_start(times[before]))

    def _prune(self) -> None:
        times = self._t
        forced = times[len(times) - MAX_POINTS // 2] if len(times) > 2 * MAX_POINTS else None
        cutoff = self._prune_cutoff(times[-1], forced)
        if cutoff is None:
            return
        keep = bisect_right(times, cutoff) - 1
        if keep <= 0:
            return
        self._freeze(cutoff)
        del times[:keep]
        del self._v[:keep]
        del self._s[:keep]
        first = times[0]
        self._starts = {start for start in self._starts if start > first}

    def _first_hour(self) -> float | None:
        if self.frozen is not None:
            return self.frozen
        return hour_start(self._t[0]) if self._t else None

    def _last_time(self) -> float | None:
        return self._t[-1] if self._t else None

    def rows(self, first: float, last: float) -> list[HourRow]:
        """Return the rows of the hours starting at `first` up to `last` (inclusive)."""
        times, values, sums, starts = self._t, self._v, self._s, self._starts
        count = len(times)
        rows: list[HourRow] = []
        index = bisect_right(times, first + HOUR)
        hour = first
        while hour <= last:
            end = hour + HOUR
            while index < count and times[index] <= end:
                index += 1
            before = index - 1  # hours start at or after the first reading: never -1
            if index >= count or times[before] == end:
                rows.append(HourRow(hour, sums[before], values[before]))
            else:
                after = index
                share = (end - times[before]) / (times[after] - times[before])
                total = min(sums[before] + share * (sums[after] - sums[before]), sums[after])
                if times[after] in starts:
                    state = values[before]
                else:
                    state = values[before] + share * (values[after] - values[before])
                rows.append(HourRow(hour, total, state))
            hour = end
        return rows


class IntervalSeries(Series):
    """Energy measured per interval (start, end, energy), e.g. Ainsite payload version 2."""

    __slots__ = ("_a", "_b", "_base", "_e", "_s", "overlaps")

    def __init__(self, name: str = "") -> None:
        """Start empty."""
        super().__init__(name)
        self._a = array("d")
        """Interval starts."""
        self._b = array("d")
        """Interval ends, ascending (intervals never overlap)."""
        self._e = array("d")
        """Energy of each interval."""
        self._s = array("d")
        """Sum up to the end of each interval."""
        self._base = 0.0
        """Sum before the first interval held."""
        self.overlaps = 0

    def __len__(self) -> int:
        """Return the number of intervals held."""
        return len(self._b)

    def seed(self, last: HourRow | None) -> None:
        """Continue from the last row already stored (None: a new series) and apply held readings."""
        if last is not None:
            self.frozen = last.start + HOUR
            self.imported_until = last.start
            self._base = last.sum
        self._replay()

    def add(self, start: float, end: float, energy: float) -> float | None:
        """Add an interval; return the earliest hour it changed, or None if it changed nothing."""
        if self._pending is not None:
            self._hold((start, end, energy))
            return None
        return self._add(start, end, energy)

    def _add(self, *item: float) -> float | None:
        start, end, energy = item
        if end < start:
            self.glitches += 1
            return None
        frozen = self.frozen
        if frozen is not None and start < frozen:
            if end <= frozen:
                self._too_old(end)
                return None
            # Only the part after the frozen boundary can still be counted.
            energy *= (end - frozen) / (end - start)
            start = frozen
        starts, ends = self._a, self._b
        index = bisect_left(ends, end)
        count = len(ends)
        if index < count and ends[index] == end:
            if starts[index] == start and self._e[index] == energy:
                self.duplicates += 1
            else:
                self.conflicts += 1
            return None
        if (index > 0 and ends[index - 1] > start) or (index < count and starts[index] < end):
            self.overlaps += 1
            _LOGGER.debug(
                "%s: dropping an interval %.0f..%.0f that overlaps another", self.name, start, end
            )
            return None
        sums = self._s
        total = (sums[index - 1] if index else self._base) + energy
        starts.insert(index, start)
        ends.insert(index, end)
        self._e.insert(index, energy)
        sums.insert(index, total)
        if energy:
            for position in range(index + 1, len(sums)):
                sums[position] += energy
        if len(ends) > MAX_POINTS or starts[0] < ends[-1] - WINDOW - PRUNE_SLACK:
            self._prune()
        return self._dirty(hour_start(start))

    def _prune(self) -> None:
        ends = self._b
        forced = ends[len(ends) - MAX_POINTS // 2] if len(ends) > 2 * MAX_POINTS else None
        cutoff = self._prune_cutoff(ends[-1], forced)
        if cutoff is None:
            return
        keep = bisect_right(ends, cutoff)
        if keep <= 0:
            return
        self._freeze(cutoff)
        self._base = self._s[keep - 1]
        for column in (self._a, ends, self._e, self._s):
            del column[:keep]

    def open_intervals(self) -> list[tuple[float, float, float]]:
        """Return the intervals that reach past the last hour handed out (to keep over a restart)."""
        boundary = None if self.imported_until is None else self.imported_until + HOUR
        index = 0 if boundary is None else bisect_right(self._b, boundary)
        return [
            (self._a[position], self._b[position], self._e[position])
            for position in range(index, len(self._b))
        ]

    def _first_hour(self) -> float | None:
        if self.frozen is not None:
            return self.frozen
        return hour_start(self._a[0]) if self._a else None

    def _last_time(self) -> float | None:
        return self._b[-1] if self._b else None

    def rows(self, first: float, last: float) -> list[HourRow]:
        """Return the rows of the hours starting at `first` up to `last` (inclusive)."""
        starts, ends, energies, sums = self._a, self._b, self._e, self._s
        count = len(ends)
        rows: list[HourRow] = []
        index = bisect_right(ends, first + HOUR)
        hour = first
        while hour <= last:
            end = hour + HOUR
            while index < count and ends[index] <= end:
                index += 1
            total = sums[index - 1] if index else self._base
            if index < count and starts[index] < end:
                share = (end - starts[index]) / (ends[index] - starts[index])
                # Never above the interval's own sum, whatever the rounding of the two paths.
                total = min(total + energies[index] * share, sums[index])
            rows.append(HourRow(hour, total, total))
            hour = end
        return rows
