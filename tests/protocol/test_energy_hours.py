"""The hourly rows of a statistic from timestamped readings (energy_hours, no Home Assistant)."""

from __future__ import annotations

import logging
from random import Random

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.energy_telemetry import energy_hours
from custom_components.energy_telemetry.energy_hours import (
    HOUR,
    HourRow,
    IntervalSeries,
    MeterSeries,
    hour_start,
)
from custom_components.energy_telemetry.totals import TotalGuard

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
"""An hour boundary."""


def at(hours: float) -> float:
    return T0 + hours * HOUR


def meter(last: HourRow | None = None) -> MeterSeries:
    series = MeterSeries(TotalGuard(), "test")
    series.seed(last)
    return series


def energies(rows: list[HourRow]) -> dict[float, float]:
    """Energy per hour (relative to T0, in hours), from the sums of consecutive rows."""
    result: dict[float, float] = {}
    previous: float | None = None
    for row in rows:
        if previous is not None:
            result[(row.start - T0) / HOUR] = round(row.sum - previous, 9)
        previous = row.sum
    return result


def test_hour_start() -> None:
    assert hour_start(at(3)) == at(3)
    assert hour_start(at(3) - 0.001) == at(2)
    assert hour_start(at(3.999)) == at(3)


def test_readings_at_every_hour_make_rows_of_their_sizes() -> None:
    """Six hourly readings in one burst: six closed hours with the energy of each."""
    series = meter()
    values = [100.0, 101.0, 103.0, 106.0, 110.0, 115.0, 121.0]
    for hour, value in enumerate(values):
        series.add(at(hour), value)
    rows = series.take_rows()
    assert [row.start for row in rows] == [at(hour) for hour in range(6)]
    assert [row.sum for row in rows] == [1.0, 3.0, 6.0, 10.0, 15.0, 21.0]
    assert [row.state for row in rows] == values[1:]
    assert series.take_rows() == []  # nothing new


def test_a_reading_at_the_start_of_an_hour_closes_the_previous_one() -> None:
    series = meter()
    series.add(at(0.25), 10.0)
    assert series.closed_until() is None
    series.add(at(0.75), 11.0)
    assert series.closed_until() is None  # hour 0 may still get energy
    series.add(at(1), 12.0)
    assert series.closed_until() == at(0)
    assert series.take_rows() == [HourRow(at(0), 2.0, 12.0)]
    series.add(at(1.5), 13.0)
    assert series.take_rows() == []  # hour 1 is open


def test_energy_between_readings_is_split_in_proportion_to_time() -> None:
    series = meter()
    series.add(at(0.5), 0.0)
    series.add(at(3.5), 30.0)
    rows = series.take_rows()
    assert [row.start for row in rows] == [at(0), at(1), at(2)]
    assert [row.sum for row in rows] == [5.0, 15.0, 25.0]
    assert [row.state for row in rows] == [5.0, 15.0, 25.0]


def test_a_daily_reading_is_split_across_24_hours() -> None:
    series = meter()
    series.add(at(0), 1000.0)
    series.add(at(24), 1048.0)
    rows = series.take_rows()
    assert len(rows) == 24
    assert energies([HourRow(at(-1), 0.0, 0.0), *rows]) == dict.fromkeys(range(24), 2.0)
    assert rows[-1] == HourRow(at(23), 48.0, 1048.0)


def test_a_late_reading_fixes_its_hour_and_reports_it() -> None:
    series = meter()
    series.add(at(0), 0.0)
    series.add(at(4), 40.0)
    assert [row.sum for row in series.take_rows()] == [10.0, 20.0, 30.0, 40.0]
    # The meter actually read 5 at 02:00: hours 0-1 had 5, hours 2-3 had 35.
    assert series.add(at(2), 5.0) == at(0)
    rows = series.take_rows()
    assert rows[0].start == at(0)
    assert [row.sum for row in rows] == [2.5, 5.0, 22.5, 40.0]
    assert series.dirty_from is None


