"""The sign-by-evidence engine on its own: simulated DERs with a known wire convention."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
import itertools
import json
import logging
import math
import random
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.energy_telemetry.protocol.novacore.signs import (
    CLOCK_JUMP_MS,
    COUNTERS,
    DEADBAND_MAX_W,
    DEADBAND_W,
    DECIDE_AFTER,
    LAG_MARGIN_MS,
    MAX_GAP_MS,
    OBSERVATION_SPACING_MS,
    OVERTURN_AFTER,
    Convention,
    SignDecision,
    SignEngine,
    Status,
)

DOC = Convention.DOCUMENTED
INV = Convention.INVERTED
T0 = 1_767_225_600_000.0  # 2026-01-01T00:00:00Z in ms

Reading = tuple[float | None, float | None, dict[str, float]]

# What the documented wire's W shows while each kind's main counter grows.
PRODUCE = {"battery": 2000.0, "meter": 1500.0, "pv": -3000.0, "ev_charger": 7000.0}


@dataclass
class Sim:
    """A DER with a true power profile (documented convention) and exact energy counters.

    Power is piecewise constant between changes; counters are the exact integrals of the
    power's positive and negative parts, quantised down to `resolution` and trailing the power
    by `lag_ms`. The wire's W is the true power (plus noise) times the wire's factor.
    """

    kind: str
    wire: Convention = DOC
    resolution: float = 1.0
    lag_ms: float = 0.0
    base: float = 50_000.0
    now: float = T0
    times: list[float] = field(default_factory=lambda: [-math.inf])
    powers: list[float] = field(default_factory=lambda: [0.0])
    sessions: list[float] = field(default_factory=lambda: [-math.inf])

    def set_power(self, at: float, power: float) -> None:
        if at <= self.times[-1]:
            raise ValueError("changes must be in order")
        self.times.append(at)
        self.powers.append(power)

    def new_session(self, at: float) -> None:
        self.sessions.append(at)

    def energy(self, at: float) -> tuple[float, float]:
        """Energy (Wh) in the + and - directions from the start up to `at`."""
        up = down = 0.0
        for index, start in enumerate(self.times):
            if start >= at:
                break
            end = self.times[index + 1] if index + 1 < len(self.times) else at
            begin = max(start, T0 - 1e9)
            wh = self.powers[index] * (min(end, at) - begin) / 3_600_000.0
            if wh > 0:
                up += wh
            else:
                down -= wh
        return up, down

    def counters(self, at: float) -> dict[str, float]:
        seen = at - self.lag_ms
        up, down = self.energy(seen)
        session = self.sessions[bisect_right(self.sessions, seen) - 1]
        s_up, s_down = self.energy(session) if session > -math.inf else (0.0, 0.0)
        result = {}
        for name, sign, is_session in COUNTERS[self.kind]:
            value = up if sign > 0 else down
            if is_session:
                value -= s_up if sign > 0 else s_down
            else:
                value += self.base
            result[name] = math.floor(value / self.resolution + 1e-9) * self.resolution
        return result

    def power_at(self, at: float) -> float:
        return self.powers[bisect_right(self.times, at) - 1]

    def reading(self, at: float, noise: float = 0.0) -> Reading:
        return at, self.wire.factor * (self.power_at(at) + noise), self.counters(at)

    def run(self, power: float, seconds: float, every: float = 5.0) -> list[Reading]:
        """Change to `power` half way to the next reading, then read every `every` seconds."""
        self.set_power(self.now + every * 500.0, power)
        readings = []
        end = self.now + seconds * 1000.0
        while self.now + every * 1000.0 <= end:
            self.now += every * 1000.0
            readings.append(self.reading(self.now))
        return readings


def feed(
    engine: SignEngine, readings: Iterable[Reading], der: str = "der", der_type: str = "battery"
) -> list[SignDecision]:
    events = []
    for timestamp, power, counters in readings:
        event = engine.observe(der, der_type, timestamp, power, counters)
        if event is not None:
            events.append(event)
    return events


def observations(engine: SignEngine, der: str = "der") -> dict[str, int]:
    result: dict[str, int] = engine.diagnostics()[der]["observations"]
    return result


def decision(engine: SignEngine, der: str = "der") -> str | None:
    result: str | None = engine.diagnostics()[der]["evidence_decision"]
    return result


# --- deciding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", [DOC, INV])
@pytest.mark.parametrize(
    ("kind", "direction"),
    [
        (kind, direction)
        for kind in PRODUCE
        for direction in (1, -1)
        if (kind, direction) != ("pv", 1)
    ],
)
def test_each_kind_decides_its_wire_in_both_directions(
    kind: str, wire: Convention, direction: int
) -> None:
    """Both directions of each kind (a PV's only counter counts production)."""
    sim = Sim(kind, wire)
    engine = SignEngine()
    readings = sim.run(direction * abs(PRODUCE[kind]), 600)
    factors = []
    events: list[SignDecision] = []
    decided_after = -1
    for index, (timestamp, power, counters) in enumerate(readings):
        factors.append(engine.factor("der", kind))
        if (event := engine.observe("der", kind, timestamp, power, counters)) is not None:
            events.append(event)
            decided_after = index
    assert len(events) == 1
    event = events[0]
    assert event.convention is wire
    assert event.previous is None
    assert event.level == logging.INFO
    assert event.der == "der"
    assert event.der_type == kind
    assert event.agreeing == DECIDE_AFTER
    assert event.contradicting == 0
    assert event.factor == wire.factor
    assert event.override is None
    assert ("opposite" in event.message) == (wire is INV)
    # The documented convention applied until the decision, the decided one after.
    assert set(factors[: decided_after + 1]) == {1}
    assert set(factors[decided_after + 1 :]) == {wire.factor}
    assert engine.factor("der", kind) == wire.factor
    assert engine.status("der", kind) is Status.DECIDED
    diagnostics = engine.diagnostics()["der"]
    assert diagnostics["status"] == "decided"
    assert diagnostics["source"] == "evidence"
    assert diagnostics["convention"] == wire
    assert diagnostics["contradicting"] == 0
    assert diagnostics["agreeing"] == sum(observations(engine).values())


def test_documented_convention_applies_until_enough_observations() -> None:
    sim = Sim("battery", INV)
    engine = SignEngine()
    counted = []
    for timestamp, power, counters in sim.run(2000.0, 600):
        event = engine.observe("der", "battery", timestamp, power, counters)
        counted.append(sum(observations(engine).values()))
        if counted[-1] < DECIDE_AFTER:
            assert event is None
            assert engine.factor("der", "battery") == 1
            assert engine.status("der", "battery") is Status.ASSUMED
            assert engine.diagnostics()["der"]["status"] == "assumed"
            assert engine.diagnostics()["der"]["source"] == "documented"
        elif counted[-1] == DECIDE_AFTER and counted[-2] < DECIDE_AFTER:
            assert event is not None
            assert event.convention is INV
    assert engine.factor("der", "battery") == -1
    # Observations are at least a minute apart, so the decision took a few minutes.
    diagnostics = engine.diagnostics()["der"]
    assert diagnostics["decided_at"] is not None
    assert diagnostics["last_evidence"] is not None
    assert diagnostics["recent"].startswith("III")


def test_a_steady_flow_gives_one_observation_per_spacing() -> None:
    sim = Sim("meter", DOC)
    engine = SignEngine()
    feed(engine, sim.run(1500.0, 3600), der_type="meter")
    count = sum(observations(engine).values())
    assert 3600_000 / OBSERVATION_SPACING_MS - 3 <= count <= 3600_000 / OBSERVATION_SPACING_MS


def test_legacy_and_documented_wires_are_each_decided() -> None:
    """A site over an afternoon and evening: PV, battery, meter, EV charger on one timeline."""
    legacy = {"pv": DOC, "battery": INV, "meter": INV, "ev_charger": DOC}
    for wires in (legacy, dict.fromkeys(legacy, DOC)):
        engine = SignEngine()
        sims = {kind: Sim(kind, wire, resolution=10.0) for kind, wire in wires.items()}
        # (pv, battery, meter, ev) in documented convention, for 20 minutes each
        profile = [
            (-4000.0, 2500.0, -1200.0, 0.0),  # sunny: battery charging, exporting
            (-1500.0, 0.0, 600.0, 0.0),  # clouds: battery idle, importing
            (-200.0, -1800.0, -300.0, 0.0),  # evening: battery discharging, small export
            (0.0, -2500.0, 5200.0, 7400.0),  # car charging from grid and battery
            (0.0, 0.0, 400.0, 0.0),
        ]
        readings: list[tuple[str, Reading]] = []
        for step in profile:
            for (kind, sim), power in zip(sims.items(), step, strict=True):
                readings.extend((kind, reading) for reading in sim.run(power, 1200))
        readings.sort(key=lambda item: item[1][0] or 0.0)
        for kind, (timestamp, power, counters) in readings:
            engine.observe(
                kind,
                {"pv": "solar", "ev_charger": "v2x_charger"}.get(kind, kind),
                timestamp,
                power,
                counters,
            )
        for kind, wire in wires.items():
            assert decision(engine, kind) == wire, kind
            assert observations(engine, kind)[str(DOC if wire is INV else INV)] == 0


# --- no evidence ----------------------------------------------------------------------------


def _steady(kind: str = "battery", wire: Convention = INV, seconds: float = 1800) -> list[Reading]:
    return Sim(kind, wire).run(PRODUCE[kind], seconds)


def _assert_no_evidence(engine: SignEngine, der: str = "der") -> None:
    assert observations(engine, der) == {"documented": 0, "inverted": 0}
    assert decision(engine, der) is None
    assert engine.factor(der, "battery") == 1


def test_near_zero_power_is_no_evidence() -> None:
    # Counters and power agree, but the power stays within the deadband.
    engine = SignEngine()
    assert feed(engine, Sim("battery", INV).run(DEADBAND_W * 0.9, 3600)) == []
    _assert_no_evidence(engine)
    # Just beyond it, the same flow decides.
    engine = SignEngine()
    feed(engine, Sim("battery", INV).run(DEADBAND_W * 1.2, 3600))
    assert decision(engine) == INV


def test_the_deadband_grows_with_the_largest_power_seen() -> None:
    # One reading of 10 kW raises the deadband to 200 W: a steady 180 W is then no evidence.
    readings = Sim("battery", INV).run(180.0, 3600)
    engine = SignEngine()
    t, _, c = readings[0]
    engine.observe("der", "battery", t, -10_000.0, c)
    feed(engine, readings[1:])
    _assert_no_evidence(engine)
    # But never beyond DEADBAND_MAX_W, so one absurd reading cannot blind the engine.
    readings = Sim("battery", INV).run(DEADBAND_MAX_W * 1.2, 3600)
    engine = SignEngine()
    t, _, c = readings[0]
    engine.observe("der", "battery", t, -900_000.0, c)
    feed(engine, readings[1:])
    assert decision(engine) == INV


def test_missing_or_implausible_power_is_no_evidence() -> None:
    for bad in (None, math.nan, 5e6, -math.inf):
        engine = SignEngine()
        feed(engine, [(t, bad, c) for t, _, c in _steady()])
        _assert_no_evidence(engine)


def test_no_counter_movement_is_no_evidence() -> None:
    engine = SignEngine()
    counters = {"total_charge_Wh": 100.0, "total_discharge_Wh": 50.0}
    feed(engine, [(T0 + i * 5000.0, -2000.0, counters) for i in range(500)])
    _assert_no_evidence(engine)
    assert engine.diagnostics()["der"]["counters_seen"] == [
        "total_charge_Wh",
        "total_discharge_Wh",
    ]


def test_no_counters_is_no_evidence_for_a_kind_with_counters() -> None:
    engine = SignEngine()
    feed(engine, [(T0 + i * 5000.0, -2000.0, {"V": 50.0}) for i in range(500)])
    _assert_no_evidence(engine)
    assert engine.diagnostics()["der"]["status"] == "assumed"
    assert engine.diagnostics()["der"]["counters_seen"] == []


def test_both_directions_moving_is_no_evidence() -> None:
    engine = SignEngine()
    readings = [
        (
            T0 + i * 5000.0,
            -2000.0,
            {"total_charge_Wh": 100.0 + 3 * i, "total_discharge_Wh": 100.0 + 2 * i},
        )
        for i in range(500)
    ]
    feed(engine, readings)
    _assert_no_evidence(engine)


def test_opposite_counters_stepping_in_turn_are_no_evidence() -> None:
    """A meter summing phases apart: import and export step in turn while the net is small."""
    engine = SignEngine()
    readings = []
    imported = exported = 1000.0
    for i in range(2000):
        if i % 2:
            imported += 0.5
        else:
            exported += 0.5
        readings.append(
            (T0 + i * 5000.0, 300.0, {"total_import_Wh": imported, "total_export_Wh": exported})
        )
    feed(engine, readings, der_type="meter")
    assert observations(engine) == {"documented": 0, "inverted": 0}


def test_counters_going_backwards_are_no_evidence() -> None:
    engine = SignEngine()
    readings = [
        (t, power, {k: v - (20.0 if index % 2 else 0.0) for k, v in counters.items()})
        for index, (t, power, counters) in enumerate(_steady())
    ]
    feed(engine, readings)
    _assert_no_evidence(engine)


def test_duplicate_and_out_of_order_timestamps_are_no_evidence() -> None:
    readings = _steady()
    engine = SignEngine()
    feed(engine, [(readings[0][0], p, c) for _, p, c in readings])
    _assert_no_evidence(engine)
    assert engine.diagnostics()["der"]["readings_ignored"] == len(readings) - 1
    engine = SignEngine()
    feed(engine, reversed(readings))
    _assert_no_evidence(engine)
    engine = SignEngine()
    feed(engine, [(None, p, c) for _, p, c in readings])
    feed(engine, [(math.nan, p, c) for _, p, c in readings])
    _assert_no_evidence(engine)
    assert engine.diagnostics()["der"]["readings_ignored"] == 2 * len(readings)


def test_duplicates_and_stale_readings_among_good_ones_change_nothing() -> None:
    readings = _steady()
    clean = SignEngine()
    feed(clean, readings)
    noisy = SignEngine()
    mixed: list[Reading] = []
    for index, reading in enumerate(readings):
        mixed.append(reading)
        mixed.append(reading)  # duplicate
        if index >= 3:
            mixed.append(readings[index - 3])  # replayed late
    feed(noisy, mixed)
    assert observations(noisy) == observations(clean)
    assert decision(noisy) == decision(clean) == INV


def test_long_gaps_are_no_evidence() -> None:
    sim = Sim("battery", INV)
    engine = SignEngine()
    feed(engine, sim.run(2000.0, 3600 * 10, every=MAX_GAP_MS / 1000 + 1))
    _assert_no_evidence(engine)


def test_a_counter_step_straddling_a_sign_change_is_no_evidence() -> None:
    """Coarse counters trailing the power: the step shows up after the power changed sign.

    Comparing only the two readings around the step would count the charge step below as
    'charging while the power shows discharging'.
    """
    sim = Sim("battery", DOC, resolution=100.0, lag_ms=25_000.0)
    readings = []
    for _ in range(60):
        readings += sim.run(2000.0, 170)  # 94 Wh charged: the step often lands after the switch
        readings += sim.run(-2000.0, 170)
    naive = 0
    for (_, p0, c0), (_, p1, c1) in itertools.pairwise(readings):
        moved_up = c1["total_charge_Wh"] > c0["total_charge_Wh"]
        moved_down = c1["total_discharge_Wh"] > c0["total_discharge_Wh"]
        if (p0 or 0) < 0 and (p1 or 0) < 0 and moved_up and not moved_down:
            naive += 1
    assert naive > DECIDE_AFTER  # the naive rule would have decided 'inverted'
    engine = SignEngine()
    feed(engine, readings)
    assert observations(engine)["inverted"] == 0
    assert decision(engine) in (None, DOC)


def test_a_counter_glitch_is_no_evidence() -> None:
    """A counter jumping far up (and back) is more energy than the power shows: no evidence."""
    engine = SignEngine()
    sim = Sim("battery", DOC)
    readings = sim.run(-2000.0, 600)  # discharging, documented wire: W negative
    glitched = [
        (t, p, {**c, "total_charge_Wh": c["total_charge_Wh"] + 5000.0} if i % 20 == 10 else c)
        for i, (t, p, c) in enumerate(readings)
    ]
    feed(engine, glitched)
    assert observations(engine)["inverted"] == 0


def test_a_clock_jump_starts_the_evidence_afresh() -> None:
    sim = Sim("battery", INV)
    readings = sim.run(2000.0, 1800)
    engine = SignEngine()
    # A glitch far in the future first: the following readings are far older, not ignored forever.
    t, p, c = readings[0]
    engine.observe("der", "battery", t + 10 * CLOCK_JUMP_MS, p, c)
    feed(engine, readings)
    assert decision(engine) == INV
    assert observations(engine)["documented"] == 0


# --- changing its mind ------------------------------------------------------------------------


def _decided(wire: Convention, kind: str = "battery") -> tuple[Sim, SignEngine]:
    sim = Sim(kind, wire)
    engine = SignEngine()
    events = feed(engine, sim.run(PRODUCE[kind], 1800), der_type=kind)
    assert [event.convention for event in events] == [wire]
    return sim, engine


def test_a_glitch_does_not_flip_a_decision() -> None:
    sim, engine = _decided(INV)
    before = observations(engine)["documented"]
    # A few minutes where the wire looks documented: a few contradicting observations.
    sim.wire = DOC
    events = feed(engine, sim.run(-2000.0, 300))
    contradicting = observations(engine)["documented"] - before
    assert 1 <= contradicting < OVERTURN_AFTER
    sim.wire = INV
    events += feed(engine, sim.run(2000.0, 1800))
    assert events == []
    assert decision(engine) == INV
    assert engine.factor("der", "battery") == -1
    assert engine.diagnostics()["der"]["contradicting"] == contradicting


def test_a_firmware_change_re_decides_with_one_warning() -> None:
    sim, engine = _decided(INV)
    sim.wire = DOC  # the firmware update
    events = []
    counts = []
    for timestamp, power, counters in sim.run(-2000.0, 3600 * 3):
        event = engine.observe("der", "battery", timestamp, power, counters)
        counts.append(observations(engine)["documented"])
        if event is not None:
            events.append(event)
            # Clearly more evidence than for the first decision.
            assert counts[-1] >= OVERTURN_AFTER
    assert len(events) == 1
    event = events[0]
    assert event.convention is DOC
    assert event.previous is INV
    assert event.level == logging.WARNING
    assert event.agreeing >= OVERTURN_AFTER
    assert "changed" in event.message
    assert "'inverted'" in event.message
    assert engine.factor("der", "battery") == 1
    assert decision(engine) == DOC
    # And back again, with one more warning.
    sim.wire = INV
    events = feed(engine, sim.run(2000.0, 3600))
    assert [(e.convention, e.previous, e.level) for e in events] == [(INV, DOC, logging.WARNING)]


def test_mixed_evidence_decides_nothing() -> None:
    sim = Sim("meter", DOC)
    engine = SignEngine()
    events = []
    for _ in range(30):
        sim.wire = DOC
        events += feed(engine, sim.run(1500.0, 150), der_type="meter")
        sim.wire = INV
        events += feed(engine, sim.run(1500.0, 150), der_type="meter")
    counts = observations(engine)
    assert counts["documented"] >= 10
    assert counts["inverted"] >= 10
    assert events == []
    assert engine.factor("der", "meter") == 1


def _sequence(engine: SignEngine, pattern: str) -> list[SignDecision]:
    """Feed observations straight to the decision rules: D = documented, I = inverted."""
    state = engine._state("der", "battery")
    events = []
    for index, letter in enumerate(pattern):
        event = engine._record("der", state, letter == "D", T0 + index * 60_000.0)
        if event is not None:
            events.append(event)
    return events


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("DD", []),
        ("DDD", [(None, DOC)]),
        ("III", [(None, INV)]),
        ("IDIDIDIDD", []),  # three in a row, but not three quarters of the kept ones
        ("IDIDDDD", []),  # 5 of 7
        ("IDIDDDDD", [(None, DOC)]),  # 6 of 8
        ("IIIDDDDDDDDD", [(None, INV)]),  # 9 contradicting: not yet
        ("IIIDDDDDDDDDD", [(None, INV), (INV, DOC)]),  # 10 of the last 12
        ("IIIDDDDDDDDDDI", [(None, INV), (INV, DOC)]),
        ("IIIDDDDDIDDDDDD", [(None, INV), (INV, DOC)]),
        ("IIIDDDDDDDDDIDD", [(None, INV)]),  # the last three do not all contradict
        ("III" + "DDDI" * 10, [(None, INV)]),  # 9 of 12 each time: never enough
        ("III" + "DDDDDDDDDI" * 2, [(None, INV), (INV, DOC)]),  # 10 of 12 is enough
    ],
)
def test_decision_rules(pattern: str, expected: list[tuple[Convention | None, Convention]]) -> None:
    events = _sequence(SignEngine(), pattern)
    assert [(event.previous, event.convention) for event in events] == expected


