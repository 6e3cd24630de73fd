"""Property-based tests of every parser and the total guard: never an exception, never a wrong
value, every rejection counted."""

from __future__ import annotations

from collections import Counter
import json
import logging
import math
import re
from typing import Any

from hypothesis import given, strategies as st
import pytest

from chaos.fuzz_inputs import DER_IDS, WIRE_FIELDS, valid_v1
from custom_components.energy_telemetry.protocol import ainsite, novacore
from custom_components.energy_telemetry.protocol.ainsite import readings as ainsite_readings
from custom_components.energy_telemetry.protocol.common import ParseStats
from custom_components.energy_telemetry.protocol.novacore.readings import TEXT_FIELDS
from custom_components.energy_telemetry.totals import RESET_FRACTION, TotalGuard
from simulator.wire import device_sn_of, to_legacy
from tests.helpers.fuzz import FUZZ, NUMBERS, ainsite_inputs, encode, json_values, novacore_inputs
from tests.helpers.reporting import tried_report

TRIED: Counter[str] = Counter()


report_tried = tried_report(TRIED)


def _value_key(payload: dict[str, Any]) -> str:
    return "meter_reading" if payload.get("smarteo_payload_schema_version") in (1, "1") else "value"


# --- Ainsite ----------------------------------------------------------------------------------


@FUZZ
@given(ainsite_inputs)
def test_ainsite_parse_payload(payload: bytes | str) -> None:
    """Never raises; a reading's value is finite and the payload's own number."""
    TRIED["ainsite.parse_payload"] += 1
    stats = ParseStats()
    reading = ainsite.parse_payload(payload, stats)
    assert stats.accepted + sum(stats.rejected.values()) == 1
    if reading is None:
        assert stats.accepted == 0
        return
    assert stats.accepted == 1
    assert math.isfinite(reading.value)
    data = json.loads(payload)
    raw = data[_value_key(data)]
    assert reading.value == float(raw)
    assert reading.timestamp.tzinfo is not None
    assert reading.timestamp.timestamp() >= ainsite_readings.MIN_TIMESTAMP


@FUZZ
@given(st.text(max_size=80), st.sampled_from(["", "meters/outbound/", "meters/outbound/c/s/"]))
def test_ainsite_parse_topic(suffix: str, prefix: str) -> None:
    """Never raises; a parsed topic has three non-empty levels without separators."""
    TRIED["ainsite.parse_topic"] += 1
    parts = ainsite.parse_topic(prefix + suffix)
    if parts is not None:
        assert all(part and "/" not in part for part in parts)
        assert "/".join(("meters", "outbound", *parts)) == prefix + suffix


@FUZZ
@given(st.text(max_size=20), st.one_of(st.none(), st.text(max_size=20)))
def test_subscription_filter_stays_in_customer_tree(
    customer: str, subscription: str | None
) -> None:
    """A filter is built only from single topic levels; anything else raises ValueError."""
    TRIED["ainsite.subscription_filter"] += 1
    try:
        topic_filter = ainsite.subscription_filter(customer, subscription)
    except ValueError:
        assert (
            not customer
            or any(c in customer for c in "/+#\x00")
            or any(c in (subscription or "") for c in "/+#\x00")
        )
        return
    levels = topic_filter.split("/")
    assert levels[:3] == ["meters", "outbound", customer]
    assert len(levels) == 5
    assert levels[4] == "+"
    assert "#" not in topic_filter


