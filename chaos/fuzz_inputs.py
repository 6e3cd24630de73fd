"""Fuzz inputs for both services: valid readings of every wire variant, and mutations of them.

Shared by the property-based tests (`tests/protocol/test_parser_properties.py`, `tests/integration/test_fuzzed_payloads.py`) and the fuzz campaign
(`scripts/chaos --fuzz N`, `chaos/fuzz.py`). The campaign's feeds are plain `random.Random`
generators: seeded, reproducible and fast (a hypothesis example costs too much for 100,000).

- `NovacoreFeed`: a physically consistent site (`simulator.model.SiteModel`) read on the documented
  or the legacy wire (`simulator.wire`), every DER type, flat and `{type, device_sn, spec, state}`
  shapes, envelopes and lists, ms, seconds and RFC 3339 timestamps, `mppts` arrays, EV charger
  enums and booleans; then mutated, repeated, reordered, or replaced by garbage.
- `AinsiteFeed`: meters with an accumulated total (payload version 1, register 2) and interval
  registers (version 2), mutated likewise.

No Home Assistant imports: the generators know nothing of what the integration will make of them
(that is `chaos/oracle.py`'s job, written from the documented rules).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
import json
import math
import random
import string
import time
from typing import Any, Final

from simulator.ainsite_publisher import format_timestamp, meter_topic
from simulator.model import SiteModel
from simulator.wire import DOCUMENTED, LEGACY, device_sn_of, rfc3339, to_legacy

# --- shared with the property-based tests -------------------------------------------------------

TIMESTAMP_SAMPLES: Final = [
    "2026-11-21T12:00:00Z",
    "2026-11-21T12:00:00.123Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-11-21T12:00:00+14:00",
    "2026-11-21T12:00:00-12:00",
    "2026-11-21T12:00:00+05:45",
    "2026-11-21T12:00:00",
    "2026-13-40T99:99:99Z",
    "",
    "now",
]
"""Timestamps valid, odd and broken, for both services."""
TYPE_WORDS: Final = [
    "pv",
    "solar",
    "battery",
    "meter",
    "inverter",
    "v2x_charger",
    "ev_port",
    "charger",
]
"""Every documented Novacore DER type word."""
TEXT_SAMPLES: Final = [
    *("charging", "discharging", "sleeping", "error", "unavailable", "idle", "Suspended"),
    *("scheduled", "dynamic", "ISO15118-20", "finishing", "", " "),
]
"""Values of the EV charger's text fields, known and unknown."""

WIRE_FIELDS: Final[dict[str, list[str]]] = {
    "pv": ["W", "mppt1_V", "mppt1_A", "mppt1_W", "mppt2_A", "lower_limit_W",
           "total_generation_Wh", "rated_power_W", "installed_power_W", "read_time_ms"],
    "battery": ["W", "A", "V", "SoC_nom_fract", "upper_limit_W", "lower_limit_W",
                "total_charge_Wh", "total_discharge_Wh", "capacity_kWh", "min_soc_fract"],
    "meter": ["W", "Hz", "L1_V", "L1_A", "L1_W", "L3_W", "total_import_Wh", "total_export_Wh"],
    "inverter": ["W", "VA", "VAR", "dc_W", "dc_A", "L2_W", "heatsink_C", "rated_power_VA",
                 "phases"],
    "v2x_charger": ["W", "A", "dc_W", "vehicle_soc_fract", "session_charge_Wh",
                    "total_discharge_Wh", "max_charge_power_W", "capacity_Wh", "L1_A"],
}  # fmt: skip
"""Numeric fields of each documented DER type, for readings with random values."""
DER_IDS: Final = {
    "pv": "der-pv",
    "battery": "der-bat",
    "meter": "der-meter",
    "inverter": "der-inv",
    "v2x_charger": "der-evc",
}
"""The DER ids of `tests/data/devices.json`."""


def valid_v1(value: Any = 123.456, ts: Any = "2024-11-21T12:00:00Z") -> dict[str, Any]:
    """Return an Ainsite payload of version 1 (register 2, accumulated energy)."""
    return {
        "smarteo_payload_schema_version": 1,
        "data_timestamp_utc": ts,
        "system_timestamp_utc": ts,
        "register_id": 2,
        "meter_reading": value,
    }


