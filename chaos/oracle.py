"""What Home Assistant must show after a stream of inputs: the fuzz campaign's oracle.

Written from the documented rules (README: "Entities and sign conventions", "Signs", "Wire
variants", "How a reading finds its DER", "Totals never go backwards"; the services' own
documentation in ../shared/docs), never by calling the integration's code, so that a bug in the
integration cannot hide in its own oracle. Pure Python, no Home Assistant.

The rules, as this oracle applies them:

- Novacore. An SSE event's data (bytes that are not UTF-8 read as U+FFFD) is JSON: one reading,
  a list of them, or one inside an envelope (`data`, `telemetry`, `reading`, `payload`). A reading
  needs a type word (`pv`/`solar`, `battery`, `meter`, `inverter`, `v2x_charger`/`ev_port`/
  `charger`; case and surrounding blanks do not matter) and at least one usable value: a JSON
  number (not a boolean) finite and below 1e15 in magnitude, or one of the EV charger's documented
  texts and booleans. Values are read from the reading, then its `spec`, then its `state` (later
  wins); `mppts: [{V, A, W}]` are the MPPT fields, a limit array counts by its element of largest
  magnitude. Anything else is ignored. `timestamp`: epoch ms (below 1e11: seconds) or RFC 3339 with
  a zone; any other is no timestamp. A reading timestamped more than a day ahead of the clock is
  not believed: it is dropped (a value in the wrong hour is worse than none). A reading finds its
  DER by DER id; else by `device_sn` (the device with that `hardware_id`, its one DER of that type);
  else the only listed DER of its type; and is read as that DER's type. A reading not newer than
  its DER's last applied one is dropped; without a timestamp it is applied.
- A DER silent for 60 seconds (or five of its usual intervals) may go unavailable; one that
  reported within the last minute may not.
- Entities: the README's tables, the documented sign convention of each DER type, the wire factor
  (+1, or -1 with the battery's and EV charger's limits trading places) applied before it. A DER's
  factor is +1 until its counters decide; the decision must be the wire's truth and it stays.
- Totals (every `total…_Wh` of the tables, Ainsite register 2): applied when not lower; a drop to
  half or more of the last value is a glitch (dropped); a larger drop is a reset only when the next
  newer reading confirms it (not below the first low one).
- Ainsite: payload versions 1 and 2 of developer.ainsite.io; a reading needs its register id (an
  integer, or its text), a finite value below 1e15, timestamps between 2000 and a day ahead of the
  clock (end not before start); duplicates and older readings of a register change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
import math
import re
from typing import Any, Final

MAX_ABS: Final = 1e15
DAY_MS: Final = 86_400_000.0
STALE_S: Final = 55.0
MAX_NAME: Final = 255
"""Longer field names, type words and identifiers are not used (docs/how-it-works.md)."""
HOME_KEYS: Final = ("home_power", "home_energy")
"""The site's own entities: the house's consumption (docs/how-it-works.md)."""
HOME_COUNTERS: Final = {
    "meter": {"energy_imported": 1, "energy_exported": -1},
    "pv": {"energy_produced": 1},
    "battery": {"energy_discharged": 1, "energy_charged": -1},
}
"""home = grid import - grid export + PV production + battery discharge - battery charge."""
"""A DER silent this long (the rule's 60 s, less a margin for the batch's time) may be stale."""
MAX_TEXT: Final = 255
MAX_TIMESTAMP_TEXT: Final = 64

_ALIASES: Final = {
    "pv": "pv",
    "solar": "pv",
    "battery": "battery",
    "meter": "meter",
    "inverter": "inverter",
    "v2x_charger": "ev_charger",
    "ev_port": "ev_charger",
    "charger": "ev_charger",
    "ev_charger": "ev_charger",
    "ev": "ev_charger",
}
_ENVELOPES: Final = ("data", "telemetry", "reading", "payload")
_IDS: Final = ("der_id", "derId", "der")
_STRUCTURAL: Final = frozenset(
    {"type", "der_type", "make", "timestamp", "device_sn", "event", *_IDS}
)
_TEXTS: Final[dict[str, type]] = {
    "status": str,
    "protocol": str,
    "control_mode": str,
    "plug_connected": bool,
}
"""The EV charger's documented text and boolean fields."""