def test_non_finite_counters_are_skipped() -> None:
    engine = SignEngine()
    readings = _steady()
    bad = {"total_charge_Wh": math.nan, "total_discharge_Wh": math.inf}
    engine.observe("der", "battery", T0 - 10_000.0, 2000.0, bad)
    mixed = [(t, p, bad if i % 7 == 3 else c) for i, (t, p, c) in enumerate(readings)]
    feed(engine, mixed)
    assert decision(engine) == INV
    assert observations(engine)["documented"] == 0


# --- the user's choice ------------------------------------------------------------------------


def test_an_override_fixes_the_factor_and_evidence_is_still_counted() -> None:
    engine = SignEngine(overrides={"battery": "inverted", "solar": "documented", "meter": "?"})
    assert engine.factor("bat", "battery") == -1
    assert engine.factor("pv", "pv") == 1
    assert engine.factor("grid", "meter") == 1
    sim = Sim("battery", DOC)
    events = feed(engine, sim.run(2000.0, 1800), der="bat")
    assert engine.factor("bat", "battery") == -1
    assert len(events) == 1
    assert events[0].convention is DOC
    assert events[0].override is INV
    assert events[0].factor == -1
    assert "user setting 'inverted' still applies" in events[0].message
    diagnostics = engine.diagnostics()["bat"]
    assert diagnostics["source"] == "user"
    assert diagnostics["override"] == "inverted"
    assert diagnostics["convention"] == "inverted"
    assert diagnostics["factor"] == -1
    assert diagnostics["evidence_decision"] == "documented"
    assert diagnostics["override_contradicts_evidence"] is True
    assert diagnostics["agreeing"] == 0
    assert diagnostics["contradicting"] == observations(engine, "bat")["documented"] > 0
    # Back to automatic: the evidence applies at once.
    engine.set_overrides({"battery": "automatic"})
    assert engine.factor("bat", "battery") == 1
    assert engine.diagnostics()["bat"]["source"] == "evidence"
    engine.set_overrides({"battery": "documented"})
    assert engine.diagnostics()["bat"]["override_contradicts_evidence"] is False


