"""Property-based tests of every parser: never an exception, never a wrong value, every rejection
counted; and a sample of fuzzed payloads through the running integration."""

from __future__ import annotations

from collections import Counter
import json
import logging
import math
from typing import Any
import warnings

from homeassistant.core import HomeAssistant
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.energy_telemetry import ainsite, novacore
from custom_components.energy_telemetry.totals import RESET_FRACTION, TotalGuard

from .conftest import CUSTOMER_ID, SITE_ID, SUBSCRIPTION_ID, Novacore, wait_for

EXAMPLES = 400
TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_tried(request: pytest.FixtureRequest) -> Any:
    """Print how many inputs each property was tried with."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and TRIED:
        reporter.write_line("")
        reporter.write_line(
            f"fuzz inputs tried: {sum(TRIED.values())} "
            + ", ".join(f"{name}={count}" for name, count in sorted(TRIED.items()))
        )


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- values -----------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
timestamps = st.one_of(
    st.sampled_from(
        [
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
    ),
    st.datetimes().map(lambda moment: moment.isoformat()),
    json_scalars,
)


def valid_v1(value: Any = 123.456, ts: Any = "2024-11-21T12:00:00Z") -> dict[str, Any]:
    return {
        "smarteo_payload_schema_version": 1,
        "data_timestamp_utc": ts,
        "system_timestamp_utc": ts,
        "register_id": 2,
        "meter_reading": value,
    }


def valid_v2(value: Any = 0.25) -> dict[str, Any]:
    return {
        "smarteo_payload_schema_version": 2,
        "measurement_start_timestamp_utc": "2024-11-21T12:00:00Z",
        "measurement_end_timestamp_utc": "2024-11-21T12:01:00Z",
        "register_id": 12,
        "value": value,
    }


@st.composite
def mutated_ainsite(draw: st.DrawFn) -> dict[str, Any]:
    """A valid payload with keys removed, values replaced and new keys added."""
    payload = draw(st.sampled_from([valid_v1, valid_v2]))()
    for key in list(payload):
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace", "timestamp"]))
        if action == "drop":
            del payload[key]
        elif action == "replace":
            payload[key] = draw(json_values)
        elif action == "timestamp":
            payload[key] = draw(timestamps)
    payload.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    return payload


def _encode(data: Any) -> bytes:
    return json.dumps(data, allow_nan=True).encode()


ainsite_inputs = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    mutated_ainsite().map(_encode),
    mutated_ainsite().map(lambda d: _encode(d).replace(b"{", b"{\xff", 1)),
    json_values.map(_encode),
)


def _value_key(payload: dict[str, Any]) -> str:
    return "meter_reading" if payload.get("smarteo_payload_schema_version") in (1, "1") else "value"


# --- Ainsite ----------------------------------------------------------------------------------


@FUZZ
@given(ainsite_inputs)
def test_ainsite_parse_payload(payload: bytes | str) -> None:
    """Never raises; a reading's value is finite and the payload's own number."""
    TRIED["ainsite.parse_payload"] += 1
    stats = ainsite.ParseStats()
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
    assert reading.timestamp.timestamp() >= ainsite.MIN_TIMESTAMP


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
        "missing_version": _encode({"value": 1}),
        "unknown_version": _encode({**valid_v1(), "smarteo_payload_schema_version": 99}),
        "non_finite_value": _encode(valid_v1(math.nan)),
        "absurd_value": _encode(valid_v1(1e300)),
        "invalid_value": _encode(valid_v1("abc")),
        "timestamp_too_old": _encode(valid_v1(ts="1970-01-01T00:00:00Z")),
        "timestamp_in_future": _encode(valid_v1(ts="9999-01-01T00:00:00Z")),
        "invalid_timestamp": _encode(valid_v1(ts="yesterday")),
        "too_large": b" " * (ainsite.MAX_PAYLOAD_BYTES + 1),
    }
    stats = ainsite.ParseStats()
    with caplog.at_level(logging.DEBUG, logger=ainsite.__name__):
        for payload in samples.values():
            assert ainsite.parse_payload(payload, stats) is None
    assert dict(stats.rejected) == dict.fromkeys(samples, 1)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for reason in samples:
        assert any(f"({reason})" in line for line in lines), reason


# --- Novacore ---------------------------------------------------------------------------------


@st.composite
def mutated_event(draw: st.DrawFn) -> Any:
    """A valid reading (maybe enveloped or in a list) with mutated keys and values."""
    base: dict[str, Any] = {
        "type": draw(st.sampled_from(["pv", "battery", "meter", "solar", "", "PV", "ev"])),
        "der_id": "der-1",
        "W": -1500,
        "total_generation_Wh": 150000,
        "timestamp": 1709740800000,
    }
    for key in list(base):
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del base[key]
        elif action == "replace":
            base[key] = draw(json_values)
    base.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3)))
    shape = draw(st.sampled_from(["flat", "envelope", "list"]))
    if shape == "envelope":
        return {"data": base}
    if shape == "list":
        return [base, draw(json_values)]
    return base


novacore_inputs = st.one_of(
    st.text(max_size=200),
    mutated_event().map(lambda event: json.dumps(event, allow_nan=True)),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    st.just("[" * 100000),
)


def _items(data: Any) -> list[dict[str, Any]]:
    items = data if isinstance(data, list) else [data]
    flat = []
    for item in items:
        if not isinstance(item, dict):
            continue
        merged = item
        for key in ("data", "telemetry", "reading", "payload"):
            if isinstance(item.get(key), dict):
                merged = {**item, **item[key]}
                break
        flat.append(merged)
    return flat


@FUZZ
@given(novacore_inputs)
def test_novacore_parse_event(data: str) -> None:
    """Never raises; every value is finite and one of the event's own numbers."""
    TRIED["novacore.parse_event"] += 1
    stats = novacore.ParseStats()
    readings = novacore.parse_event(data, stats)
    assert stats.accepted == len(readings)
    if not readings:
        assert sum(stats.rejected.values()) >= 1 or json.loads(data) == []
        return
    sources = _items(json.loads(data))
    for reading in readings:
        assert reading.values
        for name, value in reading.values.items():
            assert math.isfinite(value)
            assert any(
                type(item.get(name)) in (int, float) and float(item[name]) == value
                for item in sources
            ), name
        if reading.timestamp is not None:
            assert math.isfinite(reading.timestamp)


