"""Readings: the data of one SSE event parsed into telemetry values of DERs.

Every wire variant Sourceful's own sources show (flat or `{type, device_sn, spec, state}`, in an
envelope or a list, any type word of a kind, timestamps in ms, seconds or RFC 3339, `mppts` and
limit arrays) gives the same `DerReading`; docs/how-it-works.md lists them. A field that is not a
usable number, nor a documented text field, is ignored and counted by name, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import json
import logging
import math
import time
from typing import Any

from ..common import MAX_NAME_LENGTH, ParseStats
from .errors import MAX_LOGGED_CHARS

_LOGGER = logging.getLogger(__name__)

_TYPE_ALIASES = {
    "pv": "pv",
    "solar": "pv",
    "battery": "battery",
    "meter": "meter",
    "inverter": "inverter",
    "ev_charger": "ev_charger",
    "v2x_charger": "ev_charger",
    "ev_port": "ev_charger",
    "charger": "ev_charger",
    "ev": "ev_charger",
}
TEXT_FIELDS: dict[str, dict[str, type]] = {
    "ev_charger": {"status": str, "protocol": str, "control_mode": str, "plug_connected": bool},
}
"""The documented non-numeric fields of each DER type, and the type each must have."""
_DER_ID_KEYS = ("der_id", "derId", "der")
_ENVELOPE_KEYS = ("data", "telemetry", "reading", "payload")
_NESTED_KEYS = ("spec", "state")
_STRUCTURAL_KEYS = frozenset(
    {"type", "der_type", "make", "timestamp", "device_sn", "event", *_DER_ID_KEYS}
)
"""Fields that say what a reading is, never values (nor ignored values)."""
_MPPT_KEYS = frozenset({"mppts", "mppt"})
_MPPT_UNITS = ("V", "A", "W")
_LIMIT_KEYS = frozenset({"upper_limit_W", "lower_limit_W"})
_MAX_ABS_VALUE = 1e15
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MAX_MPPTS = 99
"""MPPT inputs beyond this many in one `mppts` array are ignored."""
MAX_LIMIT_ELEMENTS = 8
"""A limit array (documented: 3 elements) longer than this is ignored."""
MAX_TEXT_LENGTH = 255
"""Longer text is ignored: Home Assistant states hold at most 255 characters."""
MAX_TIMESTAMP_LENGTH = 64
MAX_FUTURE_MS = 86_400_000.0
"""A reading timestamped further ahead of the clock than this is rejected (`timestamp_in_future`)."""


def as_text(value: Any) -> str | None:
    """Return a non-empty string (of at most MAX_NAME_LENGTH) or an integer as text, else None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def normalise_type(value: str) -> str:
    """Map the service's DER type words onto one vocabulary (`solar` is `pv`, etc.)."""
    lowered = value.strip().lower()
    return _TYPE_ALIASES.get(lowered, lowered)


@dataclass(slots=True)
class DerReading:
    """One telemetry reading of one DER."""

    der_type: str
    """Normalised: `pv`, `battery`, `meter`, `inverter`, `ev_charger` or the service's word."""
    der_id: str | None
    make: str | None
    timestamp: float | None
    """Milliseconds since the epoch."""
    values: dict[str, float]
    """Numbers by wire field name (`spec` and `state` fields alike), as sent: no sign changed."""
    device_sn: str | None = None
    """The serial number of the DER's device (data-models shape), matched to `hardware_id`."""
    texts: dict[str, str | bool] | None = None
    """The documented text and boolean fields present (see TEXT_FIELDS), else None."""


def _reject(stats: ParseStats, reason: str, data: object) -> None:
    """Count and log one dropped input."""
    stats.reject(reason)
    if _LOGGER.isEnabledFor(logging.DEBUG):
        _LOGGER.debug("Dropped Novacore event (%s): %.*r", reason, MAX_LOGGED_CHARS, data)


def _ignore(stats: ParseStats, name: str, value: object) -> None:
    """Count one ignored field; log its name the first time it is seen."""
    if stats.ignore(name) and _LOGGER.isEnabledFor(logging.DEBUG):
        _LOGGER.debug(
            "Ignored Novacore field %.*r (not a usable value, counted from now on): %.*r",
            MAX_LOGGED_CHARS,
            name,
            MAX_LOGGED_CHARS,
            value,
        )


def _number(value: Any) -> float | None:
    """Return a finite JSON number of sane magnitude as a float (never a bool)."""
    kind = type(value)
    if (
        (kind is float or kind is int)
        # The range check first: math.isfinite() of a huge int raises OverflowError.
        and -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE
        and math.isfinite(value)
    ):
        return float(value)
    return None


def _timestamp(value: Any) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE  # also false for NaN; no float() of a huge int
    ):
        # Seconds are accepted too: anything before 1973 in ms is taken as seconds.
        return float(value) * 1000.0 if 0 < value < 1e11 else float(value)
    if isinstance(value, str) and len(value) <= MAX_TIMESTAMP_LENGTH:
        try:
            # RFC 3339 allows a lower-case "t" and "z"; the parser wants them upper case.
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        # Whole microseconds, then ms: exact for the milliseconds a wire carries.
        return (parsed - _EPOCH) // _MICROSECOND / 1000.0
    return None