def test_ainsite_rejections_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Every rejection reason leaves a DEBUG line and a count."""
    samples = {
        "not_utf8": b"\xff\xfe",
        "not_json": b"{",
        "not_object": b"[1]",
        "missing_version": encode({"value": 1}),
        "unknown_version": encode({**valid_v1(), "smarteo_payload_schema_version": 99}),
        "non_finite_value": encode(valid_v1(math.nan)),
        "absurd_value": encode(valid_v1(1e300)),
        "invalid_value": encode(valid_v1("abc")),
        "timestamp_too_old": encode(valid_v1(ts="1970-01-01T00:00:00Z")),
        "timestamp_in_future": encode(valid_v1(ts="9999-01-01T00:00:00Z")),
        "invalid_timestamp": encode(valid_v1(ts="yesterday")),
        "too_large": b" " * (ainsite_readings.MAX_PAYLOAD_BYTES + 1),
    }
    stats = ParseStats()
    with caplog.at_level(logging.DEBUG, logger=ainsite.__name__):
        for payload in samples.values():
            assert ainsite.parse_payload(payload, stats) is None
    assert dict(stats.rejected) == dict.fromkeys(samples, 1)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for reason in samples:
        assert any(f"({reason})" in line for line in lines), reason


# --- Novacore ---------------------------------------------------------------------------------


def _sources(data: Any) -> list[list[dict[str, Any]]]:
    """For each item: the objects its values may come from (outer, envelope, spec, state)."""
    items = data if isinstance(data, list) else [data]
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        merged = item
        for key in ("data", "telemetry", "reading", "payload"):
            if isinstance(item.get(key), dict):
                merged = {**item, **item[key]}
                break
        objects = [merged]
        objects.extend(
            merged[key] for key in ("spec", "state") if isinstance(merged.get(key), dict)
        )
        found.append(objects)
    return found


def _number(value: Any) -> float | None:
    if type(value) in (int, float) and -1e15 < value < 1e15 and math.isfinite(value):
        return float(value)
    return None


def _candidates(objects: list[dict[str, Any]], name: str) -> list[Any]:
    """Every number of the item that a value called `name` may have been read from."""
    found: list[Any] = [obj.get(name) for obj in objects]
    if (match := re.fullmatch(r"mppt(\d+)_(V|A|W)", name)) is not None:
        index, unit = int(match.group(1)) - 1, match.group(2)
        for obj in objects:
            for key in ("mppts", "mppt"):
                array = obj.get(key)
                if (
                    isinstance(array, list)
                    and index < len(array)
                    and isinstance(array[index], dict)
                ):
                    found.append(array[index].get(unit))
    for obj in objects:
        array = obj.get(name)
        if name in ("upper_limit_W", "lower_limit_W") and isinstance(array, list):
            found.extend(array)
    return found


@FUZZ
@given(novacore_inputs)
def test_novacore_parse_event(data: str) -> None:
    """Never raises; every value is finite and one of the event's own numbers (in any of its
    objects, an MPPT array or a limit array); texts only the documented ones, as sent."""
    TRIED["novacore.parse_event"] += 1
    stats = ParseStats()
    readings = novacore.parse_event(data, stats)
    assert stats.accepted == len(readings)
    if not readings:
        assert sum(stats.rejected.values()) >= 1 or json.loads(data) == []
        return
    sources = _sources(json.loads(data))
    for reading in readings:
        assert reading.values or reading.texts
        for name, value in reading.values.items():
            assert math.isfinite(value)
            assert any(
                _number(item) == value for objects in sources for item in _candidates(objects, name)
            ), name
        allowed = TEXT_FIELDS.get(reading.der_type, {})
        for name, text in (reading.texts or {}).items():
            assert name in allowed, name
            assert type(text) is allowed[name]
            if isinstance(text, str):
                assert 0 < len(text) <= 255
                assert any(obj.get(name) == text for objects in sources for obj in objects)
        if reading.timestamp is not None:
            assert math.isfinite(reading.timestamp)
        assert reading.der_type == reading.der_type.strip().lower()


# --- the two wires --------------------------------------------------------------------------


@st.composite
def documented_readings(draw: st.DrawFn) -> dict[str, Any]:
    """A documented reading of any DER type with random values (any subset of its fields)."""
    kind = draw(st.sampled_from(sorted(WIRE_FIELDS)))
    reading: dict[str, Any] = {
        "type": kind,
        "der_id": DER_IDS[kind],
        # Up to mid-2025: a reading more than a day ahead of the clock is rejected.
        "timestamp": draw(st.integers(min_value=1_000_000_000_000, max_value=1_750_000_000_000)),
    }
    for name in draw(st.lists(st.sampled_from(WIRE_FIELDS[kind]), min_size=1, unique=True)):
        reading[name] = draw(NUMBERS)
    if kind == "v2x_charger":
        reading["status"] = draw(st.sampled_from(["charging", "unavailable", "sleeping"]))
        reading["plug_connected"] = draw(st.booleans())
        reading["upper_limit_W"] = [1380, 0, draw(st.integers(1380, 22000))]
    return reading


@FUZZ
@given(documented_readings())
def test_both_wires_parse_alike(documented: dict[str, Any]) -> None:
    """Any documented reading and its legacy form parse to the same DER, time and texts, and to
    the same numbers but for the battery's and meter's inverted signs (limits swapped)."""
    TRIED["novacore.wires"] += 1
    devices = [{"id": "dev", "hardware_id": "SN1", "ders": [{"id": documented["der_id"]}]}]
    legacy = to_legacy(documented, device_sn_of(devices, documented["der_id"]))
    stats = ParseStats()
    (one,) = novacore.parse_event(json.dumps(documented), stats)
    (other,) = novacore.parse_event(json.dumps(legacy), stats)
    assert (other.der_type, other.timestamp, other.texts) == (
        one.der_type,
        one.timestamp,
        one.texts,
    )
    assert (other.der_id, other.device_sn) == (None, "SN1")
    expected = dict(one.values)
    if one.der_type in ("battery", "meter"):
        for key, value in one.values.items():
            if re.fullmatch(r"W|A|L\d_[AW]", key):
                expected[key] = 0.0 - value
    if one.der_type == "battery":
        for key, other_key in (
            ("upper_limit_W", "lower_limit_W"),
            ("lower_limit_W", "upper_limit_W"),
        ):
            expected.pop(key, None)
            if other_key in one.values:
                expected[key] = 0.0 - one.values[other_key]
    assert other.values == expected


def test_novacore_rejections_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Every rejection reason leaves a DEBUG line and a count."""
    stats = ParseStats()
    with caplog.at_level(logging.DEBUG, logger=novacore.__name__):
        assert novacore.parse_event("{", stats) == []
        assert novacore.parse_event("[1]", stats) == []
        assert novacore.parse_event('{"W": 1}', stats) == []
        assert novacore.parse_event('{"type": "pv", "W": NaN}', stats) == []
    assert dict(stats.rejected) == {
        "invalid_json": 1,
        "not_an_object": 1,
        "no_type": 1,
        "no_values": 1,
    }
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for reason in stats.rejected:
        assert any(f"({reason})" in line for line in lines), reason


