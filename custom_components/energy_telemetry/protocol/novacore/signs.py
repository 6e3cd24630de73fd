"""Power sign by evidence: each DER proves which sign convention its wire uses.

A DER's energy counters are named by direction, so they show which way its energy really flowed;
the engine compares them with the power's sign and, once the evidence is clear, decides the DER's
wire factor (+1 as Sourceful documents it, -1 inverted). Until then, and for a DER without
counters, the documented convention applies; a user's fixed choice wins over the evidence. The
rules (observations, deadband, deciding, overturning, storage) are in docs/signs.md.

This module does not depend on Home Assistant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
import logging
import math
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

DECIDE_AFTER: Final = 3
"""Consecutive agreeing observations that decide a convention (the last ones kept)."""
DECIDE_SHARE: Final = 0.75
"""Share of the kept observations that must agree with a first decision."""
RECENT_OBSERVATIONS: Final = 12
"""How many of the most recent observations are kept per DER."""
OVERTURN_AFTER: Final = 10
"""Contradicting observations among the kept ones (the last DECIDE_AFTER included) that overturn."""
OBSERVATION_SPACING_MS: Final = 60_000.0
"""At most one observation per DER within this time (wire time)."""
DEADBAND_W: Final = 50.0
"""Power this close to zero has no sign (standby draw, sensor offset, noise)."""
DEADBAND_FRACTION: Final = 0.02
"""The deadband grows to this share of the largest power the DER has shown (sensor error scales)..."""
DEADBAND_MAX_W: Final = 250.0
"""... up to this, so one absurd reading cannot blind the engine."""
MAX_PLAUSIBLE_W: Final = 1_000_000.0
"""Power beyond this is a glitch, not a home DER: it counts as missing."""
MAX_GAP_MS: Final = 180_000.0
"""Readings further apart than this do not join one run (a sign may have changed unseen)."""
LAG_MARGIN_MS: Final = 30_000.0
"""The power's sign must have held this long before a counter's previous step (counter lag)."""
ENERGY_SHARE_MIN: Final = 0.5
"""The power's energy over a step's span must be at least this share of the step."""
COUNTER_EPSILON_WH: Final = 0.01
"""Counter changes smaller than this are float noise, not movement."""
CLOCK_JUMP_MS: Final = 600_000.0
"""A reading this much older than the last one means the clock jumped: start afresh."""
STORAGE_VERSION: Final = 1
MAX_DERS: Final = 500
"""DERs whose evidence is kept (and stored): beyond, the one quiet the longest is forgotten."""

_MS_PER_HOUR_TWICE: Final = 7_200_000.0  # trapezoid: (p0 + p1) / 2 * dt_ms / 3_600_000
_RECENT_MASK: Final = (1 << RECENT_OBSERVATIONS) - 1
_TAIL_MASK: Final = (1 << DECIDE_AFTER) - 1
_MAX_STORED_COUNT: Final = 10**12
_UP: Final = 1  # counter bit: energy in the direction the documented wire shows positive
_DOWN: Final = 2  # ... negative
_BOTH: Final = _UP | _DOWN


class Convention(StrEnum):
    """How the wire's power sign relates to Sourceful's documentation."""

    DOCUMENTED = "documented"
    INVERTED = "inverted"

    @property
    def factor(self) -> int:
        """Multiply the wire's power by this to get the documented convention."""
        return 1 if self is Convention.DOCUMENTED else -1


class Override(StrEnum):
    """The user's choice per DER type."""

    AUTOMATIC = "automatic"
    DOCUMENTED = "documented"
    INVERTED = "inverted"


class Status(StrEnum):
    """What the evidence says so far."""

    ASSUMED = "assumed"
    """Not enough evidence yet: the documented convention applies."""
    DECIDED = "decided"
    """The DER's counters decided the convention."""
    NO_EVIDENCE = "no_evidence_available"
    """The DER type has no counters: the documented convention applies."""


class Source(StrEnum):
    """Where the applied convention comes from."""

    DOCUMENTED = "documented"
    EVIDENCE = "evidence"
    USER = "user"