def test_overrides_accept_the_type_aliases() -> None:
    engine = SignEngine(overrides={"v2x_charger": "inverted"})
    assert engine.factor("car", "ev_port") == -1
    assert engine.factor("car2", "charger") == -1
    engine = SignEngine(kinds={"bat": "battery"}, overrides={"bat": "inverted"})
    assert engine.factor("b", "bat") == -1
    assert engine.kind("Battery ") == "battery"


# --- without counters -------------------------------------------------------------------------


def test_an_inverter_has_no_evidence_available() -> None:
    engine = SignEngine()
    assert engine.status("inv", "inverter") is Status.NO_EVIDENCE
    assert engine.status("bat", "battery") is Status.ASSUMED
    for i in range(100):
        assert engine.observe("inv", "inverter", T0 + i * 1000.0, 3000.0, {"W": 3000.0}) is None
    assert engine.factor("inv", "inverter") == 1
    assert engine.status("inv", "inverter") is Status.NO_EVIDENCE
    diagnostics = engine.diagnostics()["inv"]
    assert diagnostics["status"] == "no_evidence_available"
    assert diagnostics["source"] == "documented"
    assert diagnostics["factor"] == 1
    assert diagnostics["observations"] == {"documented": 0, "inverted": 0}
    assert "inv" not in engine.as_dict()["ders"]
    engine.set_overrides({"inverter": "inverted"})
    assert engine.factor("inv", "inverter") == -1
    assert engine.diagnostics()["inv"]["source"] == "user"
    assert engine.diagnostics()["inv"]["status"] == "no_evidence_available"
    # An unknown type word is a kind without counters too.
    assert engine.observe("x", "heat_pump", T0, 1.0, {}) is None
    assert engine.diagnostics()["x"]["status"] == "no_evidence_available"