def _mppts(value: Any, values: dict[str, float], stats: ParseStats) -> None:
    """Spread `mppts: [{V, A, W}, ...]` into `mppt{n}_V`, `mppt{n}_A`, `mppt{n}_W` (n from 1)."""
    if not isinstance(value, list):
        _ignore(stats, "mppts", value)
        return
    for index, entry in enumerate(value):
        if index >= MAX_MPPTS or not isinstance(entry, dict):
            _ignore(stats, "mppts", entry)
            continue
        for unit in _MPPT_UNITS:
            raw = entry.get(unit)
            if raw is None:
                continue
            if (number := _number(raw)) is None:
                _ignore(stats, f"mppts.{unit}", raw)
            else:
                values[f"mppt{index + 1}_{unit}"] = number


def _limit(value: list[Any]) -> float | None:
    """Return the element of largest magnitude of a limit array of numbers (else None)."""
    if not 0 < len(value) <= MAX_LIMIT_ELEMENTS:
        return None
    numbers = []
    for item in value:
        if (number := _number(item)) is None:
            return None
        numbers.append(number)
    return max(numbers, key=abs)


def _collect(
    source: dict[str, Any],
    values: dict[str, float],
    texts: dict[str, str | bool] | None,
    text_fields: dict[str, type] | None,
    stats: ParseStats,
) -> dict[str, str | bool] | None:
    """Take the values and documented texts of one object in one pass; return the texts."""
    for name, value in source.items():
        if len(name) > MAX_NAME_LENGTH:
            _ignore(stats, name, value)
            continue
        kind = type(value)
        if kind is float or kind is int:
            if name in _STRUCTURAL_KEYS:
                continue
            # The range check first: math.isfinite() of a huge int raises OverflowError.
            if -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE and math.isfinite(value):
                if text_fields is not None and name in text_fields:
                    if text_fields[name] is bool and value in (0, 1):
                        texts = texts or {}
                        texts[name] = value == 1
                    else:
                        _ignore(stats, name, value)
                    continue
                values[name] = float(value)
            else:
                _ignore(stats, name, value)
        elif kind is str or kind is bool:
            if name in _STRUCTURAL_KEYS:
                continue
            if (
                text_fields is not None
                and text_fields.get(name) is kind
                and (kind is bool or 0 < len(value) <= MAX_TEXT_LENGTH)
            ):
                texts = texts or {}
                texts[name] = value
                continue
            _ignore(stats, name, value)
        elif value is None or (kind is dict and (name in _NESTED_KEYS or name in _ENVELOPE_KEYS)):
            continue  # null is an absent value; nested objects are read by the caller
        elif name in _MPPT_KEYS:
            _mppts(value, values, stats)
        elif name in _LIMIT_KEYS and kind is list and (limit := _limit(value)) is not None:
            values[name] = limit
        else:
            _ignore(stats, name, value)
    return texts


def _parse_item(item: Any, stats: ParseStats, now_ms: float) -> DerReading | None:
    if not isinstance(item, dict):
        _reject(stats, "not_an_object", item)
        return None
    for key in _ENVELOPE_KEYS:
        inner = item.get(key)
        if isinstance(inner, dict):
            item = {**item, **inner}
            del item[key]
            break
    der_type = item.get("type")
    if not isinstance(der_type, str):
        der_type = item.get("der_type")
    if not isinstance(der_type, str) or not 0 < len(der_type) <= MAX_NAME_LENGTH:
        _reject(stats, "no_type", item)
        return None
    der_type = _TYPE_ALIASES.get(der_type) or normalise_type(der_type)
    spec = item.get("spec")
    state = item.get("state")
    # Not objects, they are counted as ignored fields of the outer object.
    spec = spec if isinstance(spec, dict) else None
    state = state if isinstance(state, dict) else None
    text_fields = TEXT_FIELDS.get(der_type)
    values: dict[str, float] = {}
    # Later objects win: telemetry (state) over configuration (spec) over the outer object.
    texts = _collect(item, values, None, text_fields, stats)
    if spec is not None:
        texts = _collect(spec, values, texts, text_fields, stats)
    if state is not None:
        texts = _collect(state, values, texts, text_fields, stats)
    if not values and not texts:
        _reject(stats, "no_values", item)
        return None
    der_id = _first_text(item, state, _DER_ID_KEYS)
    make = item.get("make")
    if make is None and state is not None:
        make = state.get("make")
    timestamp = item.get("timestamp")
    if timestamp is None and state is not None:
        timestamp = state.get("timestamp")
    milliseconds = _timestamp(timestamp)
    if milliseconds is not None and milliseconds > now_ms + MAX_FUTURE_MS:
        _reject(stats, "timestamp_in_future", item)
        return None
    stats.accepted += 1
    return DerReading(
        der_type,
        der_id,
        make if isinstance(make, str) and 0 < len(make) <= MAX_NAME_LENGTH else None,
        milliseconds,
        values,
        _first_text(item, state, ("device_sn",)),
        texts,
    )


def _first_text(
    item: dict[str, Any], state: dict[str, Any] | None, keys: tuple[str, ...]
) -> str | None:
    for source in (item, state):
        if source is None:
            continue
        for key in keys:
            if (text := as_text(source.get(key))) is not None:
                return text
    return None


def parse_event(data: str, stats: ParseStats) -> list[DerReading]:
    """Parse the data of one SSE event: a reading, an enveloped reading, or a list of them."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the decoder handles.
        _reject(stats, "invalid_json", data)
        return []
    now_ms = time.time() * 1000.0
    if isinstance(body, list):
        return [
            reading for item in body if (reading := _parse_item(item, stats, now_ms)) is not None
        ]
    reading = _parse_item(body, stats, now_ms)
    return [] if reading is None else [reading]
