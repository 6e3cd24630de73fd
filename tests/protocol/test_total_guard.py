"""The guard that keeps an energy total from going backwards (TotalGuard)."""

from __future__ import annotations

from custom_components.energy_telemetry.totals import MAX_PENDING, TotalGuard


def _seeded(value: float | None = None, timestamp: float | None = None) -> TotalGuard:
    guard = TotalGuard()
    guard.seed(value, timestamp)
    return guard


def test_guard_first_reading_and_increase() -> None:
    guard = _seeded()
    assert guard.seeded
    assert guard.accept(100.0, 1.0)
    assert guard.accept(100.0, 2.0)  # unchanged but newer: applied
    assert guard.accept(150.0, 3.0)
    assert (guard.value, guard.timestamp, guard.rejected) == (150.0, 3.0, 0)


def test_guard_drops_stale_and_duplicate_timestamps() -> None:
    guard = _seeded(100.0, 10.0)
    assert not guard.accept(500.0, 9.0)  # older, even though higher
    assert not guard.accept(500.0, 10.0)  # same time: duplicate
    assert (guard.value, guard.timestamp, guard.rejected) == (100.0, 10.0, 2)
    assert guard.accept(500.0, 11.0)
    assert guard.value == 500.0


def test_guard_without_timestamps_judges_values() -> None:
    guard = _seeded(100.0, None)
    assert guard.accept(120.0, None)
    assert not guard.accept(110.0, None)
    assert guard.value == 120.0


def test_guard_rejects_small_drop() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(999.0, 2.0)
    assert not guard.accept(500.0, 3.0)  # half: still a glitch
    assert (guard.value, guard.resets, guard.rejected) == (1000.0, 0, 2)
    # A small drop never becomes a reset, however often it repeats.
    assert not guard.accept(600.0, 4.0)
    assert guard.value == 1000.0


def test_guard_rejects_lone_large_drop() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(10.0, 2.0)
    assert guard.accept(1001.0, 3.0)  # the low reading was a glitch
    assert (guard.value, guard.resets) == (1001.0, 0)
    # The glitch is forgotten: a later low reading is a new candidate, not a confirmation.
    assert not guard.accept(20.0, 4.0)
    assert guard.value == 1001.0


def test_guard_applies_confirmed_reset() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(10.0, 2.0)
    assert guard.accept(12.0, 3.0)
    assert (guard.value, guard.timestamp, guard.resets) == (12.0, 3.0, 1)
    assert guard.accept(15.0, 4.0)
    assert guard.value == 15.0


def test_guard_reset_needs_a_higher_confirmation() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(100.0, 2.0)
    assert not guard.accept(50.0, 3.0)  # lower than the candidate: a new candidate
    assert guard.accept(60.0, 4.0)
    assert (guard.value, guard.resets) == (60.0, 1)


def test_guard_duplicate_of_candidate_does_not_confirm() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(10.0, 2.0)
    assert not guard.accept(10.0, 2.0)  # the same reading again (a replay)
    assert not guard.accept(11.0, 1.5)  # older than the candidate
    assert (guard.value, guard.resets) == (1000.0, 0)
    assert guard.accept(11.0, 3.0)
    assert guard.resets == 1


def test_guard_holds_readings_until_seeded() -> None:
    guard = TotalGuard()
    assert not guard.seeded
    for value, timestamp in ((90.0, 1.0), (110.0, 3.0), (105.0, 4.0), (120.0, 5.0)):
        assert not guard.accept(value, timestamp)
    assert guard.value is None
    assert guard.seed(100.0, 2.0)
    # Replayed in order against the seed: 90 is older, 110 applies, 105 is a glitch, 120 applies.
    assert (guard.value, guard.timestamp, guard.rejected) == (120.0, 5.0, 2)


def test_guard_seed_without_restored_value() -> None:
    guard = TotalGuard()
    assert not guard.seed(None, None)
    assert guard.value is None
    guard = TotalGuard()
    guard.accept(5.0, 1.0)
    guard.accept(7.0, 2.0)
    assert guard.seed(None, None)
    assert (guard.value, guard.timestamp) == (7.0, 2.0)


def test_guard_pending_is_bounded() -> None:
    guard = TotalGuard()
    for index in range(MAX_PENDING + 20):
        guard.accept(float(index), float(index))
    guard.seed(None, None)
    assert guard.value == float(MAX_PENDING + 19)
    # The oldest held readings were dropped: the first replayed is index 20.
    guard = TotalGuard()
    for index in range(MAX_PENDING + 20):
        guard.accept(1000.0 - index, float(index))
    guard.seed(None, None)
    assert guard.value == 980.0