def test_novacore_rejections_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Every rejection reason leaves a DEBUG line and a count."""
    stats = novacore.ParseStats()
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


# --- through the running integration ------------------------------------------------------------


async def test_fuzzed_payloads_through_the_integration(
    hass: HomeAssistant, mosquitto: Any, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Fuzzed MQTT payloads and SSE events reach the real handlers: states stay numeric."""
    from .test_ainsite_integration import setup_ainsite
    from .test_novacore_stream import setup_novacore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mqtt_samples = [ainsite_inputs.example() for _ in range(150)]
        sse_samples = [novacore_inputs.example() for _ in range(150)]
    mqtt_samples.append(_encode(valid_v1(5.0, "2024-11-21T12:00:00Z")))
    sse_samples.append(json.dumps({"type": "meter", "der_id": "der-meter", "W": 7, "timestamp": 1}))
    TRIED["integration (mqtt + sse)"] += len(mqtt_samples) + len(sse_samples)

    mqtt_entry = await setup_ainsite(hass, mosquitto)
    nova_entry = await setup_novacore(hass, novacore)
    topic = f"meters/outbound/{CUSTOMER_ID}/{SUBSCRIPTION_ID}/mtr-fuzz"
    await mosquitto.apublish_many([(topic, payload) for payload in mqtt_samples])
    for sample in sse_samples:
        await novacore.server.push(SITE_ID, sample)
    coordinator = mqtt_entry.runtime_data
    await wait_for(
        lambda: (
            coordinator.stats.accepted + sum(coordinator.stats.rejected.values())
            >= len(mqtt_samples)
        ),
        120,  # a hang guard
    )
    await wait_for(lambda: hass.states.get("sensor.grid_meter_power") is not None, 120)
    await hass.async_block_till_done()
    for state in hass.states.async_all("sensor"):
        if (
            state.state in ("unknown", "unavailable")
            or state.attributes.get("device_class") == "timestamp"
        ):
            continue
        assert math.isfinite(float(state.state)), (state.entity_id, state.state)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    assert await hass.config_entries.async_unload(nova_entry.entry_id)