def valid_v2(value: Any = 0.25) -> dict[str, Any]:
    """Return an Ainsite payload of version 2 (an interval value)."""
    return {
        "smarteo_payload_schema_version": 2,
        "measurement_start_timestamp_utc": "2024-11-21T12:00:00Z",
        "measurement_end_timestamp_utc": "2024-11-21T12:01:00Z",
        "register_id": 12,
        "value": value,
    }


def generated_readings(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Return documented readings cycling through the DER types, random fields and values.

    Seeded: the same every run, and every field of WIRE_FIELDS shows up.
    """
    kinds = sorted(WIRE_FIELDS)
    samples = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        fields = WIRE_FIELDS[kind]
        reading: dict[str, Any] = {"type": kind, "der_id": DER_IDS[kind]}
        for name in rng.sample(fields, rng.randint(1, len(fields))):
            reading[name] = rng.choice(
                [rng.randint(-(10**6), 10**6), rng.uniform(-1e6, 1e6), rng.uniform(-1, 1), 0]
            )
        if kind == "v2x_charger":
            reading["status"] = rng.choice(["charging", "unavailable", "sleeping"])
            reading["plug_connected"] = rng.random() < 0.5
            reading["upper_limit_W"] = [1380, 0, rng.randint(1380, 22000)]
        samples.append(reading)
    return samples


# --- the campaign's inputs ----------------------------------------------------------------------

NOVACORE_DOCUMENTED: Final = "novacore-documented"
NOVACORE_LEGACY: Final = "novacore-legacy"
AINSITE: Final = "ainsite"
SOURCES: Final = (NOVACORE_DOCUMENTED, NOVACORE_LEGACY, AINSITE)

VALID: Final = "valid"
GARBAGE_KINDS: Final = frozenset(
    {"truncated_json", "not_json", "non_object", "non_utf8", "deep_nesting", "too_large"}
)
REPEAT_KINDS: Final = frozenset({"duplicate", "replay", "reordered"})


@dataclass(slots=True)
class Input:
    """One input of the campaign, as it goes on the wire."""

    source: str
    kind: str
    """`valid`, a mutation (`bad_value`, `missing_field`...), a repeat or garbage."""
    data: bytes
    """SSE: the event's data (UTF-8 but for `non_utf8`); MQTT: the payload."""
    topic: str | None = None
    """MQTT only."""


class _Nan:
    """Marks where a bad value is a JSON NaN or infinity literal (json.dumps writes them)."""


BAD_VALUES: Final[tuple[Any, ...]] = (
    "12.5",
    "NaN",
    "Infinity",
    "-Infinity",
    "",
    "x" * 300,
    True,
    False,
    None,
    [1, 2],
    {"v": 1},
    math.nan,
    math.inf,
    -math.inf,
    1e300,
    -1e300,
    10**30,
    -(10**20),
    2**64,
)
"""Wrong types, NaN and infinities (as text and as JSON literals), huge numbers."""
_OFFSETS: Final = (timedelta(hours=2), timedelta(hours=-7), timedelta(hours=5, minutes=45))
_PRINTABLE: Final = string.ascii_letters + string.digits + string.punctuation + " \t"
_GARBAGE_TEXTS: Final = (
    "hello",
    "{",
    "}",
    '{"type": }',
    "undefined",
    "{'type': 'meter'}",
    "<html>oops</html>",
    "null null",
    '{"type": "meter", "W": 1,}',
)
_NON_OBJECTS: Final = ("42", '"meter"', "null", "true", "[1, 2]", "[]", '[null, "x"]', "{}", "NaN")


def deep(depth: int) -> Any:
    """Return a list nested `depth` deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def encode(data: Any, *, indent: int | None = None) -> bytes:
    """Encode as JSON the way a sloppy sender may (NaN and infinities as literals)."""
    if indent is None:
        return json.dumps(data, allow_nan=True, separators=(",", ":")).encode()
    return json.dumps(data, allow_nan=True, indent=indent).encode()


def _garbage(rng: random.Random, kind: str, valid: bytes) -> bytes:
    """Return garbage of one kind, made from a valid input where it helps."""
    if kind == "truncated_json":
        return valid[: rng.randint(1, len(valid) - 1)]
    if kind == "not_json":
        if rng.random() < 0.5:
            return rng.choice(_GARBAGE_TEXTS).encode()
        text = "".join(rng.choices(_PRINTABLE, k=rng.randint(1, 80)))
        # Not blank: an SSE event whose data is blank is no event at all.
        return (text if text.strip() else "?" + text).encode()
    if kind == "non_object":
        return rng.choice(_NON_OBJECTS).encode()
    if kind == "non_utf8":
        cut = rng.randint(0, len(valid))
        return (
            valid[:cut]
            + rng.choice((b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80"))
            + valid[cut:]
        )
    if kind == "deep_nesting":
        depth = rng.choice((2000, 20000))
        return rng.choice((b"[" * depth, b'{"a":' * depth, b"[" * depth + b"]" * depth))
    raise ValueError(kind)


class _Repeats:
    """Valid inputs sent so far, to send again (duplicates, replays)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.recent: deque[bytes] = deque(maxlen=2000)

    def add(self, data: bytes) -> None:
        self.recent.append(data)

    def pick(self, kind: str) -> bytes | None:
        if not self.recent:
            return None
        if kind == "duplicate":
            return self.recent[-self.rng.randint(1, min(10, len(self.recent)))]
        return self.recent[self.rng.randrange(len(self.recent))]


def _choose(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


# --- Novacore -----------------------------------------------------------------------------------

_SPEC_FIELDS: Final = frozenset(
    {
        "rated_power_W",
        "installed_power_W",
        "capacity_kWh",
        "capacity_Wh",
        "min_soc_fract",
        "max_soc_fract",
        "rated_power_VA",
        "phases",
        "max_charge_power_W",
        "max_discharge_power_W",
    }
)
_STRUCTURAL: Final = frozenset({"type", "der_id", "device_sn", "make", "timestamp"})
_TYPE_WORD_VARIANTS: Final = {
    "pv": ("pv", "solar", "PV", "Solar"),
    "battery": ("battery", "Battery"),
    "meter": ("meter",),
    "inverter": ("inverter",),
    "v2x_charger": ("v2x_charger", "ev_port", "charger", "ev_charger"),
}
_CROSS_TYPED_TEXTS: Final = (
    ("plug_connected", (True, False, 0, 1)),
    ("status", ("charging", "idle", 3)),
    ("control_mode", ("dynamic", 1)),
)
_OTHER_TYPE_WORDS: Final = ("pv", "battery", "meter", "inverter", "v2x_charger", "heat_pump", "foo")
_EV_STATUSES: Final = (
    *("charging", "discharging", "sleeping", "error", "unavailable"),
    *("suspended", "available", "preparing", "idle"),
    *("Charging", " SLEEPING ", "finishing", "Fault-7", " ", "x" * 256),
)
_CONTROL_MODES: Final = ("scheduled", "dynamic", "DYNAMIC", "manual", "")
_PROTOCOLS: Final = ("ISO15118-20", "ISO15118-2", "IEC61851", "  ", "p" * 256)
_EXTRA_FIELDS: Final[tuple[tuple[str, Callable[[random.Random], Any]], ...]] = (
    ("note", lambda rng: "hello"),
    ("firmware", lambda rng: "1.2.3"),
    ("enabled", lambda rng: rng.random() < 0.5),
    ("x_W", lambda rng: rng.uniform(-5000, 5000)),
    ("custom_fract", lambda rng: rng.random()),
    ("total_bogus_Wh", lambda rng: rng.uniform(0, 1e6)),
    ("nested", lambda rng: {"a": [1, {"b": 2}]}),
    ("deep", lambda rng: deep(rng.choice((10, 100, 400)))),
    ("list", lambda rng: [1, 2, 3]),
    ("empty", lambda rng: None),
    ("unicode_ключ", lambda rng: "значение ✓"),
)
_EXTRA_VALID_FIELDS: Final[dict[str, tuple[tuple[str, Callable[[random.Random], Any]], ...]]] = {
    # Documented fields the site model does not send, with plausible values.
    "pv": (("heatsink_C", lambda rng: round(rng.uniform(20, 70), 1)),),
    "battery": (
        ("heatsink_C", lambda rng: round(rng.uniform(20, 50), 1)),
        ("read_time_ms", lambda rng: rng.randint(10, 90)),
    ),
    "meter": (("read_time_ms", lambda rng: rng.randint(10, 90)),),
    "inverter": (("read_time_ms", lambda rng: rng.randint(10, 90)),),
    "v2x_charger": (("rated_power_W", lambda rng: 11000),),
}
_NOVACORE_KINDS: Final = {
    VALID: 0.55,
    "bad_value": 0.07,
    "missing_field": 0.035,
    "extra_field": 0.035,
    "timestamp_future": 0.01,
    "timestamp_past": 0.01,
    "timestamp_invalid": 0.01,
    "type_word": 0.01,
    "routing": 0.015,
    "counter_glitch": 0.01,
    "duplicate": 0.04,
    "replay": 0.03,
    "reordered": 0.03,
    "truncated_json": 0.03,
    "not_json": 0.025,
    "non_object": 0.02,
    "non_utf8": 0.025,
    "deep_nesting": 0.002,
    "too_large": 0.001,
}
_COUNTERS: Final = (
    "total_generation_Wh",
    "total_charge_Wh",
    "total_discharge_Wh",
    "total_import_Wh",
    "total_export_Wh",
    "session_charge_Wh",
    "session_discharge_Wh",
)


def _nest(reading: dict[str, Any]) -> dict[str, Any]:
    """The data models' complete shape with the documented signs: `{type, der_id, spec, state}`."""
    nested: dict[str, Any] = {"type": reading["type"]}
    if "der_id" in reading:
        nested["der_id"] = reading["der_id"]
    spec: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for key, value in reading.items():
        if key in ("type", "der_id"):
            continue
        (spec if key in _SPEC_FIELDS else state)[key] = value
    nested["spec"] = spec
    nested["state"] = state
    return nested


def _mppt_array(reading: dict[str, Any]) -> None:
    """Turn flat `mppt{n}_X` fields into an `mppts` array, in place."""
    mppts: dict[int, dict[str, Any]] = {}
    for key in [key for key in reading if key.startswith("mppt") and key[4:5].isdigit()]:
        number, _, unit = key[4:].partition("_")
        mppts.setdefault(int(number), {})[unit] = reading.pop(key)
    if mppts:
        reading["mppts"] = [mppts.get(n, {}) for n in range(1, max(mppts) + 1)]


def _body(wire: dict[str, Any]) -> dict[str, Any]:
    """Return the object of a wire reading that holds its telemetry."""
    state = wire.get("state")
    return state if isinstance(state, dict) else wire


def _value_slots(wire: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Every (container, key) of a wire reading that holds a value (not what the reading is)."""
    slots: list[tuple[Any, Any]] = []
    for container in (wire, wire.get("spec"), wire.get("state")):
        if not isinstance(container, dict):
            continue
        for key, value in container.items():
            if key in _STRUCTURAL or key in ("spec", "state"):
                continue
            slots.append((container, key))
            if key == "mppts" and isinstance(value, list):
                slots.extend(
                    (entry, unit) for entry in value if isinstance(entry, dict) for unit in entry
                )
            elif isinstance(value, list):
                slots.extend((value, index) for index in range(len(value)))
    return slots


class _Feed:
    """Inputs forever: a reading held back (to arrive late) goes once it is released."""

    def __init__(self) -> None:
        self._out: deque[Input] = deque()
        self._held: dict[Hashable, Input] = {}

    def __iter__(self) -> Iterator[Input]:
        """Inputs forever."""
        while True:
            if self._out:
                yield self._out.popleft()
                continue
            yield self._next()

    def _next(self) -> Input:
        raise NotImplementedError

    def _release(self, key: Hashable) -> None:
        """Send what was held back under `key` next."""
        held = self._held.pop(key, None)
        if held is not None:
            self._out.append(held)


class NovacoreFeed(_Feed):
    """Inputs for one Novacore site on one wire: a site model's readings, mutated now and then."""

    def __init__(
        self,
        source: str,
        site_id: str,
        rng: random.Random,
        start: datetime,
        step_seconds: tuple[float, float],
    ) -> None:
        """Prepare a site model starting at `start`, advanced by a random step per round."""
        super().__init__()
        self.source = source
        self.wire = LEGACY if source == NOVACORE_LEGACY else DOCUMENTED
        self.rng = rng
        self.step_seconds = step_seconds
        self.model = SiteModel(
            site_id,
            f"Fuzz {self.wire}",
            seed=rng.randrange(2**32),
            start=start,
            clock=lambda: self.model.sim_time.timestamp(),  # noqa: PLW0108 - set right here
        )
        self.devices = self.model.devices()
        self._queue: deque[dict[str, Any]] = deque()
        self._repeats = _Repeats(rng)
        self.now_ms = start.timestamp() * 1000.0

    @property
    def site_id(self) -> str:
        """The site's id."""
        return self.model.site_id

    def first(self) -> list[Input]:
        """One clean reading of every DER, flat (documented) or as the legacy wire has it."""
        return [
            Input(self.source, VALID, encode(self._plain_wire(reading)))
            for reading in self.model.readings()
        ]

    # --- readings ---------------------------------------------------------------------------

    def _reading(self) -> dict[str, Any]:
        """The next documented reading of the site model (a round of all DERs at a time)."""
        if not self._queue:
            self._queue.extend(self.model.step(self.rng.uniform(*self.step_seconds)))
        reading = self._queue.popleft()
        rng = self.rng
        kind = reading["type"]
        for name, value in _EXTRA_VALID_FIELDS.get(kind, ()):
            if rng.random() < 0.2:
                reading[name] = value(rng)
        if kind == "battery" and rng.random() < 0.1:
            reading["capacity_Wh"] = round(reading.pop("capacity_kWh") * 1000)
        if kind == "v2x_charger":
            if rng.random() < 0.15:
                reading["status"] = rng.choice(_EV_STATUSES)
            if rng.random() < 0.05:
                reading["control_mode"] = rng.choice(_CONTROL_MODES)
            if rng.random() < 0.05:
                reading["protocol"] = rng.choice(_PROTOCOLS)
        return reading

    def _plain_wire(self, reading: dict[str, Any]) -> dict[str, Any]:
        if self.wire == LEGACY:
            return to_legacy(reading, device_sn_of(self.devices, reading["der_id"]))
        return dict(reading)

    def _render(self, reading: dict[str, Any]) -> dict[str, Any]:
        """The reading as this site's wire sends it, in one of the shapes it may take."""
        rng = self.rng
        reading = dict(reading)
        ms = reading["timestamp"]
        if self.wire == LEGACY:
            serial = device_sn_of(self.devices, reading["der_id"])
            # Mostly by serial; now and then by DER id, which a legacy gateway may also send.
            wire = to_legacy(reading, None if rng.random() < 0.1 else serial)
            if rng.random() < 0.2:
                wire["type"] = wire["type"].upper() if rng.random() < 0.5 else f" {wire['type']}"
            if rng.random() < 0.1:
                wire["state"]["timestamp"] = ms
            return wire
        reading["type"] = rng.choice(_TYPE_WORD_VARIANTS[reading["type"]])
        style = rng.random()
        if style < 0.25:
            reading["timestamp"] = rfc3339(ms)
        elif style < 0.35:
            zone = timezone(rng.choice(_OFFSETS))
            moment = datetime.fromtimestamp(ms / 1000.0, zone)
            reading["timestamp"] = moment.isoformat(timespec="milliseconds")
        elif style < 0.45:
            reading["timestamp"] = int(ms // 1000)
        if reading["type"] in ("pv", "solar", "PV", "Solar") and rng.random() < 0.3:
            _mppt_array(reading)
        shape = rng.random()
        if shape < 0.15:
            return _nest(reading)
        if shape < 0.22:
            return {"data": reading}
        return reading

    def _emit_valid(self, data: bytes, kind: str = VALID) -> Input:
        self._repeats.add(data)
        return Input(self.source, kind, data)

    def _next(self) -> Input:
        rng = self.rng
        kind = _choose(rng, _NOVACORE_KINDS)
        if kind in ("duplicate", "replay"):
            data = self._repeats.pick(kind)
            if data is not None:
                return Input(self.source, kind, data)
            kind = VALID
        reading = self._reading()
        self.now_ms = max(self.now_ms, float(reading["timestamp"]))
        der = reading["der_id"]
        if kind in GARBAGE_KINDS:
            valid = encode(self._render(reading))
            if kind == "too_large":
                wire = self._render(reading)
                _body(wire)["padding"] = "x" * 300_000
                return Input(self.source, kind, encode(wire))
            return Input(self.source, kind, _garbage(rng, kind, valid))
        if kind == "reordered":
            # Held back: sent after the DER's next reading, which makes it older than the last.
            self._held[der] = Input(self.source, kind, encode(self._render(reading)))
            return self._next()
        wire = self._render(reading)
        if kind != VALID:
            self._mutate(kind, wire)
        if rng.random() < 0.05 and kind == VALID:
            # Two readings in one event.
            other = self._reading()
            data = encode([wire, self._render(other)])
            self._release(other["der_id"])
        elif rng.random() < 0.03:
            data = encode(wire, indent=2)
        else:
            data = encode(wire)
        result = self._emit_valid(data, kind) if kind == VALID else Input(self.source, kind, data)
        self._release(der)
        return result

    def _mutate(self, kind: str, wire: dict[str, Any]) -> None:
        """Mutate a rendered reading in place."""
        rng = self.rng
        target: dict[str, Any] = wire["data"] if isinstance(wire.get("data"), dict) else wire
        body = _body(target)
        if kind == "bad_value":
            slots = _value_slots(target)
            for container, key in rng.sample(slots, min(len(slots), rng.randint(1, 3))):
                container[key] = rng.choice(BAD_VALUES)
        elif kind == "missing_field":
            for _ in range(rng.randint(1, 3)):
                holder = rng.choice([target, body]) if body is not target else target
                if holder:
                    del holder[rng.choice(list(holder))]
        elif kind == "extra_field":
            for name, value in rng.sample(_EXTRA_FIELDS, rng.randint(1, 2)):
                body[name] = value(rng)
        elif kind.startswith("timestamp_"):
            holder = body if "timestamp" in body else target
            holder["timestamp"] = self._bad_timestamp(kind)
        elif kind == "type_word":
            if "der_id" in target:
                target["type"] = rng.choice(_OTHER_TYPE_WORDS)
                # The charger's text fields, as texts and as numbers, in a reading of another
                # kind: read as the DER's type, they must neither stop nor freeze anything.
                for name, choices in _CROSS_TYPED_TEXTS:
                    if rng.random() < 0.5:
                        body[name] = rng.choice(choices)
            else:
                target["type"] = rng.choice((5, None, "", ["pv"]))
        elif kind == "routing":
            if "der_id" in target:
                choice = rng.choice((None, [1], True, 1.5, "drop"))
                if choice == "drop":
                    del target["der_id"]
                else:
                    target["der_id"] = choice
            elif "device_sn" in target:
                choice = rng.choice((42, "XX-unknown", "drop"))
                if choice == "drop":
                    del target["device_sn"]
                else:
                    target["device_sn"] = choice
        elif kind == "counter_glitch":
            counters = [
                key for key in body if key in _COUNTERS and isinstance(body[key], float | int)
            ]
            if counters:
                key = rng.choice(counters)
                body[key] = round(body[key] * rng.choice((0.9, 0.99, 0.0, 0.1)), 1)

    def _bad_timestamp(self, kind: str) -> Any:
        rng = self.rng
        if kind == "timestamp_future":
            ahead = time.time() * 1000.0 + rng.uniform(2, 400) * 86_400_000
            return rng.choice(
                (int(ahead), rfc3339(ahead), "2999-01-01T00:00:00Z", 4_102_444_800_000)
            )
        if kind == "timestamp_past":
            return rng.choice(
                (1, 0, -5, "1970-01-01T00:00:00Z", 946_684_800_000, int(self.now_ms - 3.2e10))
            )
        return rng.choice(
            (
                "yesterday",
                "2026-13-40T99:99:99Z",
                "2026-01-01T00:00:00",
                True,
                [1],
                {"ms": 1},
                1e300,
                "",
                "9" * 70,
            )
        )


# --- Ainsite ------------------------------------------------------------------------------------

_AINSITE_KINDS: Final = {
    VALID: 0.6,
    "bad_value": 0.05,
    "missing_field": 0.03,
    "extra_field": 0.03,
    "version": 0.015,
    "register": 0.015,
    "timestamp_future": 0.01,
    "timestamp_past": 0.01,
    "timestamp_invalid": 0.01,
    "end_before_start": 0.01,
    "counter_glitch": 0.01,
    "duplicate": 0.04,
    "replay": 0.03,
    "reordered": 0.03,
    "truncated_json": 0.03,
    "not_json": 0.02,
    "non_object": 0.02,
    "non_utf8": 0.02,
    "deep_nesting": 0.002,
    "too_large": 0.002,
}
INTERVAL_REGISTERS: Final = ("12", "13")


@dataclass(slots=True)
class _Meter:
    meter_id: str
    total: float
    moment: datetime


class AinsiteFeed(_Feed):
    """Inputs for one Ainsite subscription: meters with a total and interval registers."""

    def __init__(
        self,
        customer_id: str,
        subscription_id: str,
        rng: random.Random,
        start: datetime,
        step_seconds: tuple[float, float],
        meters: int = 4,
    ) -> None:
        """Prepare `meters` meters whose clocks start at `start`."""
        super().__init__()
        self.rng = rng
        self.customer_id = customer_id
        self.subscription_id = subscription_id
        self.step_seconds = step_seconds
        self.meters = [
            _Meter(f"mtr-{index:02d}", round(rng.uniform(100, 50000), 3), start)
            for index in range(1, meters + 1)
        ]
        self._queue: deque[tuple[_Meter, dict[str, Any]]] = deque()
        self._repeats: dict[str, _Repeats] = {}

    def topic(self, meter_id: str) -> str:
        """The topic a meter publishes on."""
        return meter_topic(self.customer_id, self.subscription_id, meter_id)

    def first(self) -> list[Input]:
        """One clean reading of every register of every meter."""
        inputs = []
        for _ in range(3 * len(self.meters)):
            meter, payload = self._payload()
            inputs.append(Input(AINSITE, VALID, encode(payload), self.topic(meter.meter_id)))
        return inputs

    def _round(self) -> None:
        rng = self.rng
        for meter in self.meters:
            meter.moment += timedelta(seconds=rng.uniform(*self.step_seconds))
            end = meter.moment.replace(microsecond=meter.moment.microsecond // 1000 * 1000)
            if rng.random() < 0.002:
                meter.total = round(rng.uniform(0, 1), 3)  # the meter was replaced: a reset
            else:
                meter.total = round(meter.total + rng.uniform(0, 0.4), 3)
            self._queue.append((meter, {"register_id": 2, "value": meter.total, "end": end}))
            for register in INTERVAL_REGISTERS:
                value = round(rng.uniform(0, 2), 4)
                self._queue.append(
                    (meter, {"register_id": int(register), "value": value, "end": end})
                )

    def _timestamp(self, moment: datetime) -> str:
        style = self.rng.random()
        if style < 0.6:
            return format_timestamp(moment)
        if style < 0.75:
            return moment.isoformat()
        return moment.astimezone(timezone(self.rng.choice(_OFFSETS))).isoformat()

    def _payload(self) -> tuple[_Meter, dict[str, Any]]:
        if not self._queue:
            self._round()
        meter, item = self._queue.popleft()
        rng = self.rng
        end: datetime = item["end"]
        register = item["register_id"]
        version: Any
        if register == 2:
            version = rng.choice((1, 1, 1, "1"))
            payload = {
                "smarteo_payload_schema_version": version,
                "data_timestamp_utc": self._timestamp(end),
                "system_timestamp_utc": self._timestamp(
                    end - timedelta(seconds=rng.randint(0, 600))
                ),
                "register_id": rng.choice((2, 2, 2, "2", 2.0)),
                "meter_reading": item["value"],
            }
        else:
            version = rng.choice((2, 2, 2, "2"))
            payload = {
                "smarteo_payload_schema_version": version,
                "measurement_start_timestamp_utc": self._timestamp(end - timedelta(seconds=60)),
                "measurement_end_timestamp_utc": self._timestamp(end),
                "register_id": rng.choice((register, register, str(register))),
                "value": item["value"],
            }
        if rng.random() < 0.3:
            keys = list(payload)
            rng.shuffle(keys)
            payload = {key: payload[key] for key in keys}
        return meter, payload

    def _next(self) -> Input:
        rng = self.rng
        kind = _choose(rng, _AINSITE_KINDS)
        if kind in ("duplicate", "replay"):
            meter = rng.choice(self.meters)
            repeats = self._repeats.get(meter.meter_id)
            data = repeats.pick(kind) if repeats is not None else None
            if data is not None:
                return Input(AINSITE, kind, data, self.topic(meter.meter_id))
            kind = VALID
        meter, payload = self._payload()
        topic = self.topic(meter.meter_id)
        key = (meter.meter_id, str(payload["register_id"]).split(".")[0])
        if kind in GARBAGE_KINDS:
            valid = encode(payload)
            if kind == "too_large":
                payload["padding"] = "x" * 70_000
                return Input(AINSITE, kind, encode(payload), topic)
            return Input(AINSITE, kind, _garbage(rng, kind, valid), topic)
        if kind == "reordered":
            self._held[key] = Input(AINSITE, kind, encode(payload), topic)
            return self._next()
        if kind != VALID:
            self._mutate(kind, payload)
        data = encode(payload, indent=4 if rng.random() < 0.3 else None)
        if kind == VALID:
            self._repeats.setdefault(meter.meter_id, _Repeats(rng)).add(data)
        self._release(key)
        return Input(AINSITE, kind, data, topic)

    def _mutate(self, kind: str, payload: dict[str, Any]) -> None:
        rng = self.rng
        value_key = "meter_reading" if "meter_reading" in payload else "value"
        stamp_key = (
            "data_timestamp_utc"
            if "data_timestamp_utc" in payload
            else "measurement_end_timestamp_utc"
        )
        if kind == "bad_value":
            payload[value_key] = rng.choice(BAD_VALUES[1:])  # not "12.5": numeric text is a policy
        elif kind == "missing_field":
            del payload[rng.choice(list(payload))]
        elif kind == "extra_field":
            for name, value in rng.sample(_EXTRA_FIELDS, rng.randint(1, 2)):
                payload[name] = value(rng)
        elif kind == "version":
            payload["smarteo_payload_schema_version"] = rng.choice(
                (3, "x", True, None, 0, "v2", [1], {"v": 1})
            )
        elif kind == "register":
            payload["register_id"] = rng.choice((2.5, "", True, [2], None, {"id": 2}, " "))
        elif kind == "timestamp_future":
            ahead = datetime.now(UTC) + timedelta(days=rng.uniform(2, 400))
            payload[stamp_key] = rng.choice((format_timestamp(ahead), "2999-01-01T00:00:00Z"))
        elif kind == "timestamp_past":
            payload[stamp_key] = rng.choice(("1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"))
        elif kind == "timestamp_invalid":
            payload[stamp_key] = rng.choice(
                ("yesterday", 1_700_000_000, "2024-13-01T00:00:00Z", "", None, True, "9" * 70)
            )
        elif kind == "end_before_start":
            if "measurement_start_timestamp_utc" in payload:
                start = payload["measurement_start_timestamp_utc"]
                payload["measurement_start_timestamp_utc"] = payload[stamp_key]
                payload[stamp_key] = start
            else:
                payload[stamp_key] = "1999-12-31T23:59:59Z"
        elif kind == "counter_glitch":
            value = payload[value_key]
            payload[value_key] = round(value * rng.choice((0.9, 0.99, 0.0, 0.1)), 3)
