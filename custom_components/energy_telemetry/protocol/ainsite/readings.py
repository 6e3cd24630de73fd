"""Ainsite payloads: schema 1 (register 2, the energy total) and schema 2 (any register)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
import json
import logging
import math
import time
from typing import Any, Final

from ..common import ParseStats

_LOGGER = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_ABS_VALUE: Final = 1e15
MIN_TIMESTAMP: Final = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_FUTURE_SECONDS: Final = 86400.0
MAX_CACHED_TIMES: Final = 1024
_TIMES: dict[str, tuple[datetime, float]] = {}
"""Timestamps read so far (registers of one reading, and meters of one round, share them)."""


@dataclass(frozen=True, slots=True)
class RegisterReading:
    """One meter register reading."""

    register_id: str
    value: float
    timestamp: datetime
    start: datetime | None
    version: int


class _Reject(Exception):  # noqa: N818
    """A payload is rejected for the given reason."""

    def __init__(self, reason: str) -> None:
        """Store the reason."""
        super().__init__(reason)
        self.reason = reason


def _number(raw: Any) -> float:
    """Return a finite, plausible float from a JSON value."""
    if raw is None:
        raise _Reject("missing_value")
    if isinstance(raw, bool):
        raise _Reject("invalid_value")
    if isinstance(raw, float):
        value = raw
    elif isinstance(raw, int):
        if abs(raw) > MAX_ABS_VALUE:
            raise _Reject("absurd_value")
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise _Reject("invalid_value") from None
    else:
        raise _Reject("invalid_value")
    if not math.isfinite(value):
        raise _Reject("non_finite_value")
    if abs(value) > MAX_ABS_VALUE:
        raise _Reject("absurd_value")
    return value


def _register(raw: Any) -> str:
    """Return a register id as a string: 2, 2.0 and "2" all give "2"."""
    if raw is None:
        raise _Reject("missing_register")
    if isinstance(raw, bool):
        raise _Reject("invalid_register")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if raw.is_integer():
            return str(int(raw))
        raise _Reject("invalid_register")
    if isinstance(raw, str):
        text = raw.strip()
        if not text or len(text) > 64:
            raise _Reject("invalid_register")
        if text.isdigit():
            return str(int(text))
        return text
    raise _Reject("invalid_register")


def _timestamp(raw: Any, now: float) -> datetime:
    """Return an aware UTC datetime from an ISO-8601 string within the plausible range."""
    if raw is None:
        raise _Reject("missing_timestamp")
    if not isinstance(raw, str) or len(raw) > 64:
        raise _Reject("invalid_timestamp")
    cached = _TIMES.get(raw)
    if cached is None:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _Reject("invalid_timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        elif parsed.utcoffset():
            parsed = parsed.astimezone(UTC)
        else:
            parsed = parsed.replace(tzinfo=UTC)
        epoch = parsed.timestamp()
        if epoch < MIN_TIMESTAMP:
            raise _Reject("timestamp_too_old")
        if len(_TIMES) >= MAX_CACHED_TIMES:
            _TIMES.clear()
        _TIMES[raw] = cached = (parsed, epoch)
    parsed, epoch = cached
    if epoch > now + MAX_FUTURE_SECONDS:
        raise _Reject("timestamp_in_future")
    return parsed


def _decode(payload: bytes | str, now: float) -> RegisterReading:
    """Return the reading in a payload or raise _Reject."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _Reject("too_large")
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise _Reject("not_utf8") from None
    elif isinstance(payload, str):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _Reject("too_large")
        text = payload
    else:
        raise _Reject("not_bytes")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _Reject("not_json") from None
    if not isinstance(data, dict):
        raise _Reject("not_object")
    version = data.get("smarteo_payload_schema_version")
    if version is None:
        raise _Reject("missing_version")
    if isinstance(version, bool) or not isinstance(version, int | float | str):
        raise _Reject("unknown_version")  # a list or an object (unhashable), true, false
    if version in {1, "1"}:
        return RegisterReading(
            register_id=_register(data.get("register_id")),
            value=_number(data.get("meter_reading")),
            timestamp=_timestamp(data.get("data_timestamp_utc"), now),
            start=None,
            version=1,
        )
    if version in {2, "2"}:
        register_id = _register(data.get("register_id"))
        value = _number(data.get("value"))
        start = _timestamp(data.get("measurement_start_timestamp_utc"), now)
        end = _timestamp(data.get("measurement_end_timestamp_utc"), now)
        if end < start:
            raise _Reject("end_before_start")
        return RegisterReading(
            register_id=register_id, value=value, timestamp=end, start=start, version=2
        )
    raise _Reject("unknown_version")


def parse_payload(payload: bytes | str, stats: ParseStats | None = None) -> RegisterReading | None:
    """Return the reading in an Ainsite payload (schema 1 or 2), or None if it is rejected."""
    try:
        reading = _decode(payload, time.time())
    except _Reject as err:
        if stats is not None:
            stats.reject(err.reason)
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("Rejected Ainsite payload (%s): %.200r", err.reason, payload)
        return None
    except Exception:  # never let a payload break the caller
        if stats is not None:
            stats.reject("error")
        _LOGGER.debug("Rejected Ainsite payload (error): %.200r", payload, exc_info=True)
        return None
    if stats is not None:
        stats.accepted += 1
    return reading