# --- per kind ---------------------------------------------------------------------------------


def test_pv_production_decides_and_the_night_is_no_evidence() -> None:
    sim = Sim("pv", DOC)
    engine = SignEngine()
    feed(engine, sim.run(15.0, 3600 * 4), der_type="solar")  # night: standby draw
    assert observations(engine) == {"documented": 0, "inverted": 0}
    sim.wire = INV  # an inverter reporting production positive
    feed(engine, sim.run(-2500.0, 1800), der_type="pv")
    assert decision(engine) == INV
    assert observations(engine)["documented"] == 0


def test_ev_charger_sessions_reset_without_being_evidence() -> None:
    engine = SignEngine()
    sim = Sim("ev_charger", INV)
    events = []
    for _ in range(6):
        sim.new_session(sim.now + 1.0)
        events += feed(engine, sim.run(0.0, 120), der_type="v2x_charger")
        events += feed(engine, sim.run(7000.0, 400), der_type="v2x_charger")
        events += feed(engine, sim.run(0.0, 600), der_type="v2x_charger")
    assert [event.convention for event in events] == [INV]
    assert observations(engine)["documented"] == 0


def test_ev_charger_session_counters_alone_decide() -> None:
    engine = SignEngine()
    sim = Sim("ev_charger", DOC)
    readings = []
    for _ in range(3):
        sim.new_session(sim.now + 1.0)
        readings += sim.run(-5000.0, 900)  # vehicle to grid
        readings += sim.run(0.0, 300)
    only_session = [
        (t, p, {k: v for k, v in c.items() if k.startswith("session")}) for t, p, c in readings
    ]
    assert any(
        b[2]["session_discharge_Wh"] < a[2]["session_discharge_Wh"]
        for a, b in itertools.pairwise(only_session)
    )
    feed(engine, only_session, der_type="ev_port")
    assert decision(engine) == DOC
    assert observations(engine)["inverted"] == 0