def test_a_late_reading_only_reimports_from_its_hour() -> None:
    series = meter()
    for hour in range(6):
        series.add(at(hour), hour * 10.0)
    series.take_rows()
    assert series.add(at(3.5), 34.0) == at(3)
    rows = series.take_rows()
    assert [row.start for row in rows] == [at(3), at(4)]
    assert [row.sum for row in rows] == [40.0, 50.0]


def test_a_reading_older_than_all_others_extends_the_series_backwards() -> None:
    series = meter()
    series.add(at(2), 20.0)
    series.add(at(4), 40.0)
    assert [row.sum for row in series.take_rows()] == [10.0, 20.0]
    assert series.add(at(0), 12.0) == at(0)
    rows = series.take_rows()
    assert [row.start for row in rows] == [at(hour) for hour in range(4)]
    assert [row.sum for row in rows] == [4.0, 8.0, 18.0, 28.0]
    # Higher than the reading after it: a glitch, not a new start.
    assert series.add(at(-1), 13.0) is None
    assert series.glitches == 1


def test_duplicates_change_nothing() -> None:
    series = meter()
    series.add(at(0), 1.0)
    series.add(at(1), 2.0)
    series.add(at(2), 3.0)
    series.take_rows()
    assert series.add(at(1), 2.0) is None
    assert series.add(at(2), 3.0) is None  # the newest one too
    assert series.duplicates == 2
    assert series.add(at(1), 2.5) is None  # same time, other value: the first one stays
    assert series.conflicts == 1
    assert not series.has_work()
    assert series.take_rows() == []


def test_a_glitch_contributes_nothing() -> None:
    series = meter()
    series.add(at(0), 100.0)
    assert series.add(at(1), 99.0) is None  # a small drop
    assert series.add(at(1.5), 10.0) is None  # a lone large drop
    series.add(at(2), 102.0)  # back to normal: the low reading was a glitch
    assert series.glitches == 2
    assert series.resets == 0
    assert [row.sum for row in series.take_rows()] == [1.0, 2.0]


def test_a_confirmed_meter_reset_starts_a_new_segment() -> None:
    series = meter()
    series.add(at(0), 1000.0)
    series.add(at(1), 1010.0)
    assert series.add(at(2), 3.0) is None  # held: a reset only if the next reading confirms it
    assert series.add(at(3), 8.0) == at(1)
    assert series.resets == 1
    assert series.glitches == 0
    series.add(at(4), 12.0)
    rows = series.take_rows()
    # No negative energy: hour 1 (the reset) adds nothing; the new meter counts from 3.
    assert energies([HourRow(at(-1), 0.0, 0.0), *rows]) == {0: 10.0, 1: 0.0, 2: 5.0, 3: 4.0}
    assert [row.state for row in rows] == [1010.0, 3.0, 8.0, 12.0]


def test_a_reset_split_inside_the_hour_keeps_the_old_state() -> None:
    series = meter()
    series.add(at(0), 1000.0)
    series.add(at(0.5), 1005.0)
    series.add(at(1.5), 2.0)
    series.add(at(2.5), 6.0)
    rows = series.take_rows()
    assert [(row.sum, row.state) for row in rows] == [(5.0, 1005.0), (7.0, 4.0)]


def test_late_readings_around_a_reset() -> None:
    series = meter()
    series.add(at(0), 1000.0)
    series.add(at(2), 2.0)
    series.add(at(4), 6.0)
    assert series.resets == 1
    series.take_rows()
    assert series.add(at(1), 500.0) is None  # below the old meter, above the new one
    assert series.glitches == 1
    assert series.add(at(1), 1008.0) == at(0)  # the old meter went on until the reset
    assert [row.sum for row in series.take_rows()] == [8.0, 8.0, 10.0, 12.0]
    assert series.add(at(1.5), 1.0) == at(1)  # the new meter, earlier than known
    assert [row.sum for row in series.take_rows()] == [9.0, 11.0, 13.0]
    assert series.add(at(1.75), 500.0) is None  # neither
    assert series.glitches == 2