DEFAULT_KINDS: Final[Mapping[str, str]] = {
    "pv": "pv",
    "solar": "pv",
    "battery": "battery",
    "meter": "meter",
    "ev_charger": "ev_charger",
    "v2x_charger": "ev_charger",
    "ev_port": "ev_charger",
    "charger": "ev_charger",
    "inverter": "inverter",
}
"""Wire type words -> the kinds below; other words are kinds of their own, without counters."""

COUNTERS: Final[Mapping[str, tuple[tuple[str, int, bool], ...]]] = {
    # (field, sign of the documented W while this counter grows, restarts per session)
    "battery": (("total_charge_Wh", 1, False), ("total_discharge_Wh", -1, False)),
    "meter": (("total_import_Wh", 1, False), ("total_export_Wh", -1, False)),
    "pv": (("total_generation_Wh", -1, False),),
    "ev_charger": (
        ("total_charge_Wh", 1, False),
        ("total_discharge_Wh", -1, False),
        ("session_charge_Wh", 1, True),
        ("session_discharge_Wh", -1, True),
    ),
}
"""The counters that prove each kind's sign."""

_ACTIVITY: Final[Mapping[str, tuple[str, int]]] = {
    # what the documented W shows, for log messages: (activity, its documented sign)
    "battery": ("charging", 1),
    "meter": ("importing", 1),
    "pv": ("producing", -1),
    "ev_charger": ("charging the vehicle", 1),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SignDecision:
    """A DER's convention was decided (log at info) or re-decided (log as a warning)."""

    der: str
    der_type: str
    """The kind (`pv`, `battery`, `meter`, `ev_charger`)."""
    convention: Convention
    previous: Convention | None
    """The decision this one overturns; None for a first decision."""
    agreeing: int
    """Kept observations that agree with the new decision."""
    contradicting: int
    timestamp: float
    """Wire time (ms) of the deciding observation."""
    override: Convention | None
    """The user's fixed choice for this DER type, which still applies; None when automatic."""

    @property
    def factor(self) -> int:
        """The factor that applies from now on (the user's choice wins)."""
        return (self.override or self.convention).factor

    @property
    def level(self) -> int:
        """The logging level for this event."""
        return logging.INFO if self.previous is None else logging.WARNING

    @property
    def message(self) -> str:
        """A plain sentence for the log."""
        kept = self.agreeing + self.contradicting
        wire = _describe(self.der_type, self.convention)
        if self.previous is None:
            text = (
                f"Power sign of {self.der_type} {self.der!r} decided from its energy counters: "
                f"{wire} ({self.agreeing} of the last {kept} observations agree)"
            )
        else:
            text = (
                f"Power sign of {self.der_type} {self.der!r} changed: {wire} "
                f"({self.agreeing} of the last {kept} observations of its energy counters "
                f"contradict the earlier decision '{self.previous}', e.g. after a firmware update)"
            )
        if self.override is not None:
            text += f"; the user setting '{self.override}' still applies"
        return text


def _describe(kind: str, convention: Convention) -> str:
    word, sign = _ACTIVITY.get(kind, ("running", 1))
    shown = "positive" if sign * convention.factor > 0 else "negative"
    relation = (
        "as Sourceful documents"
        if convention is Convention.DOCUMENTED
        else "the opposite of Sourceful's documentation"
    )
    return f"the wire sends W {shown} while {word}, {relation}"


class _Counter:
    """One counter of one DER: its last value and the span its next step can cover."""

    __slots__ = (
        "anchor_energy",
        "anchor_ts",
        "bit",
        "name",
        "seen_energy",
        "seen_ts",
        "session",
        "value",
    )

    def __init__(self, name: str, sign: int, session: bool) -> None:
        self.name = name
        self.bit = _UP if sign > 0 else _DOWN
        self.session = session
        self.value: float | None = None
        self.seen_ts = 0.0
        """Time of the last reading that carried this counter."""
        self.seen_energy = 0.0
        """The run's power energy at that reading."""
        self.anchor_ts: float | None = None
        """Time of the reading before this counter's previous step; None when unknown."""
        self.anchor_energy = 0.0


class _DerState:
    """Everything the engine knows about one DER."""

    __slots__ = (
        "counters",
        "deadband",
        "decided_at",
        "decision",
        "documented",
        "factor",
        "ignored",
        "inverted",
        "kind",
        "last_evidence",
        "last_magnitude",
        "last_ts",
        "override",
        "peak",
        "recent",
        "recent_count",
        "run_dir",
        "run_energy",
        "run_sign",
        "run_start",
        "wire_type",
    )

    def __init__(self, kind: str, wire_type: str | None, override: Convention | None) -> None:
        self.kind = kind
        self.wire_type = wire_type
        self.counters = tuple(_Counter(*spec) for spec in COUNTERS.get(kind, ()))
        self.override = override
        self.decision: Convention | None = None
        self.decided_at: float | None = None
        self.documented = 0
        self.inverted = 0
        self.recent = 0
        """Kept observations as bits, newest lowest: 1 = inverted."""
        self.recent_count = 0
        self.last_evidence: float | None = None
        self.ignored = 0
        self.factor = 1
        self.peak = 0.0
        self.deadband = DEADBAND_W
        self.last_ts: float | None = None
        self.last_magnitude = 0.0
        self.run_sign = 0
        self.run_start = 0.0
        self.run_dir = 0
        self.run_energy = 0.0
        self.refresh()

    def refresh(self) -> None:
        """Recompute the factor that applies."""
        self.factor = (self.override or self.decision or Convention.DOCUMENTED).factor

    def status(self) -> Status:
        """Return what the evidence says so far."""
        if self.decision is not None:
            return Status.DECIDED
        return Status.ASSUMED if self.counters else Status.NO_EVIDENCE

    def forget_readings(self) -> None:
        """Drop what the last readings showed (not the decision or the counts)."""
        self.last_ts = None
        self.last_magnitude = 0.0
        self.run_sign = 0
        self.run_dir = 0
        self.run_energy = 0.0
        for channel in self.counters:
            channel.value = None
            channel.anchor_ts = None

    def adopt(self, other: _DerState) -> None:
        """Take over what another state holds of the stored kind (decision, counts)."""
        self.decision = other.decision
        self.decided_at = other.decided_at
        self.documented = other.documented
        self.inverted = other.inverted
        self.recent = other.recent
        self.recent_count = other.recent_count
        self.last_evidence = other.last_evidence
        self.refresh()


class SignEngine:
    """Decides per DER whether the wire's power sign is documented or inverted.

    Call `observe` for every reading, `factor` to convert the reading's power, log the returned
    `SignDecision` at its `level`, and save `as_dict()` when `revision` changed.
    """

    def __init__(
        self,
        *,
        kinds: Mapping[str, str] | None = None,
        overrides: Mapping[str, str] | None = None,
        stored: object = None,
    ) -> None:
        """Start with a type-word mapping, the user's overrides and the stored state, if any."""
        self._kinds: Mapping[str, str] = DEFAULT_KINDS if kinds is None else kinds
        self._overrides: dict[str, Convention] = {}
        self._ders: dict[str, _DerState] = {}
        self.revision = 0
        """Grows whenever the state `as_dict` returns changed."""
        if overrides:
            self.set_overrides(overrides)
        if stored is not None:
            self.load(stored)

    # --- configuration ---------------------------------------------------------------------

    def kind(self, der_type: str) -> str:
        """Map a wire type word onto a kind."""
        kind = self._kinds.get(der_type)
        if kind is None:
            lowered = der_type.strip().lower()
            kind = self._kinds.get(lowered, lowered)
        return kind

    def set_overrides(self, overrides: Mapping[str, str]) -> None:
        """Replace the user's choices: DER type -> `automatic`, `documented` or `inverted`."""
        fixed: dict[str, Convention] = {}
        for der_type, value in overrides.items():
            try:
                choice = Override(value)
            except ValueError:
                _LOGGER.debug("Ignored sign override %r for %r", value, der_type)
                continue
            if choice is not Override.AUTOMATIC:
                fixed[self.kind(der_type)] = Convention(choice.value)
        self._overrides = fixed
        for state in self._ders.values():
            state.override = fixed.get(state.kind)
            state.refresh()

    def forget(self, der: str) -> None:
        """Drop what is known of a DER that left the site (its evidence is not stored any more)."""
        if self._ders.pop(der, None) is not None:
            self.revision += 1

    # --- hot path --------------------------------------------------------------------------

    def factor(self, der: str, der_type: str) -> int:
        """Return +1 or -1: multiply the wire's power (and currents) by it to get the documented sign."""
        state = self._ders.get(der)
        if state is not None and state.wire_type == der_type:
            return state.factor
        return self._state(der, der_type).factor

    def status(self, der: str, der_type: str) -> Status:
        """Return what the evidence says so far (e.g. to hold back a power that is only assumed)."""
        state = self._ders.get(der)
        if state is None or state.wire_type != der_type:
            state = self._state(der, der_type)
        return state.status()

    def observe(
        self,
        der: str,
        der_type: str,
        timestamp: float | None,
        power: float | None,
        counters: Mapping[str, float],
    ) -> SignDecision | None:
        """Take one reading of one DER; return a decision when this reading made or changed one.

        `der` is a stable key of the DER, `der_type` its wire type word, `timestamp` the reading's
        time in ms (None when it has none), `power` the raw wire `W` (None when absent) and
        `counters` any mapping holding the reading's counters (the whole values dict will do).
        """
        state = self._ders.get(der)
        if state is None or state.wire_type != der_type:
            state = self._state(der, der_type)
        channels = state.counters
        if not channels:
            return None
        last_ts = state.last_ts
        if timestamp is None or not math.isfinite(timestamp):
            state.ignored += 1
            return None
        if last_ts is not None and timestamp <= last_ts:
            if last_ts - timestamp <= CLOCK_JUMP_MS:
                state.ignored += 1
                return None
            # The clock jumped back (or the last timestamp was a glitch far in the future):
            # start afresh from this reading instead of ignoring the DER from now on.
            state.forget_readings()
            last_ts = None

        sign = 0
        magnitude = 0.0
        if power is not None:
            magnitude = abs(power)
            if magnitude <= MAX_PLAUSIBLE_W:  # also False for NaN
                if magnitude > state.peak:
                    state.peak = magnitude
                    state.deadband = min(
                        DEADBAND_MAX_W, max(DEADBAND_W, DEADBAND_FRACTION * magnitude)
                    )
                if magnitude >= state.deadband:
                    sign = 1 if power > 0 else -1
            if not sign:
                magnitude = 0.0

        moved = 0
        backwards = False
        present = False
        for channel in channels:
            value = counters.get(channel.name)
            if value is None:
                continue
            present = True
            previous = channel.value
            if previous is None or not math.isfinite(value):
                continue
            if value > previous + COUNTER_EPSILON_WH:
                moved |= channel.bit
            elif value < previous - COUNTER_EPSILON_WH and not channel.session:
                backwards = True

        if (
            not sign
            or sign != state.run_sign
            or last_ts is None
            or timestamp - last_ts > MAX_GAP_MS
            or backwards
            or moved == _BOTH
            or (moved and state.run_dir and moved != state.run_dir)
        ):
            # A new run starts here; what happened before this reading is not part of it.
            state.run_sign = sign
            state.run_start = timestamp
            state.run_energy = 0.0
            state.run_dir = 0
            in_run = False
        else:
            state.run_energy += (
                (state.last_magnitude + magnitude) * (timestamp - last_ts) / _MS_PER_HOUR_TWICE
            )
            if moved:
                state.run_dir = moved
            in_run = moved != 0
        state.last_magnitude = magnitude
        state.last_ts = timestamp
        if not present:
            return None

        evidence = False
        run_start = state.run_start
        run_energy = state.run_energy
        for channel in channels:
            value = counters.get(channel.name)
            if value is None or not math.isfinite(value):
                continue
            previous = channel.value
            if previous is None:
                channel.value = value
            elif value > previous + COUNTER_EPSILON_WH:
                anchor = channel.anchor_ts
                if (
                    in_run
                    and anchor is not None
                    and anchor - LAG_MARGIN_MS >= run_start
                    and run_energy - channel.anchor_energy >= ENERGY_SHARE_MIN * (value - previous)
                ):
                    evidence = True
                channel.anchor_ts = channel.seen_ts
                channel.anchor_energy = channel.seen_energy
                channel.value = value
            elif value < previous - COUNTER_EPSILON_WH:
                channel.value = value
                channel.anchor_ts = None
            channel.seen_ts = timestamp
            channel.seen_energy = run_energy

        if not evidence:
            return None
        last_evidence = state.last_evidence
        if last_evidence is not None and 0.0 <= timestamp - last_evidence < OBSERVATION_SPACING_MS:
            return None
        return self._record(der, state, (sign > 0) == (moved == _UP), timestamp)

    # --- deciding --------------------------------------------------------------------------

    def _record(
        self, der: str, state: _DerState, documented: bool, timestamp: float
    ) -> SignDecision | None:
        """Count one observation and decide or re-decide when the evidence is there."""
        state.recent = ((state.recent << 1) | (0 if documented else 1)) & _RECENT_MASK
        state.recent_count = min(state.recent_count + 1, RECENT_OBSERVATIONS)
        if documented:
            state.documented += 1
        else:
            state.inverted += 1
        state.last_evidence = timestamp
        self.revision += 1

        count = state.recent_count
        inverted = state.recent.bit_count()
        tail = state.recent & _TAIL_MASK
        previous = state.decision
        if previous is None:
            if count < DECIDE_AFTER or tail not in (0, _TAIL_MASK):
                return None
            convention = Convention.INVERTED if tail else Convention.DOCUMENTED
            agreeing = inverted if tail else count - inverted
            if agreeing < DECIDE_SHARE * count:
                return None
        else:
            convention = (
                Convention.DOCUMENTED if previous is Convention.INVERTED else Convention.INVERTED
            )
            agreeing = inverted if convention is Convention.INVERTED else count - inverted
            if agreeing < OVERTURN_AFTER or tail != (
                _TAIL_MASK if convention is Convention.INVERTED else 0
            ):
                return None
        state.decision = convention
        state.decided_at = timestamp
        state.refresh()
        return SignDecision(
            der=der,
            der_type=state.kind,
            convention=convention,
            previous=previous,
            agreeing=agreeing,
            contradicting=count - agreeing,
            timestamp=timestamp,
            override=state.override,
        )

    def _state(self, der: str, der_type: str) -> _DerState:
        """Return the DER's state for this type word, made anew if the DER changed kind."""
        kind = self.kind(der_type)
        old = self._ders.get(der)
        if old is not None and old.kind == kind:
            old.wire_type = der_type
            return old
        state = _DerState(kind, der_type, self._overrides.get(kind))
        if old is None and len(self._ders) >= MAX_DERS:
            self._forget_quietest()
        if old is not None:
            if old.wire_type is None and not old.kind:  # restored without its type
                state.adopt(old)
            else:
                _LOGGER.debug(
                    "DER %r changed type from %r to %r: its sign evidence starts afresh",
                    der,
                    old.kind,
                    kind,
                )
            self.revision += 1
        self._ders[der] = state
        return state

    def _forget_quietest(self) -> None:
        """Make room: forget the DER whose last evidence (or reading) is the oldest."""
        quietest = min(self._ders, key=lambda der: _last_heard(self._ders[der]), default=None)
        if quietest is not None:
            del self._ders[quietest]
            self.revision += 1

    # --- storage ---------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Return the state to store: JSON-able, small."""
        return {
            "version": STORAGE_VERSION,
            "ders": {
                der: {
                    "type": state.kind,
                    "decision": None if state.decision is None else str(state.decision),
                    "decided_at": state.decided_at,
                    "documented": state.documented,
                    "inverted": state.inverted,
                    "recent": state.recent,
                    "recent_count": state.recent_count,
                    "last_evidence": state.last_evidence,
                }
                for der, state in self._ders.items()
                if state.counters or state.decision is not None
            },
        }

    def load(self, data: object) -> None:
        """Restore what `as_dict` returned (before the first reading); skip anything unusable."""
        if not isinstance(data, Mapping):
            if data is not None:
                _LOGGER.debug("Ignored stored sign evidence of type %s", type(data).__name__)
            return
        ders = data.get("ders", data if "version" not in data else None)
        if not isinstance(ders, Mapping):
            _LOGGER.debug("Ignored stored sign evidence without DERs")
            return
        for der, stored in ders.items():
            if not isinstance(der, str):
                continue
            entry = {"decision": stored} if isinstance(stored, str) else stored  # a bare decision
            if not isinstance(entry, Mapping):
                _LOGGER.debug("Ignored stored sign evidence for %r", der)
                continue
            kind = entry.get("type")
            kind = self.kind(kind) if isinstance(kind, str) else ""
            state = _DerState(kind, None, self._overrides.get(kind))
            decision = entry.get("decision")
            if decision in (Convention.DOCUMENTED, Convention.INVERTED):
                state.decision = Convention(decision)
            state.decided_at = _stored_time(entry.get("decided_at"))
            state.documented = _stored_count(entry.get("documented"))
            state.inverted = _stored_count(entry.get("inverted"))
            recent_count = min(_stored_count(entry.get("recent_count")), RECENT_OBSERVATIONS)
            recent = entry.get("recent")
            if isinstance(recent, int) and not isinstance(recent, bool) and recent >= 0:
                state.recent = recent & ((1 << recent_count) - 1)
            state.recent_count = recent_count
            state.last_evidence = _stored_time(entry.get("last_evidence"))
            state.refresh()
            self._ders[der] = state
        while len(self._ders) > MAX_DERS:
            self._forget_quietest()

    # --- diagnostics -----------------------------------------------------------------------

    def diagnostics(self) -> dict[str, dict[str, Any]]:
        """Return, per DER, what applies and why."""
        result: dict[str, dict[str, Any]] = {}
        for der, state in self._ders.items():
            applied = state.override or state.decision or Convention.DOCUMENTED
            if state.override is not None:
                source = Source.USER
            elif state.decision is not None:
                source = Source.EVIDENCE
            else:
                source = Source.DOCUMENTED
            status = state.status()
            agreeing = state.documented if applied is Convention.DOCUMENTED else state.inverted
            result[der] = {
                "type": state.kind,
                "convention": str(applied),
                "factor": applied.factor,
                "source": str(source),
                "status": str(status),
                "evidence_decision": None if state.decision is None else str(state.decision),
                "decided_at": _iso(state.decided_at),
                "override": str(Override.AUTOMATIC if state.override is None else state.override),
                "override_contradicts_evidence": state.override is not None
                and state.decision is not None
                and state.override is not state.decision,
                "agreeing": agreeing,
                "contradicting": state.documented + state.inverted - agreeing,
                "observations": {"documented": state.documented, "inverted": state.inverted},
                "recent": "".join(
                    "I" if state.recent >> index & 1 else "D"
                    for index in range(state.recent_count - 1, -1, -1)
                ),
                "last_evidence": _iso(state.last_evidence),
                "counters_seen": sorted(c.name for c in state.counters if c.value is not None),
                "readings_ignored": state.ignored,
            }
        return result


def _last_heard(state: _DerState) -> float:
    """Return when a DER last showed evidence or a reading (wire time, ms; 0: never)."""
    return max(state.last_ts or 0.0, state.last_evidence or 0.0)


def _stored_count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_STORED_COUNT:
        return value
    return 0


def _stored_time(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp / 1000.0, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None