def test_a_session_reset_does_not_end_the_evidence_of_the_totals() -> None:
    sim = Sim("ev_charger", INV)
    readings = sim.run(7000.0, 900)
    engine = SignEngine()
    # The session counter restarts in the middle of a steady charge (a new session id).
    changed = [
        (t, p, {**c, "session_charge_Wh": 0.0 if i == 40 else c["session_charge_Wh"]})
        for i, (t, p, c) in enumerate(readings)
    ]
    feed(engine, changed, der_type="v2x_charger")
    assert decision(engine) == INV


# --- storage ----------------------------------------------------------------------------------


def test_the_state_survives_a_restart() -> None:
    sim, engine = _decided(INV)
    stored = json.loads(json.dumps(engine.as_dict()))
    assert stored["version"] == 1
    entry = stored["ders"]["der"]
    assert entry["type"] == "battery"
    assert entry["decision"] == "inverted"
    assert set(entry) == {
        "type",
        "decision",
        "decided_at",
        "documented",
        "inverted",
        "recent",
        "recent_count",
        "last_evidence",
    }
    restored = SignEngine(stored=stored)
    assert restored.factor("der", "battery") == -1
    before = engine.diagnostics()["der"]
    after = restored.diagnostics()["der"]
    for key in ("convention", "source", "status", "observations", "recent", "decided_at"):
        assert after[key] == before[key], key
    assert restored.as_dict() == stored
    # No second info line after the restart: more of the same evidence decides nothing new.
    assert feed(restored, sim.run(2000.0, 1800)) == []
    # And a firmware change after the restart still re-decides.
    sim.wire = DOC
    events = feed(restored, sim.run(2000.0, 3600))
    assert [(e.previous, e.convention) for e in events] == [(INV, DOC)]