def test_a_late_reading_must_fit_between_its_neighbours() -> None:
    series = meter()
    series.add(at(0), 10.0)
    series.add(at(2), 20.0)
    assert series.add(at(1), 25.0) is None
    assert series.add(at(1), 5.0) is None
    assert series.glitches == 2


def test_seeded_series_continue_from_the_last_row() -> None:
    """After a restart the sums continue; readings before the seeded point are dropped."""
    series = meter(HourRow(at(9), 500.0, 1500.0))
    assert series.imported_until == at(9)
    assert series.add(at(9.5), 1499.0) is None  # would change an imported hour
    assert series.add(at(10), 1500.0) is None  # the seeded point itself
    assert series.too_old == 2
    series.add(at(11), 1504.0)
    series.add(at(12), 1510.0)
    rows = series.take_rows()
    assert rows == [HourRow(at(10), 504.0, 1504.0), HourRow(at(11), 510.0, 1510.0)]
    assert series.add(at(10.5), 1502.0) == at(10)  # between the seed and the next reading
    assert [row.sum for row in series.take_rows()] == [504.0, 510.0]


def test_readings_before_the_seed_are_held() -> None:
    series = MeterSeries(TotalGuard(), "test")
    assert series.add(at(11), 1504.0) is None
    assert series.add(at(12), 1510.0) is None
    assert series.add(at(10), 1499.0) is None
    assert not series.has_work()
    assert series.take_rows() == []
    series.seed(HourRow(at(9), 500.0, 1500.0))
    assert series.too_old == 1
    assert [row.sum for row in series.take_rows()] == [504.0, 510.0]


def test_held_readings_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy_hours, "MAX_PENDING", 3)
    series = MeterSeries(TotalGuard(), "test")
    for hour in range(5):
        series.add(at(hour), float(hour))
    assert series.dropped_pending == 2
    series.seed(None)
    assert len(series) == 3


def test_a_glitch_after_a_restart_is_judged_against_the_seed() -> None:
    series = meter(HourRow(at(0), 10.0, 100.0))
    assert series.add(at(2), 99.0) is None
    assert series.glitches == 1


def test_memory_is_a_window_of_recent_readings(caplog: pytest.LogCaptureFixture) -> None:
    series = meter()
    hours = int((energy_hours.WINDOW + energy_hours.PRUNE_SLACK) / HOUR) + 2
    for hour in range(hours + 1):
        series.add(at(hour), float(hour))
        series.take_rows()
    assert len(series) <= energy_hours.WINDOW / HOUR + 2
    assert series.frozen is not None
    with caplog.at_level(logging.DEBUG, logger=energy_hours.__name__):
        assert series.add(at(1.5), 1.5) is None
    assert series.too_old == 1
    assert "frozen hour" in caplog.text
    # Rows after the window are still right.
    series.add(at(hours + 1), hours + 1.0)
    assert series.take_rows() == [HourRow(at(hours), hours + 1.0, hours + 1.0)]


def test_a_reading_in_a_gap_across_the_window_edge_is_dropped() -> None:
    series = meter()
    hours = int((energy_hours.WINDOW + energy_hours.PRUNE_SLACK) / HOUR) + 2
    for hour in range(hours + 1):
        series.add(at(hour + 0.5), float(hour))
        series.take_rows()
    assert series.frozen is not None
    first_kept = series.frozen - HOUR / 2
    assert series.rows(series.frozen, series.frozen)[0].sum == pytest.approx(
        (series.frozen + HOUR - at(0.5)) / HOUR
    )
    # Between the first reading kept (before the edge) and the next one (after it).
    assert series.add(series.frozen + 60, (first_kept - at(0.5)) / HOUR + 0.6) is None
    assert series.too_old == 1


