"""The net growth of signed energy counters (the house's consumption): never down, nothing lost."""

from __future__ import annotations

from hypothesis import given, strategies as st

from custom_components.energy_telemetry.totals import NetGrowth, TotalGuard


def test_first_values_are_starting_points() -> None:
    growth = NetGrowth()
    growth.add("import", 1.0, 1000.0)
    growth.add("export", -1.0, 500.0)
    assert growth.take() == 0.0
    assert growth.known("import")
    assert not growth.known("pv")


def test_signed_growth_and_a_deficit_paid_back() -> None:
    growth = NetGrowth()
    for key, sign in (("import", 1.0), ("export", -1.0), ("pv", 1.0)):
        growth.add(key, sign, 100.0)
    growth.add("export", -1.0, 130.0)  # exported 30 before the PV counter shows its 50
    assert growth.take() == 0.0
    assert growth.balance == -30.0
    growth.add("pv", 1.0, 150.0)
    assert growth.take() == 20.0  # 50 produced - 30 exported
    assert growth.take() == 0.0
    growth.add("import", 1.0, 110.0)
    assert growth.take() == 10.0


def test_a_confirmed_reset_counts_from_zero() -> None:
    growth = NetGrowth()
    growth.add("import", 1.0, 9000.0)
    growth.add("import", 1.0, 4.0)  # a new meter: 4 since it started
    assert growth.take() == 4.0


def test_a_forgotten_counter_starts_again() -> None:
    growth = NetGrowth()
    growth.add("pv", 1.0, 10.0)
    growth.forget("pv")
    growth.add("pv", 1.0, 50.0)
    assert growth.take() == 0.0


def test_the_guard_keeps_where_it_started() -> None:
    """The value restored from the last run, else the first value it applied."""
    fresh = TotalGuard()
    fresh.seed(None, None)
    assert fresh.accept(7.0, 1.0)
    assert fresh.accept(9.0, 2.0)
    assert fresh.start == 7.0
    guard = TotalGuard()
    assert guard.start is None
    guard.seed(42.0, 1.0)
    assert guard.start == 42.0
    assert guard.accept(50.0, 2.0)
    assert (guard.value, guard.start) == (50.0, 42.0)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["import", "export", "pv", "charge", "discharge"]), st.floats(0, 500)
        ),
        max_size=60,
    )
)
def test_taken_growth_never_goes_down_and_adds_up(steps: list[tuple[str, float]]) -> None:
    """Whatever the order the counters report in, the total taken is the net growth (if >= 0)."""
    signs = {"import": 1.0, "export": -1.0, "pv": 1.0, "charge": -1.0, "discharge": 1.0}
    growth = NetGrowth()
    values = dict.fromkeys(signs, 1000.0)
    for key, sign in signs.items():
        growth.add(key, sign, values[key])
    taken = 0.0
    for key, step in steps:
        values[key] += step
        growth.add(key, signs[key], values[key])
        now = growth.take()
        assert now >= 0.0
        taken += now
    net = sum(signs[key] * (values[key] - 1000.0) for key in signs)
    assert abs(taken + growth.balance - net) < 1e-6
    assert growth.balance <= 1e-9