def test_revision_grows_with_every_stored_change() -> None:
    sim = Sim("meter", DOC)
    engine = SignEngine()
    revision = engine.revision
    feed(engine, sim.run(0.0, 600), der_type="meter")
    assert engine.revision == revision
    feed(engine, sim.run(1500.0, 600), der_type="meter")
    assert engine.revision > revision


def test_a_forgotten_der_starts_afresh() -> None:
    """A DER that left the site leaves nothing behind; if it comes back, evidence starts anew."""
    sim = Sim("meter", INV)
    engine = SignEngine()
    feed(engine, sim.run(1500.0, 3600), der_type="meter")
    assert engine.factor("der", "meter") == -1
    revision = engine.revision
    engine.forget("der")
    assert engine.revision > revision
    assert "der" not in engine.diagnostics()
    assert engine.as_dict()["ders"] == {}
    assert engine.factor("der", "meter") == 1  # documented until decided again
    revision = engine.revision
    engine.forget("unknown")
    assert engine.revision == revision


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        5,
        "inverted",
        [1, 2],
        {},
        {"version": 1},
        {"version": 1, "ders": 5},
        {"version": 99, "ders": {"der": 5, 3: {"decision": "inverted"}}},
        {
            "version": 1,
            "ders": {
                "der": {
                    "type": 7,
                    "decision": "sideways",
                    "decided_at": "yesterday",
                    "documented": -3,
                    "inverted": "x",
                    "recent": 2**80,
                    "recent_count": True,
                    "last_evidence": math.inf,
                }
            },
        },
        {"version": 1, "ders": {"der": {"decision": ["inverted"]}}},
    ],
)
def test_garbage_in_storage_is_skipped(garbage: Any) -> None:
    engine = SignEngine(stored=garbage)
    engine.load(garbage)
    assert engine.factor("der", "battery") == 1
    feed(engine, _steady())
    assert decision(engine) == INV
    json.dumps(engine.as_dict())
    json.dumps(engine.diagnostics())