def test_the_window_never_drops_hours_not_imported_yet() -> None:
    series = meter()
    hours = int((energy_hours.WINDOW + energy_hours.PRUNE_SLACK) / HOUR) + 2
    for hour in range(hours + 1):
        series.add(at(hour), float(hour))
    assert series.frozen is None
    rows = series.take_rows()
    assert len(rows) == hours
    assert rows[-1].sum == float(hours)


def test_too_many_readings_are_cut_even_when_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy_hours, "MAX_POINTS", 10)
    series = meter()
    for minute in range(0, 25 * 6, 6):
        series.add(at(minute / 60), minute / 60)
    assert len(series) <= 21
    assert series.frozen is not None
    rows = series.take_rows()
    assert rows[0].start >= series.frozen
    assert rows[-1].sum == pytest.approx(series.rows(rows[-1].start, rows[-1].start)[0].sum)


# --- energy per interval ----------------------------------------------------------------------


def intervals(last: HourRow | None = None) -> IntervalSeries:
    series = IntervalSeries("test")
    series.seed(last)
    return series


def test_intervals_go_into_the_hours_they_cover() -> None:
    series = intervals()
    for quarter in range(8):
        series.add(at(quarter / 4), at((quarter + 1) / 4), 1.0)
    assert series.take_rows() == [HourRow(at(0), 4.0, 4.0), HourRow(at(1), 8.0, 8.0)]


def test_an_interval_across_hours_is_split_in_proportion_to_time() -> None:
    series = intervals()
    series.add(at(0.5), at(2.5), 8.0)
    series.add(at(2.5), at(3), 1.0)
    rows = series.take_rows()
    assert [row.sum for row in rows] == [2.0, 6.0, 9.0]


def test_late_duplicate_and_overlapping_intervals() -> None:
    series = intervals()
    series.add(at(0), at(1), 1.0)
    series.add(at(2), at(3), 3.0)
    assert [row.sum for row in series.take_rows()] == [1.0, 1.0, 4.0]
    assert series.add(at(1), at(2), 2.0) == at(1)  # the missing hour arrives late
    assert [row.sum for row in series.take_rows()] == [3.0, 6.0]
    assert series.add(at(1), at(2), 2.0) is None
    assert series.duplicates == 1
    assert series.add(at(1.5), at(2), 2.0) is None
    assert series.conflicts == 1
    assert series.add(at(0.5), at(1.5), 1.0) is None
    assert series.add(at(2.5), at(2.75), 1.0) is None
    assert series.overlaps == 2
    assert series.add(at(4), at(3.5), 1.0) is None  # ends before it starts
    assert series.glitches == 1


def test_an_instant_interval_at_an_hour_boundary_belongs_to_the_hour_it_closes() -> None:
    series = intervals()
    series.add(at(0), at(0.5), 1.0)
    series.add(at(1), at(1), 5.0)
    series.add(at(1), at(2), 1.0)
    assert [row.sum for row in series.take_rows()] == [6.0, 7.0]


def test_seeded_intervals_continue_and_clip_at_the_seed() -> None:
    series = IntervalSeries("test")
    series.add(at(9.5), at(10.5), 2.0)  # held until seeded
    series.seed(HourRow(at(9), 100.0, 100.0))
    assert series.add(at(9), at(9.5), 1.0) is None  # entirely in an imported hour
    assert series.too_old == 1
    series.add(at(10.5), at(11), 1.0)
    # Only the half after the seeded boundary counts.
    assert series.take_rows() == [HourRow(at(10), 102.0, 102.0)]
    series.add(at(11), at(11.5), 1.0)
    assert series.open_intervals() == [(at(11), at(11.5), 1.0)]


def test_open_intervals_of_a_new_series() -> None:
    series = intervals()
    series.add(at(0), at(0.5), 1.0)
    assert series.open_intervals() == [(at(0), at(0.5), 1.0)]


