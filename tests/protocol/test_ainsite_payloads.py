"""The Ainsite protocol code on its own: topics and payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
import logging
import sys
from typing import Any

import pytest

from custom_components.energy_telemetry.protocol.ainsite import (
    RegisterReading,
    parse_payload,
    parse_topic,
    readings as ainsite_readings,
    subscription_filter,
)
from custom_components.energy_telemetry.protocol.common import ParseStats
from simulator.ainsite_publisher import REGISTER_ACCUMULATED_KWH, payload_v1, payload_v2

V1 = {
    "smarteo_payload_schema_version": 1,
    "data_timestamp_utc": "2023-01-01T12:34:56.789Z",
    "system_timestamp_utc": "2023-01-01T12:30:00.000Z",
    "register_id": 2,
    "meter_reading": 123.456,
}
V2 = {
    "smarteo_payload_schema_version": 2,
    "measurement_start_timestamp_utc": "2023-01-01T12:00:00.000Z",
    "measurement_end_timestamp_utc": "2023-01-01T12:01:00.000Z",
    "register_id": 12,
    "value": 123.456,
}


def _json(base: dict[str, Any], **changes: Any) -> bytes:
    """Return base with changes (a value of ... removes the key) as JSON bytes."""
    data = {**base, **changes}
    return json.dumps({key: value for key, value in data.items() if value is not ...}).encode()


def _iso(moment: datetime) -> str:
    """Return an ISO-8601 UTC timestamp with Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- topics -----------------------------------------------------------------------------


def test_subscription_filter() -> None:
    """Filters name the customer and one or all subscriptions."""
    assert subscription_filter("c1", "s1") == "meters/outbound/c1/s1/+"
    assert subscription_filter("c1", None) == "meters/outbound/c1/+/+"
    assert subscription_filter("c1", "") == "meters/outbound/c1/+/+"


@pytest.mark.parametrize(
    ("customer", "subscription"),
    [
        ("", None),
        ("a/b", None),
        ("+", None),
        ("#", None),
        ("a\x00", None),
        ("c", "s/1"),
        ("c", "#"),
    ],
)
def test_subscription_filter_rejects_bad_ids(customer: str, subscription: str | None) -> None:
    """Ids that would widen or break the filter are refused."""
    with pytest.raises(ValueError, match="must"):
        subscription_filter(customer, subscription)


def test_parse_topic() -> None:
    """Reading topics split into customer, subscription and meter."""
    assert parse_topic("meters/outbound/c1/s1/m1") == ("c1", "s1", "m1")
    for topic in (
        "meters/outbound/c1/s1",
        "meters/outbound/c1/s1/m1/x",
        "meters/inbound/c1/s1/m1",
        "other/outbound/c1/s1/m1",
        "meters/outbound//s1/m1",
        "meters/outbound/c1/s1/",
        "",
    ):
        assert parse_topic(topic) is None, topic


# --- payloads ---------------------------------------------------------------------------


def test_parse_v1() -> None:
    """The documented schema 1 example parses."""
    stats = ParseStats()
    reading = parse_payload(_json(V1), stats)
    assert reading == RegisterReading(
        register_id="2",
        value=123.456,
        timestamp=datetime(2023, 1, 1, 12, 34, 56, 789000, tzinfo=UTC),
        start=None,
        version=1,
    )
    assert stats.accepted == 1
    assert not stats.rejected


def test_parse_v2() -> None:
    """The documented schema 2 example parses, the end being the timestamp."""
    reading = parse_payload(_json(V2))
    assert reading == RegisterReading(
        register_id="12",
        value=123.456,
        timestamp=datetime(2023, 1, 1, 12, 1, tzinfo=UTC),
        start=datetime(2023, 1, 1, 12, 0, tzinfo=UTC),
        version=2,
    )


def test_reading_is_frozen_and_slotted() -> None:
    """Readings are immutable and small."""
    reading = parse_payload(_json(V1))
    assert reading is not None
    assert not hasattr(reading, "__dict__")
    with pytest.raises(AttributeError):
        reading.value = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(2, "2"), ("2", "2"), (2.0, "2"), (" 12 ", "12"), ("02", "2"), ("A+", "A+")],
)
def test_register_normalised(raw: Any, expected: str) -> None:
    """Register ids become strings, whatever their JSON type."""
    reading = parse_payload(_json(V2, register_id=raw))
    assert reading is not None
    assert reading.register_id == expected