def test_odd_stored_values_are_clamped() -> None:
    engine = SignEngine(
        stored={
            "version": 1,
            "ders": {
                "der": {
                    "type": "battery",
                    "decision": "inverted",
                    "documented": 10**30,
                    "inverted": 4,
                    "recent": 2**80 - 1,
                    "recent_count": 500,
                    "last_evidence": 1e30,
                    "decided_at": T0,
                }
            },
        }
    )
    diagnostics = engine.diagnostics()["der"]
    assert diagnostics["factor"] == -1
    assert diagnostics["observations"] == {"documented": 0, "inverted": 4}
    assert diagnostics["recent"] == "I" * 12
    assert diagnostics["last_evidence"] is None  # beyond what a date can hold
    # A last observation in the future does not block new evidence.
    sim = Sim("battery", INV)
    feed(engine, sim.run(2000.0, 1800))
    assert observations(engine)["inverted"] > 4


def test_an_old_bare_format_is_taken() -> None:
    engine = SignEngine(stored={"bat": "inverted", "grid": "documented", "x": "?"})
    assert engine.diagnostics()["bat"]["status"] == "decided"  # no side effect on the state
    assert engine.factor("bat", "battery") == -1
    assert engine.factor("grid", "meter") == 1
    assert engine.diagnostics()["bat"]["type"] == "battery"
    assert engine.diagnostics()["bat"]["source"] == "evidence"
    # The DER learnt its kind: it keeps its decision and gathers evidence.
    sim = Sim("battery", INV)
    assert feed(engine, sim.run(2000.0, 1800), der="bat") == []
    assert observations(engine, "bat")["inverted"] >= DECIDE_AFTER
    assert engine.as_dict()["ders"]["bat"]["type"] == "battery"


def test_a_der_that_changes_kind_starts_afresh() -> None:
    _, engine = _decided(INV)
    revision = engine.revision
    assert engine.factor("der", "meter") == 1
    assert engine.revision > revision
    assert engine.diagnostics()["der"]["type"] == "meter"
    assert engine.diagnostics()["der"]["evidence_decision"] is None
    # Alias words of one kind keep the state.
    _, engine = _decided(INV, kind="pv")
    assert engine.factor("der", "solar") == engine.factor("der", "pv") == -1


