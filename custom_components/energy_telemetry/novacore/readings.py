"""Readings: the data of one SSE event parsed into telemetry values of DERs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
import json
import logging
import math
from typing import Any

from .errors import MAX_LOGGED_CHARS

_LOGGER = logging.getLogger(__name__)

_TYPE_ALIASES = {"pv": "pv", "solar": "pv", "battery": "battery", "meter": "meter"}
_DER_ID_KEYS = ("der_id", "derId", "der")
_ENVELOPE_KEYS = ("data", "telemetry", "reading", "payload")
_NON_VALUE_KEYS = frozenset({"timestamp", *_DER_ID_KEYS})
_MAX_ABS_VALUE = 1e15


def as_text(value: Any) -> str | None:
    """Return a non-empty string or an integer as text, else None."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def normalise_type(value: str) -> str:
    """Map the service's DER type words onto one vocabulary (`solar` and `pv` are both `pv`)."""
    lowered = value.strip().lower()
    return _TYPE_ALIASES.get(lowered, lowered)


@dataclass(slots=True)
class Reading:
    """One telemetry reading of one DER."""

    der_type: str
    der_id: str | None
    make: str | None
    timestamp: float | None
    """Milliseconds since the epoch, as sent."""
    values: dict[str, float]


@dataclass(slots=True)
class ParseStats:
    """What the parser accepted and why it dropped the rest."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def reject(self, reason: str, data: object) -> None:
        """Count and log one dropped input."""
        self.rejected[reason] += 1
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("Dropped Novacore event (%s): %.*r", reason, MAX_LOGGED_CHARS, data)


def _timestamp(value: Any) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE  # also false for NaN; no float() of a huge int
    ):
        # Seconds are accepted too: anything before 1973 in ms is taken as seconds.
        return float(value) * 1000.0 if 0 < value < 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp() * 1000.0
    return None


def _parse_item(item: Any, stats: ParseStats) -> Reading | None:
    if not isinstance(item, dict):
        stats.reject("not_an_object", item)
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
    if not isinstance(der_type, str) or not der_type:
        stats.reject("no_type", item)
        return None
    der_id = None
    for key in _DER_ID_KEYS:
        if (der_id := as_text(item.get(key))) is not None:
            break
    values = {
        name: float(value)
        for name, value in item.items()
        if type(value) in (int, float)
        and name not in _NON_VALUE_KEYS
        # The range check first: math.isfinite() of a huge int raises OverflowError.
        and -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE
        and math.isfinite(value)
    }
    if not values:
        stats.reject("no_values", item)
        return None
    make = item.get("make")
    stats.accepted += 1
    return Reading(
        _TYPE_ALIASES.get(der_type) or normalise_type(der_type),
        der_id,
        make if isinstance(make, str) and make else None,
        _timestamp(item.get("timestamp")),
        values,
    )


def parse_event(data: str, stats: ParseStats) -> list[Reading]:
    """Parse the data of one SSE event: a reading, an enveloped reading, or a list of them."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the decoder handles.
        stats.reject("invalid_json", data)
        return []
    if isinstance(body, list):
        return [reading for item in body if (reading := _parse_item(item, stats)) is not None]
    reading = _parse_item(body, stats)
    return [] if reading is None else [reading]