def test_parse_accepts_plausible_variants() -> None:
    """Offsets, naive timestamps, str payloads, integer and numeric-string values parse."""
    reading = parse_payload(_json(V1, data_timestamp_utc="2023-01-01T14:34:56+02:00"))
    assert reading is not None
    assert reading.timestamp == datetime(2023, 1, 1, 12, 34, 56, tzinfo=UTC)
    assert reading.timestamp.tzinfo is UTC
    reading = parse_payload(_json(V1, data_timestamp_utc="2023-01-01T12:34:56"))
    assert reading is not None
    assert reading.timestamp == datetime(2023, 1, 1, 12, 34, 56, tzinfo=UTC)
    reading = parse_payload(_json(V1).decode())
    assert reading is not None
    reading = parse_payload(_json(V1, meter_reading=7))
    assert reading is not None
    assert reading.value == 7.0
    assert isinstance(reading.value, float)
    reading = parse_payload(_json(V1, meter_reading="7.5"))
    assert reading is not None
    assert reading.value == 7.5
    reading = parse_payload(_json(V1, smarteo_payload_schema_version="1"))
    assert reading is not None
    assert reading.version == 1
    reading = parse_payload(_json(V1, system_timestamp_utc=...))
    assert reading is not None
    reading = parse_payload(
        _json(V2, measurement_end_timestamp_utc=V2["measurement_start_timestamp_utc"])
    )
    assert reading is not None
    near_future = datetime.now(UTC) + timedelta(hours=12)
    reading = parse_payload(_json(V1, data_timestamp_utc=_iso(near_future)))
    assert reading is not None


FUTURE = _iso(datetime.now(UTC) + timedelta(days=2))

REJECTS: list[tuple[bytes | str, str]] = [
    (b"\xff\xfe{}", "not_utf8"),
    (b"not json", "not_json"),
    (b"", "not_json"),
    (b"{", "not_json"),
    (b"[" * 100000 + b"]" * 100000, "too_large"),
    # Too deep for json before Python 3.14; 3.14 parses it (and it is no object).
    (b"[" * 30000 + b"]" * 30000, "not_json" if sys.version_info < (3, 14) else "not_object"),
    (b"[1, 2]", "not_object"),
    (b"42", "not_object"),
    (b"null", "not_object"),
    (_json(V1, smarteo_payload_schema_version=...), "missing_version"),
    (_json(V1, smarteo_payload_schema_version=3), "unknown_version"),
    (_json(V1, smarteo_payload_schema_version=True), "unknown_version"),
    (_json(V1, smarteo_payload_schema_version="v1"), "unknown_version"),
    # Unhashable: looking them up among the known versions must not raise (no "error").
    (_json(V1, smarteo_payload_schema_version=[1]), "unknown_version"),
    (_json(V1, smarteo_payload_schema_version={"v": 1}), "unknown_version"),
    (_json(V1, register_id=...), "missing_register"),
    (_json(V1, register_id=True), "invalid_register"),
    (_json(V1, register_id=2.5), "invalid_register"),
    (_json(V1, register_id=""), "invalid_register"),
    (_json(V1, register_id=[2]), "invalid_register"),
    (_json(V1, meter_reading=...), "missing_value"),
    (_json(V1, meter_reading=None), "missing_value"),
    (_json(V2, value=...), "missing_value"),
    (_json(V1, meter_reading=True), "invalid_value"),
    (_json(V2, value=False), "invalid_value"),
    (_json(V1, meter_reading="abc"), "invalid_value"),
    (_json(V1, meter_reading={"kWh": 1}), "invalid_value"),
    (
        (
            b'{"smarteo_payload_schema_version": 1, "data_timestamp_utc": "2023-01-01T12:00:00Z",'
            b' "register_id": 2, "meter_reading": NaN}'
        ),
        "non_finite_value",
    ),
    (
        (
            b'{"smarteo_payload_schema_version": 2, "measurement_start_timestamp_utc":'
            b' "2023-01-01T12:00:00Z", "measurement_end_timestamp_utc": "2023-01-01T12:01:00Z",'
            b' "register_id": 12, "value": -Infinity}'
        ),
        "non_finite_value",
    ),
    (_json(V1, meter_reading=1e300 * 1e10), "non_finite_value"),
    (_json(V1, meter_reading="inf"), "non_finite_value"),
    (_json(V1, meter_reading=2e15), "absurd_value"),
    (_json(V1, meter_reading=-2e15), "absurd_value"),
    (_json(V1, meter_reading=10**20), "absurd_value"),
    (_json(V1, data_timestamp_utc=...), "missing_timestamp"),
    (_json(V2, measurement_start_timestamp_utc=...), "missing_timestamp"),
    (_json(V2, measurement_end_timestamp_utc=...), "missing_timestamp"),
    (_json(V1, data_timestamp_utc="yesterday"), "invalid_timestamp"),
    (_json(V1, data_timestamp_utc=1672576496000), "invalid_timestamp"),
    (_json(V1, data_timestamp_utc="2023-13-01T00:00:00Z"), "invalid_timestamp"),
    (_json(V1, data_timestamp_utc="1999-12-31T23:59:59Z"), "timestamp_too_old"),
    (_json(V1, data_timestamp_utc="1970-01-01T00:00:00Z"), "timestamp_too_old"),
    (_json(V1, data_timestamp_utc=FUTURE), "timestamp_in_future"),
    (_json(V2, measurement_end_timestamp_utc=FUTURE), "timestamp_in_future"),
    (_json(V2, measurement_end_timestamp_utc="2023-01-01T11:59:00Z"), "end_before_start"),
]