def test_interval_memory_is_a_window(monkeypatch: pytest.MonkeyPatch) -> None:
    series = intervals()
    hours = int((energy_hours.WINDOW + energy_hours.PRUNE_SLACK) / HOUR) + 2
    for hour in range(hours):
        series.add(at(hour), at(hour + 1), 1.0)
        series.take_rows()
    assert len(series) <= energy_hours.WINDOW / HOUR + 2
    assert series.frozen is not None
    assert series.add(at(1), at(1.5), 1.0) is None
    assert series.too_old == 1
    series.add(at(hours), at(hours + 1), 1.0)
    assert series.take_rows() == [HourRow(at(hours), hours + 1.0, hours + 1.0)]
    monkeypatch.setattr(energy_hours, "MAX_POINTS", 10)
    forced = intervals()
    for quarter in range(100):
        forced.add(at(quarter / 4), at((quarter + 1) / 4), 1.0)
    assert len(forced) <= 21
    assert forced.take_rows()[-1].sum == 100.0


def test_a_late_reading_never_lifts_its_sum_above_the_next() -> None:
    """1.1 + 0.1 is 1.2000000000000002 in floating point, 1.0 + 0.2 is 1.2: the late reading
    between them must not make the sums go down by a rounding error."""
    series = meter(HourRow(at(-1), 1.0, 0.0))
    series.add(at(4), 0.2)
    series.add(at(2), 0.1)
    series.add(at(3), 0.2)  # late: between 0.1 and the 0.2 that came first
    sums = [row.sum for row in series.rows(at(0), at(3))]
    assert sums == sorted(sums)
    assert sums[-1] == 1.2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed_sum=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    start=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.01, max_value=3, allow_nan=False),  # hours since the last
            st.sampled_from([0.0, 0.0, 0.1, 0.7, 12.3]),  # energy since the last (often none)
        ),
        min_size=2,
        max_size=30,
    ),
    order=st.randoms(use_true_random=False),
)
def test_sums_never_go_backwards_by_rounding(
    seed_sum: float, start: float, steps: list[tuple[float, float]], order: Random
) -> None:
    """Rising or flat readings, in any arrival order: every row's sum is at least the one before.

    Exactly, without a tolerance: the energy dashboard shows a sum that goes down by a
    rounding error as negative energy.
    """
    series = meter(HourRow(at(-1), seed_sum, start))
    readings, hours, value = [], 0.0, start
    for gap, energy in steps:
        hours += gap
        value += energy
        readings.append((at(hours), value))
    order.shuffle(readings)
    previous = seed_sum
    for timestamp, value in readings:
        series.add(timestamp, value)
        for row in series.take_rows():
            assert row.sum >= seed_sum
    rows = series.rows(at(0), hour_start(max(time for time, _ in readings)) - HOUR)
    for row in rows:
        assert row.sum >= previous, (row, previous)
        previous = row.sum


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed_sum=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    intervals_=st.lists(
        st.tuples(
            st.floats(min_value=0.05, max_value=2.5, allow_nan=False),  # length, hours
            st.sampled_from([0.0, 0.1, 0.2, 0.7, 12.3]),  # energy
        ),
        min_size=2,
        max_size=30,
    ),
    order=st.randoms(use_true_random=False),
)
def test_interval_sums_never_go_backwards_by_rounding(
    seed_sum: float, intervals_: list[tuple[float, float]], order: Random
) -> None:
    """Back-to-back intervals in any arrival order: every row's sum is at least the one before."""
    series = intervals(HourRow(at(-1), seed_sum, seed_sum))
    given_intervals, hours = [], 0.0
    for length, energy in intervals_:
        given_intervals.append((at(hours), at(hours + length), energy))
        hours += length
    order.shuffle(given_intervals)
    for start, end, energy in given_intervals:
        series.add(start, end, energy)
    previous = seed_sum
    for row in series.rows(at(0), hour_start(at(hours)) - HOUR):
        assert row.sum >= previous, (row, previous)
        previous = row.sum