def canonical(value: float) -> float:
    """A number as compared: 12 significant digits (Home Assistant may convert units)."""
    return float(f"{value:.12g}")


def usable(value: Any) -> float | None:
    """Return a usable number: a JSON number, not a boolean, finite, below 1e15 in magnitude."""
    if type(value) not in (int, float):
        return None
    if not -MAX_ABS < value < MAX_ABS:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _as_text(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME:
        return value
    if type(value) is int:
        return str(value)
    return None


def _iso_ms(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000.0


def novacore_timestamp(value: Any) -> float | None:
    """Epoch ms of a Novacore `timestamp` (ms, seconds below 1e11, or RFC 3339 with a zone)."""
    if type(value) in (int, float):
        if not -MAX_ABS < value < MAX_ABS or not math.isfinite(value):
            return None
        return float(value) * 1000.0 if 0 < value < 1e11 else float(value)
    if isinstance(value, str) and len(value) <= MAX_TIMESTAMP_TEXT:
        return _iso_ms(value)
    return None


# --- the entity contract (README, "Entities and sign conventions") ------------------------------


def _same(value: float) -> float:
    return value


def _neg(value: float) -> float:
    return 0.0 - value


def _pct(value: float) -> float:
    return value * 100.0


def _kilo(value: float) -> float:
    return value / 1000.0


@dataclass(frozen=True, slots=True)
class Spec:
    """What one documented field becomes."""

    key: str
    convert: Callable[[float], float] = _same
    signed: bool = False
    """Follows the DER's power: the wire factor applies."""
    total: bool = False
    watt_hours: bool = False
    """Native unit Wh (Home Assistant may show kWh)."""


def _total(key: str) -> Spec:
    return Spec(key, total=True, watt_hours=True)


def _stored(key: str) -> Spec:
    return Spec(key, watt_hours=True)


STORAGE: Final[dict[str, Spec]] = {
    "total_charge_Wh": _total("energy_charged"),
    "total_discharge_Wh": _total("energy_discharged"),
    "upper_limit_W": Spec("charge_limit", signed=True),
    "lower_limit_W": Spec("discharge_limit", _neg, signed=True),
    "rated_power_W": Spec("rated_power"),
}
"""What a battery and an EV charger (the car behind it) share: energy in and out, the limits."""
CONTRACT: Final[dict[str, dict[str, Spec]]] = {
    "pv": {
        "W": Spec("power", _neg, signed=True),
        "total_generation_Wh": _total("energy_produced"),
        "heatsink_C": Spec("heatsink_temperature"),
        "lower_limit_W": Spec("curtailment_limit", _neg, signed=True),
        "rated_power_W": Spec("rated_power"),
        "installed_power_W": Spec("installed_power"),
    },
    "battery": {
        "W": Spec("power", _neg, signed=True),
        "SoC_nom_fract": Spec("state_of_charge", _pct),
        "V": Spec("voltage"),
        "A": Spec("current", _neg, signed=True),
        **STORAGE,
        "temperature_C": Spec("temperature"),
        "heatsink_C": Spec("heatsink_temperature"),
        "available_charge_Wh": _stored("available_charge_energy"),
        "available_discharge_Wh": _stored("available_discharge_energy"),
        "SoH_fract": Spec("state_of_health", _pct),
        "capacity_kWh": Spec("capacity"),
        "capacity_Wh": Spec("capacity", _kilo),
        "min_soc_fract": Spec("min_state_of_charge", _pct),
        "max_soc_fract": Spec("max_state_of_charge", _pct),
    },
    "meter": {
        "W": Spec("power", signed=True),
        "Hz": Spec("frequency"),
        "total_import_Wh": _total("energy_imported"),
        "total_export_Wh": _total("energy_exported"),
    },
    "inverter": {
        "W": Spec("power", _neg, signed=True),
        "VA": Spec("apparent_power"),
        "VAR": Spec("reactive_power"),
        "Hz": Spec("frequency"),
        "dc_W": Spec("dc_power", _neg, signed=True),
        "dc_V": Spec("dc_voltage"),
        "dc_A": Spec("dc_current", _neg, signed=True),
        "heatsink_C": Spec("heatsink_temperature"),
        "rated_power_W": Spec("rated_power"),
        "rated_power_VA": Spec("rated_apparent_power"),
        "phases": Spec("phases"),
    },
    "ev_charger": {
        "W": Spec("power", signed=True),
        "A": Spec("current", signed=True),
        "V": Spec("voltage"),
        "Hz": Spec("frequency"),
        "dc_W": Spec("dc_power", signed=True),
        "dc_V": Spec("dc_voltage"),
        "dc_A": Spec("dc_current", signed=True),
        "vehicle_soc_fract": Spec("vehicle_state_of_charge", _pct),
        "ev_target_energy_req_Wh": _stored("target_energy_request"),
        "ev_max_energy_req_Wh": _stored("maximum_energy_request"),
        "ev_min_energy_req_Wh": _stored("minimum_energy_request"),
        "session_charge_Wh": _total("session_energy_charged"),
        "session_discharge_Wh": _total("session_energy_discharged"),
        **STORAGE,
        "max_charge_power_W": Spec("max_charge_power"),
        "max_discharge_power_W": Spec("max_discharge_power"),
        "capacity_Wh": Spec("vehicle_capacity", _kilo),
        "phases": Spec("phases"),
    },
}
SWAPPED: Final = {
    "battery": {"upper_limit_W": "lower_limit_W", "lower_limit_W": "upper_limit_W"},
    "ev_charger": {"upper_limit_W": "lower_limit_W", "lower_limit_W": "upper_limit_W"},
}
"""Under an inverted wire these fields trade places (the charge limit is then the lower one)."""
LIMIT_KEYS: Final = frozenset({"charge_limit", "discharge_limit"})
_PHASES_NEGATIVE: Final = {"meter": False, "inverter": True, "ev_charger": False}
_NUMBERED: Final = re.compile(r"^(mppt|L)(\d{1,2})_(V|A|W)$")
STATUS: Final = {
    **{word: word for word in ("charging", "discharging", "sleeping", "error")},
    **{word: word for word in ("suspended", "available", "preparing", "idle")},
    "unavailable": "not_ready",
}
CONTROL_MODES: Final = frozenset({"scheduled", "dynamic"})
TEXT_KEYS: Final = {
    "status": "status",
    "protocol": "protocol",
    "control_mode": "control_mode",
    "plug_connected": "plug_connected",
}


def spec_of(der_type: str, name: str) -> Spec | None:
    """The documented meaning of a field of a DER type; None: a disabled generic sensor."""
    spec = CONTRACT.get(der_type, {}).get(name)
    if spec is not None:
        return spec
    match = _NUMBERED.match(name)
    if match is None:
        return None
    prefix, number, unit = match.groups()
    if prefix == "mppt" and der_type == "pv":
        base, negative = f"mppt{number}", True
    elif prefix == "L" and der_type in _PHASES_NEGATIVE:
        base, negative = f"l{number}", _PHASES_NEGATIVE[der_type]
    else:
        return None
    if unit == "V":
        return Spec(f"{base}_voltage")
    what = "current" if unit == "A" else "power"
    return Spec(f"{base}_{what}", _neg if negative else _same, signed=True)


def text_state(field_name: str, value: str | bool) -> str:
    """The state of an EV charger's text or boolean field."""
    if field_name == "plug_connected":
        return "on" if value else "off"
    assert isinstance(value, str)
    word = value.strip()
    if field_name == "status":
        return STATUS.get(word.lower(), "unknown")
    if field_name == "control_mode":
        return word.lower() if word.lower() in CONTROL_MODES else "unknown"
    return word or "unknown"


# --- totals ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Total:
    """A total as the README says it moves."""

    value: float | None = None
    timestamp: float | None = None
    candidate: tuple[float, float | None] | None = None
    resets: int = 0

    def accept(self, value: float, timestamp: float | None) -> bool:
        """Take one reading; return True when it is applied."""
        last = self.value
        if last is None:
            self.value, self.timestamp = value, timestamp
            return True
        if timestamp is not None and self.timestamp is not None and timestamp <= self.timestamp:
            return False
        if value >= last:
            self.value, self.timestamp, self.candidate = value, timestamp, None
            return True
        if value >= last / 2:
            return False  # a glitch
        candidate = self.candidate
        if (
            candidate is not None
            and value >= candidate[0]
            and (timestamp is None or candidate[1] is None or timestamp > candidate[1])
        ):
            self.value, self.timestamp, self.candidate = value, timestamp, None
            self.resets += 1
            return True
        self.candidate = (value, timestamp)
        return False


# --- Novacore -------------------------------------------------------------------------------


@dataclass(slots=True)
class NovacoreReading:
    """One reading of an event, as the documented rules read it."""

    der_type: str
    der_id: str | None
    device_sn: str | None
    make: str | None
    timestamp: float | None
    values: dict[str, float]
    texts: dict[str, str | bool]


def sse_text(data: bytes) -> str:
    """The data an SSE client hands on: UTF-8 (errors replaced), leading blanks of lines gone."""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(line.lstrip(" ") for line in text.split("\n"))


def _collect(
    source: dict[str, Any], der_type: str, values: dict[str, float], texts: dict[str, str | bool]
) -> None:
    is_ev = der_type == "ev_charger"
    for name, value in source.items():
        if name in _STRUCTURAL or value is None or len(name) > MAX_NAME:
            continue
        if is_ev and name in _TEXTS:
            if _TEXTS[name] is bool:
                if isinstance(value, bool):
                    texts[name] = value
                elif type(value) in (int, float) and value in (0, 1):
                    texts[name] = value == 1
            elif isinstance(value, str) and 0 < len(value) <= MAX_TEXT:
                texts[name] = value
            continue
        number = usable(value)
        if number is not None:
            values[name] = number
        elif name in ("mppts", "mppt") and isinstance(value, list):
            for index, entry in enumerate(value[:99]):
                if isinstance(entry, dict):
                    for unit in ("V", "A", "W"):
                        if (item := usable(entry.get(unit))) is not None:
                            values[f"mppt{index + 1}_{unit}"] = item
        elif name in ("upper_limit_W", "lower_limit_W") and isinstance(value, list):
            numbers = [usable(item) for item in value]
            if 0 < len(numbers) <= 8 and all(item is not None for item in numbers):
                values[name] = max((item for item in numbers if item is not None), key=abs)


def parse_novacore(data: bytes, now_ms: float) -> tuple[list[NovacoreReading], int]:
    """Return the readings of an event and how many of its items were rejected."""
    try:
        body = json.loads(sse_text(data))
    except (ValueError, RecursionError):
        return [], 1
    items = body if isinstance(body, list) else [body]
    readings: list[NovacoreReading] = []
    rejected = 0
    for item in items:
        reading = _parse_item(item)
        if reading is None or (
            reading.timestamp is not None and reading.timestamp > now_ms + DAY_MS
        ):
            rejected += 1
        else:
            readings.append(reading)
    return readings, rejected


def _parse_item(item: Any) -> NovacoreReading | None:
    if not isinstance(item, dict):
        return None
    for key in _ENVELOPES:
        inner = item.get(key)
        if isinstance(inner, dict):
            item = {**item, **inner}
            del item[key]
            break
    word = item.get("type")
    if not isinstance(word, str):
        word = item.get("der_type")
    if not isinstance(word, str) or not 0 < len(word) <= MAX_NAME:
        return None
    lowered = word.strip().lower()
    der_type = _ALIASES.get(lowered, lowered)
    spec = item.get("spec") if isinstance(item.get("spec"), dict) else None
    state = item.get("state") if isinstance(item.get("state"), dict) else None
    values: dict[str, float] = {}
    texts: dict[str, str | bool] = {}
    for source in (item, spec, state):
        if source is not None:
            _collect(source, der_type, values, texts)
    if not values and not texts:
        return None
    timestamp = item.get("timestamp")
    if timestamp is None and state is not None:
        timestamp = state.get("timestamp")
    make = item.get("make")
    if make is None and state is not None:
        make = state.get("make")
    return NovacoreReading(
        der_type,
        _first(item, state, _IDS),
        _first(item, state, ("device_sn",)),
        make if isinstance(make, str) and 0 < len(make) <= MAX_NAME else None,
        novacore_timestamp(timestamp),
        values,
        texts,
    )


def _first(item: dict[str, Any], state: dict[str, Any] | None, keys: Iterable[str]) -> str | None:
    for source in (item, state):
        if source is not None:
            for key in keys:
                if (text := _as_text(source.get(key))) is not None:
                    return text
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


type Shown = float | str
"""An expected state: a number (native unit) or a text state."""


@dataclass(slots=True)
class DerState:
    """What the oracle knows of one DER."""

    key: str
    der_type: str
    last_timestamp: float | None = None
    raw: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Last wire number of every documented non-total field, and when it came (a sequence)."""
    totals: dict[str, Total] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    applied: int = 0
    seen_at: float | None = None
    """Monotonic time of the last reading applied (not dropped as older)."""
    longest_silence: float = 0.0
    """The longest silence before a reading since the last check."""

    def silence(self, now: float) -> float:
        """Seconds since the DER last reported, or the longest silence since the last check."""
        current = 0.0 if self.seen_at is None else now - self.seen_at
        return max(current, self.longest_silence)


class NovacoreOracle:
    """One Novacore site: routes readings to DERs and keeps what each must show."""

    def __init__(self, site_id: str, devices: list[dict[str, Any]], truth: dict[str, int]) -> None:
        """`truth`: the wire factor of each listed DER id (-1 where the wire is inverted)."""
        self.site_id = site_id
        self.truth = truth
        self.ders: dict[str, DerState] = {}
        self._listed: dict[str, str] = {}
        self._by_type: dict[str, list[str]] = {}
        self._by_serial: dict[str, list[tuple[str, str]]] = {}
        for device in devices:
            ders = []
            for der in device.get("ders") or ():
                word = str(der["type"]).strip().lower()
                der_type = _ALIASES.get(word, word)
                self._listed[der["id"]] = der_type
                self._by_type.setdefault(der_type, []).append(der["id"])
                ders.append((der["id"], der_type))
            if device.get("hardware_id"):
                self._by_serial.setdefault(str(device["hardware_id"]), ders)
        self.decided: dict[str, bool] = {}
        """DER -> its counters have decided (sticky: a decision stays)."""
        self.accepted = 0
        self.rejected = 0
        self.stale = 0
        self._seq = 0
        self.produced: dict[tuple[str, str], set[Shown]] = {}
        """(DER, entity key) -> every state it may have shown since the last check."""
        self.home = "meter" in self._listed.values()
        """The site has a meter (listed or seen): it shows the house's consumption."""
        self.home_net = 0.0
        """The net growth of the house's counters since the house was shown."""
        self.home_energy = 0.0
        """The house's energy: the highest net growth at the end of an event (never down)."""
        self.home_steps = 0
        """Events that grew the house's energy: the integration rounds each step to a mWh."""

    def factor(self, der: str) -> int:
        """The wire factor the entities must use now: the truth once decided, else +1."""
        return self.truth.get(der, 1) if self.decided.get(der) else 1

    def _factors(self, der: str) -> set[int]:
        return {1, self.truth.get(der, 1)}

    def route(self, reading: NovacoreReading) -> str:
        """The DER a reading belongs to."""
        if reading.der_id is not None:
            return reading.der_id
        sn = reading.device_sn
        if sn is not None and (ders := self._by_serial.get(sn)) is not None:
            matching = [der for der, der_type in ders if der_type == reading.der_type]
            if len(matching) == 1:
                return matching[0]
            return f"{reading.der_type}_{_slug(sn)}"
        candidates = self._by_type.get(reading.der_type, [])
        if len(candidates) == 1:
            return candidates[0]
        if sn is not None:
            return f"{reading.der_type}_{_slug(sn)}"
        if reading.make:
            return f"{reading.der_type}_{_slug(reading.make)}"
        return reading.der_type

    def feed(self, data: bytes, now_ms: float, seen_at: float) -> None:
        """Take one event's data, which reached Home Assistant at monotonic `seen_at`."""
        readings, rejected = parse_novacore(data, now_ms)
        self.accepted += len(readings)
        self.rejected += rejected
        for reading in readings:
            self._apply(reading, seen_at)
        if self.home and readings:
            if self.home_net > self.home_energy:
                self.home_energy = self.home_net
                self.home_steps += 1
            self._produce("", "home_energy", round(self.home_energy, 3))
            for power in self.home_powers():
                self._produce("", "home_power", power)

    def home_terms(self) -> list[str]:
        """The DERs whose power and counters count for the house (listed or seen)."""
        types = {**self._listed, **{key: state.der_type for key, state in self.ders.items()}}
        return sorted(key for key, der_type in types.items() if der_type in HOME_COUNTERS)

    def home_powers(self, factors: dict[str, int] | None = None) -> set[float]:
        """The house's power under every wire factor its DERs may show now (none: missing)."""
        sums: set[float] = {0.0}
        for der in self.home_terms():
            state = self.ders.get(der)
            raw = None if state is None else state.raw.get("W")
            if raw is None:
                return set()
            options = {factors[der]} if factors is not None else self._factors(der)
            sums = {
                total + _signed_spec(state.der_type, "W", factor).convert(factor * raw[0])
                for total in sums
                for factor in options
            }
        return {round(total, 3) for total in sums}

    def home_tolerance(self) -> float:
        """Wh the house's energy may differ by: half a mWh of rounding per step."""
        return 0.0005 * self.home_steps + 1e-6

    def home_expected(self, now: float) -> dict[str, tuple[Shown | None, bool]]:
        """The house's entity key -> (state, native unit is Wh); None: unavailable or a sum."""
        powers = self.home_powers({der: self.factor(der) for der in self.home_terms()})
        fresh = all(
            der in self.ders and self.ders[der].silence(now) < STALE_S for der in self.home_terms()
        )
        power = next(iter(powers)) if powers and fresh else None
        return {"home_power": (power, False), "home_energy": (round(self.home_energy, 3), True)}

    def checked(self) -> None:
        """Start the next check's record: what was produced, the longest silences."""
        self.produced.clear()
        for state in self.ders.values():
            state.longest_silence = 0.0

    def _apply(self, reading: NovacoreReading, seen_at: float) -> None:
        key = self.route(reading)
        state = self.ders.get(key)
        if state is None:
            state = DerState(key, self._listed.get(key, reading.der_type))
            self.ders[key] = state
            self.home = self.home or state.der_type == "meter"
        timestamp = reading.timestamp
        if timestamp is not None:
            if state.last_timestamp is not None and timestamp <= state.last_timestamp:
                self.stale += 1
                return
            state.last_timestamp = timestamp
        state.applied += 1
        if state.seen_at is not None:
            silence = seen_at - state.seen_at
            state.longest_silence = max(state.longest_silence, silence)
            if silence >= STALE_S:
                self._produce_all(key)  # back from stale: every entity is written again
        state.seen_at = seen_at
        der_type = state.der_type
        for name, value in reading.values.items():
            spec = spec_of(der_type, name)
            if spec is None:
                continue
            self._seq += 1
            if spec.total:
                total = state.totals.setdefault(spec.key, Total())
                before = total.value
                if total.accept(value, timestamp):
                    self._produce(key, spec.key, value)
                    sign = HOME_COUNTERS.get(der_type, {}).get(spec.key)
                    if self.home and sign is not None and before is not None:
                        grown = value - before if value >= before else value  # a reset: from 0
                        self.home_net += sign * grown
                continue
            state.raw[name] = (value, self._seq)
            if not spec.signed:
                self._produce(key, spec.key, spec.convert(value))
                continue
            for factor in self._factors(key):
                shown = _signed_spec(der_type, name, factor)
                self._produce(key, shown.key, shown.convert(factor * value))
        if der_type == "ev_charger":
            for name, text in reading.texts.items():
                shown_text = text_state(name, text)
                state.texts[TEXT_KEYS[name]] = shown_text
                self._produce(key, TEXT_KEYS[name], shown_text)

    def _produce(self, der: str, key: str, value: Shown) -> None:
        self.produced.setdefault((der, key), set()).add(
            canonical(value) if isinstance(value, float) else value
        )

    def _produce_all(self, der: str) -> None:
        """Every entity of a DER may show its current state again."""
        self.note_sign_change(der)
        for key, (value, _) in self.expected(der).items():
            self._produce(der, key, value)

    def note_sign_change(self, der: str) -> None:
        """A DER's factor may have changed: every signed value may show either rendering."""
        state = self.ders.get(der)
        if state is None:
            return
        for name, (value, _) in state.raw.items():
            for factor in self._factors(der):
                if (spec := spec_of(state.der_type, name)) is not None and spec.signed:
                    shown = _signed_spec(state.der_type, name, factor)
                    self._produce(der, shown.key, shown.convert(factor * value))

    def expected(self, der: str) -> dict[str, tuple[Shown, bool]]:
        """Entity key -> (state, native unit is Wh), under the factor that applies now."""
        state = self.ders[der]
        factor = self.factor(der)
        shown: dict[str, tuple[Shown, bool, int]] = {}
        for name, (value, seq) in state.raw.items():
            spec = spec_of(state.der_type, name)
            if spec is None:
                continue
            if spec.signed:
                spec = _signed_spec(state.der_type, name, factor)
                number = spec.convert(factor * value)
            else:
                number = spec.convert(value)
            if spec.key not in shown or shown[spec.key][2] < seq:
                shown[spec.key] = (number, spec.watt_hours, seq)
        result: dict[str, tuple[Shown, bool]] = {
            key: (value, watt_hours) for key, (value, watt_hours, _) in shown.items()
        }
        for key, total in state.totals.items():
            if total.value is not None:
                result[key] = (total.value, True)
        for key, text in state.texts.items():
            result[key] = (text, False)
        return result

    def total_resets(self) -> dict[tuple[str, str], int]:
        """(DER, key) -> resets applied so far."""
        return {
            (der, key): total.resets
            for der, state in self.ders.items()
            for key, total in state.totals.items()
        }


def _signed_spec(der_type: str, name: str, factor: int) -> Spec:
    """The spec of a signed wire field under a wire factor (limits trade places under -1)."""
    if factor < 0:
        name = SWAPPED.get(der_type, {}).get(name, name)
    spec = spec_of(der_type, name)
    assert spec is not None
    return spec


# --- Ainsite --------------------------------------------------------------------------------

TOTAL_REGISTER: Final = "2"
_MIN_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_PAYLOAD: Final = 64 * 1024


@dataclass(slots=True, frozen=True)
class AinsiteReading:
    """One Ainsite reading as the documented payloads carry it."""

    register: str
    value: float
    moment: datetime


def _ainsite_number(value: Any) -> float | None:
    if type(value) is int:
        return float(value) if abs(value) <= MAX_ABS else None
    if type(value) is float:
        return value if math.isfinite(value) and abs(value) <= MAX_ABS else None
    return None


def _ainsite_register(value: Any) -> str | None:
    if type(value) is int:
        return str(value)
    if type(value) is float and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            return None
        return str(int(text)) if text.isdigit() else text
    return None


def _ainsite_time(value: Any, now: float) -> datetime | None:
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_TEXT:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # the documentation's timestamps all carry a zone; the feeds send none without
    moment = moment.astimezone(UTC)
    epoch = moment.timestamp()
    if epoch < _MIN_EPOCH or epoch > now + DAY_MS / 1000.0:
        return None
    return moment


def parse_ainsite(payload: bytes, now: float) -> AinsiteReading | None:
    """The reading of an Ainsite payload, or None when it is rejected."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    version = data.get("smarteo_payload_schema_version")
    if type(version) is bool:
        return None
    keys: tuple[str, str, str | None]
    if version in (1, "1"):
        keys = ("meter_reading", "data_timestamp_utc", None)
    elif version in (2, "2"):
        keys = ("value", "measurement_end_timestamp_utc", "measurement_start_timestamp_utc")
    else:
        return None
    register = _ainsite_register(data.get("register_id"))
    value = _ainsite_number(data.get(keys[0]))
    moment = _ainsite_time(data.get(keys[1]), now)
    if register is None or value is None or moment is None:
        return None
    if keys[2] is not None:
        start = _ainsite_time(data.get(keys[2]), now)
        if start is None or moment < start:
            return None
    return AinsiteReading(register, value, moment)


@dataclass(slots=True)
class _Register:
    value: float | None = None
    timestamp: float | None = None
    total: Total | None = None


class AinsiteOracle:
    """One Ainsite subscription: what every register and meter must show."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.registers: dict[tuple[str, str], _Register] = {}
        self.last_reading: dict[str, datetime] = {}
        self.accepted = 0
        self.rejected = 0
        self.stale = 0
        self.produced: dict[tuple[str, str], set[Shown]] = {}

    def feed(self, meter: str, payload: bytes, now: float) -> None:
        """Take one delivered message of a meter."""
        reading = parse_ainsite(payload, now)
        if reading is None:
            self.rejected += 1
            return
        self.accepted += 1
        key = (meter, reading.register)
        register = self.registers.get(key)
        if register is None:
            register = _Register(total=Total() if reading.register == TOTAL_REGISTER else None)
            self.registers[key] = register
        timestamp = reading.moment.timestamp() * 1000.0
        last = register.total.timestamp if register.total is not None else register.timestamp
        if last is not None and timestamp <= last:
            self.stale += 1
            return
        if register.total is not None:
            if register.total.accept(reading.value, timestamp):
                self._produce(key, reading.value)
        else:
            register.value, register.timestamp = reading.value, timestamp
            self._produce(key, reading.value)
        if meter not in self.last_reading or reading.moment > self.last_reading[meter]:
            self.last_reading[meter] = reading.moment
            self._produce((meter, "last_reading"), last_reading_state(reading.moment))

    def _produce(self, key: tuple[str, str], value: Shown) -> None:
        self.produced.setdefault(key, set()).add(
            canonical(value) if isinstance(value, float) else value
        )

    def expected(self) -> dict[tuple[str, str], Shown]:
        """(meter, register or `last_reading`) -> state."""
        result: dict[tuple[str, str], Shown] = {}
        for key, register in self.registers.items():
            value = register.total.value if register.total is not None else register.value
            if value is not None:
                result[key] = value
        for meter, moment in self.last_reading.items():
            result[(meter, "last_reading")] = last_reading_state(moment)
        return result

    def total_resets(self) -> dict[tuple[str, str], int]:
        """(meter, register) -> resets applied so far."""
        return {
            key: register.total.resets
            for key, register in self.registers.items()
            if register.total is not None
        }


def last_reading_state(moment: datetime) -> str:
    """A timestamp sensor's state: UTC, to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")