@FUZZ
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(min_size=0, max_size=80).map(
            lambda raw: __import__("base64").b64encode(raw).decode()
        ),
        st.text(max_size=200).map(
            lambda body: f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
        ),
    )
)
def test_novacore_load_signer(text: str) -> None:
    """A key either loads and signs, or raises InvalidKeyError: nothing else."""
    TRIED["novacore.load_signer"] += 1
    message = None
    try:
        signer = novacore.load_signer(text)
    except novacore.InvalidKeyError as err:
        message = str(err)
    if message is not None:
        assert text.strip() not in message or len(text.strip()) < 8
        return
    assert signer.algorithm in ("Ed25519", "ES256")
    assert signer.sign("challenge")


@FUZZ
@given(
    st.one_of(
        st.text(max_size=100),
        st.tuples(st.text(max_size=10), json_values, st.text(max_size=10)).map(
            lambda parts: ".".join(
                [
                    parts[0],
                    __import__("base64")
                    .urlsafe_b64encode(json.dumps({"exp": parts[1]}, allow_nan=True).encode())
                    .decode()
                    .rstrip("="),
                    parts[2],
                ]
            )
        ),
    )
)
def test_novacore_token_expiry(token: str) -> None:
    """Never raises; an expiry is a number."""
    TRIED["novacore.token_expiry"] += 1
    expiry = novacore.token_expiry(token)
    assert expiry is None or isinstance(expiry, float)


# --- TotalGuard -------------------------------------------------------------------------------

readings = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1e9, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    ),
    max_size=60,
)


@FUZZ
@given(readings, st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)))
def test_total_guard_never_goes_back(
    items: list[tuple[float, float | None]], seed: float | None
) -> None:
    """The applied value only decreases through a confirmed reset: a lower reading, newer than a
    first lower one (a candidate) and not below it, after the candidate was rejected."""
    TRIED["TotalGuard"] += 1
    guard = TotalGuard()
    guard.seed(seed, None)
    candidate: tuple[float, float | None] | None = None
    for value, timestamp in items:
        before, before_ts = guard.value, guard.timestamp
        applied = guard.accept(value, timestamp)
        if applied:
            assert guard.value == value
        else:
            assert guard.value == before
        if before is not None and guard.value is not None and guard.value < before:
            # a reset: confirmed by an earlier low reading that was rejected
            assert candidate is not None
            assert value >= candidate[0]
            assert value < before * RESET_FRACTION
            assert guard.resets >= 1
        stale = timestamp is not None and before_ts is not None and timestamp <= before_ts
        if before is not None and stale:
            assert not applied
        if not applied and not stale and before is not None and value < before * RESET_FRACTION:
            candidate = (value, timestamp)
        elif applied:
            candidate = None