@pytest.mark.parametrize(("payload", "reason"), REJECTS, ids=[reason for _, reason in REJECTS])
def test_parse_rejects(payload: bytes | str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    """Anything else is rejected with a counted reason and a DEBUG line, never an exception."""
    stats = ParseStats()
    with caplog.at_level(logging.DEBUG, logger=ainsite_readings.__name__):
        assert parse_payload(payload, stats) is None
    assert stats.rejected == {reason: 1}
    assert stats.accepted == 0
    lines = [record for record in caplog.records if record.name == ainsite_readings.__name__]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG
    assert reason in lines[0].getMessage()
    assert len(lines[0].getMessage()) < 400  # the payload is truncated


def test_parse_never_raises_on_other_types() -> None:
    """Objects that are not bytes or str are rejected too."""
    stats = ParseStats()
    for payload in (None, 42, [b"{}"]):
        assert parse_payload(payload, stats) is None  # type: ignore[arg-type]
    assert stats.rejected == {"not_bytes": 3}
    assert parse_payload(_json(V1)) is not None  # stats are optional
    assert parse_payload(b"nope") is None


def test_parse_counts_accepted_and_rejected() -> None:
    """One ParseStats accumulates over many payloads."""
    stats = ParseStats()
    for _ in range(3):
        parse_payload(_json(V1), stats)
    parse_payload(b"x", stats)
    parse_payload(_json(V1, meter_reading=True), stats)
    assert stats.accepted == 3
    assert stats.rejected == {"not_json": 1, "invalid_value": 1}


def test_simulator_payloads_parse() -> None:
    """The simulator's payloads are what the parser accepts."""
    end = datetime.now(UTC).replace(microsecond=123456)
    start = end - timedelta(minutes=1)
    reading = parse_payload(payload_v1(1234.5, end, end + timedelta(seconds=1)))
    assert reading == RegisterReading(
        str(REGISTER_ACCUMULATED_KWH), 1234.5, end.replace(microsecond=123000), None, 1
    )
    assert json.loads(payload_v1(1.0, end))["data_timestamp_utc"].endswith(".123Z")
    reading = parse_payload(payload_v2(12, 0.25, start, end))
    assert reading is not None
    assert reading.version == 2
    assert reading.start == start.replace(microsecond=123000)
    assert payload_v2(12, 0.25, start, end) == payload_v2(12, 0.25, start, end)