def test_diagnostics_keys() -> None:
    _, engine = _decided(DOC, kind="meter")
    assert set(engine.diagnostics()["der"]) == {
        "type",
        "convention",
        "factor",
        "source",
        "status",
        "evidence_decision",
        "decided_at",
        "override",
        "override_contradicts_evidence",
        "agreeing",
        "contradicting",
        "observations",
        "recent",
        "last_evidence",
        "counters_seen",
        "readings_ignored",
    }
    assert engine.diagnostics()["der"]["decided_at"].startswith("2026-01-01T")


# --- property: simulated DERs never get the wrong convention ----------------------------------

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@st.composite
def traces(draw: st.DrawFn) -> tuple[Sim, list[Reading], int]:
    """A DER with a random true convention and a physically consistent, messy trace.

    Power changes between readings (so the sign may change mid-interval) and every stretch of
    one power is read at least three times, so no change of direction goes unseen. Readings
    come 1..60 s apart with occasional long gaps, W carries noise within the deadband, the
    counters are coarse and may trail the power by up to the lag margin; delivery duplicates,
    swaps neighbours and replays old readings. Returns the DER, the delivered readings and the
    index where a final stretch of clean, steady evidence starts.
    """
    kind = draw(st.sampled_from(sorted(COUNTERS)))
    wire = draw(st.sampled_from([DOC, INV]))
    sim = Sim(
        kind,
        wire,
        resolution=draw(st.sampled_from([0.001, 1.0, 10.0, 100.0])),
        lag_ms=draw(st.floats(0.0, LAG_MARGIN_MS)),
        base=draw(st.floats(0.0, 1e7)),
    )
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    # Sensor error: a steady offset plus jitter, together within the deadband.
    offset = draw(st.floats(-(DEADBAND_W - 1.0), DEADBAND_W - 1.0))
    jitter = draw(st.floats(0.0, DEADBAND_W - 1.0 - abs(offset)))
    directions = [-1.0] if kind == "pv" else [-1.0, 1.0]
    readings: list[Reading] = []
    for _ in range(draw(st.integers(1, 25))):
        choice = rng.random()
        if choice < 0.2:
            power = 0.0
        elif choice < 0.35:
            power = rng.uniform(-40.0, 40.0)  # standby: counters may creep, W is within noise
        else:
            power = rng.choice(directions) * rng.uniform(60.0, 11_000.0)
        if kind == "ev_charger" and power == 0.0 and rng.random() < 0.5:
            sim.new_session(sim.now + 1.0)
        every = rng.choice([1.0, 5.0, 10.0, 30.0, 60.0])
        for index in range(rng.randint(3, 40)):
            step = every * rng.uniform(0.5, 1.5)
            if rng.random() < 0.02:
                step = MAX_GAP_MS / 1000.0 * rng.uniform(1.0, 20.0)
            if index == 0:
                sim.set_power(sim.now + step * 1000.0 * rng.uniform(0.05, 0.95), power)
            sim.now += step * 1000.0
            readings.append(sim.reading(sim.now, offset + rng.uniform(-jitter, jitter)))
    # Delivery: duplicates, swapped neighbours (the later one first), late replays.
    delivered: list[Reading] = []
    index = 0
    while index < len(readings):
        roll = rng.random()
        if roll < 0.05 and index + 1 < len(readings):
            delivered += [readings[index + 1], readings[index]]
            index += 2
            continue
        delivered.append(readings[index])
        if roll < 0.1:
            delivered.append(readings[index])
        elif roll < 0.15:
            delivered.append(readings[rng.randrange(0, index + 1)])
        index += 1
    clean_from = len(delivered)
    # Clean evidence: 40 minutes of steady power, read every 5 s.
    power = rng.choice(directions) * rng.uniform(1500.0, 11_000.0)
    delivered += sim.run(power, 2400)
    return sim, delivered, clean_from


@PROPERTY
@given(trace=traces())
def test_property_never_the_wrong_convention(trace: tuple[Sim, list[Reading], int]) -> None:
    sim, readings, clean_from = trace
    wrong = str(INV if sim.wire is DOC else DOC)
    engine = SignEngine()
    for index, (timestamp, power, counters) in enumerate(readings):
        event = engine.observe("der", sim.kind, timestamp, power, counters)
        assert event is None or event.convention is sim.wire
        assert engine.factor("der", sim.kind) in (1, sim.wire.factor)
        if index == clean_from - 1 or index % 50 == 0:
            assert observations(engine)[wrong] == 0
    assert observations(engine)[wrong] == 0
    assert decision(engine) == sim.wire
    assert engine.factor("der", sim.kind) == sim.wire.factor
