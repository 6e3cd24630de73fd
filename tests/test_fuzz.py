"""Property-based tests of every parser: never an exception, never a wrong value, every rejection
counted; and a sample of fuzzed payloads through the running integration."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import json
import logging
import math
import random
import re
from typing import Any
import warnings

from homeassistant.core import HomeAssistant
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from chaos.fuzz_inputs import (
    DER_IDS,
    TEXT_SAMPLES,
    TIMESTAMP_SAMPLES,
    TYPE_WORDS,
    WIRE_FIELDS,
    generated_readings,
    valid_v1,
    valid_v2,
)
from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.protocol import ainsite, novacore
from custom_components.energy_telemetry.protocol.ainsite import readings as ainsite_readings
from custom_components.energy_telemetry.protocol.common import ParseStats
from custom_components.energy_telemetry.protocol.novacore.readings import TEXT_FIELDS
from custom_components.energy_telemetry.totals import RESET_FRACTION, TotalGuard
from simulator.wire import device_sn_of, to_legacy

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
    st.sampled_from(TIMESTAMP_SAMPLES),
    st.datetimes().map(lambda moment: moment.isoformat()),
    json_scalars,
)


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
        "missing_version": _encode({"value": 1}),
        "unknown_version": _encode({**valid_v1(), "smarteo_payload_schema_version": 99}),
        "non_finite_value": _encode(valid_v1(math.nan)),
        "absurd_value": _encode(valid_v1(1e300)),
        "invalid_value": _encode(valid_v1("abc")),
        "timestamp_too_old": _encode(valid_v1(ts="1970-01-01T00:00:00Z")),
        "timestamp_in_future": _encode(valid_v1(ts="9999-01-01T00:00:00Z")),
        "invalid_timestamp": _encode(valid_v1(ts="yesterday")),
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


TEXT_VALUES = st.one_of(
    st.sampled_from(TEXT_SAMPLES),
    st.text(max_size=20),
    st.booleans(),
    json_scalars,
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)


@st.composite
def mutated_event(draw: st.DrawFn) -> Any:
    """A valid reading of any wire variant (maybe enveloped or in a list), mutated."""
    base: dict[str, Any] = {
        "type": draw(st.sampled_from([*TYPE_WORDS, "", "PV", "ev"])),
        "der_id": "der-1",
        "W": -1500,
        "total_generation_Wh": 150000,
        "timestamp": draw(st.one_of(st.just(1709740800000), timestamps)),
    }
    for key in draw(st.lists(st.sampled_from(["status", "protocol", "control_mode"]), max_size=3)):
        base[key] = draw(TEXT_VALUES)
    if draw(st.booleans()):
        base["plug_connected"] = draw(st.one_of(st.booleans(), NUMBERS, TEXT_VALUES))
    if draw(st.booleans()):
        base["mppts"] = draw(
            st.one_of(
                st.lists(
                    st.dictionaries(
                        st.sampled_from(["V", "A", "W", "x"]),
                        st.one_of(NUMBERS, json_scalars),
                        max_size=4,
                    ),
                    max_size=4,
                ),
                json_values,
            )
        )
    for key in ("upper_limit_W", "lower_limit_W"):
        if draw(st.booleans()):
            base[key] = draw(st.one_of(st.lists(NUMBERS, max_size=4), NUMBERS, json_values))
    for key in list(base):
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del base[key]
        elif action == "replace":
            base[key] = draw(json_values)
    base.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3)))
    shape = draw(st.sampled_from(["flat", "envelope", "list", "nested"]))
    if shape == "envelope":
        return {"data": base}
    if shape == "list":
        return [base, draw(json_values)]
    if shape == "nested":
        # The data-models' complete shape: type and serial outside, the rest split in two.
        state = {key: value for key, value in base.items() if key != "type"}
        spec = {
            key: state.pop(key) for key in list(state) if key.endswith("_W") and draw(st.booleans())
        }
        nested: dict[str, Any] = {"type": base.get("type"), "device_sn": "SN1"}
        nested["spec"] = draw(st.one_of(st.just(spec), json_values))
        nested["state"] = draw(st.one_of(st.just(state), st.just(state), json_values))
        return nested
    return base


novacore_inputs = st.one_of(
    st.text(max_size=200),
    mutated_event().map(lambda event: json.dumps(event, allow_nan=True)),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    st.just("[" * 100000),
)


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

_EXPECTED: dict[str, dict[str, tuple[str, Callable[[float], float]]]] = {
    # The public contract, written out: wire field -> (entity key, Home Assistant's value).
    "pv": {
        "W": ("power", lambda v: 0.0 - v),
        "mppt1_V": ("mppt1_voltage", float),
        "mppt1_A": ("mppt1_current", lambda v: 0.0 - v),
        "mppt1_W": ("mppt1_power", lambda v: 0.0 - v),
        "mppt2_A": ("mppt2_current", lambda v: 0.0 - v),
        "lower_limit_W": ("curtailment_limit", lambda v: 0.0 - v),
        "rated_power_W": ("rated_power", float),
        "installed_power_W": ("installed_power", float),
    },
    "battery": {
        "W": ("power", lambda v: 0.0 - v),
        "A": ("current", lambda v: 0.0 - v),
        "V": ("voltage", float),
        "SoC_nom_fract": ("state_of_charge", lambda v: v * 100.0),
        "upper_limit_W": ("charge_limit", float),
        "lower_limit_W": ("discharge_limit", lambda v: 0.0 - v),
        "capacity_kWh": ("capacity", float),
        "min_soc_fract": ("min_state_of_charge", lambda v: v * 100.0),
    },
    "meter": {
        "W": ("power", float),
        "Hz": ("frequency", float),
        "L1_V": ("l1_voltage", float),
        "L1_A": ("l1_current", float),
        "L1_W": ("l1_power", float),
        "L3_W": ("l3_power", float),
    },
    "inverter": {
        "W": ("power", lambda v: 0.0 - v),
        "VA": ("apparent_power", float),
        "VAR": ("reactive_power", float),
        "dc_W": ("dc_power", lambda v: 0.0 - v),
        "dc_A": ("dc_current", lambda v: 0.0 - v),
        "L2_W": ("l2_power", lambda v: 0.0 - v),
        "heatsink_C": ("heatsink_temperature", float),
        "rated_power_VA": ("rated_apparent_power", float),
        "phases": ("phases", float),
    },
    "v2x_charger": {
        "W": ("power", float),
        "A": ("current", float),
        "dc_W": ("dc_power", float),
        "vehicle_soc_fract": ("vehicle_state_of_charge", lambda v: v * 100.0),
        "max_charge_power_W": ("max_charge_power", float),
        "capacity_Wh": ("vehicle_capacity", lambda v: v / 1000.0),
        "L1_A": ("l1_current", float),
    },
}
_STATUS = {"charging": "charging", "unavailable": "not_ready", "sleeping": "sleeping"}


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
    # Without a timestamp: a fuzzed meter reading with a later one cannot make it look stale.
    sse_samples.append(json.dumps({"type": "meter", "der_id": "der-meter", "W": 7}))
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
        attributes = state.attributes
        if (
            state.state in ("unknown", "unavailable")
            or attributes.get("device_class") == "timestamp"
        ):
            continue
        if attributes.get("device_class") == "enum":
            assert state.state in attributes["options"], (state.entity_id, state.state)
        elif "unit_of_measurement" in attributes or "state_class" in attributes:
            assert math.isfinite(float(state.state)), (state.entity_id, state.state)
        else:  # text (an EV charger's protocol)
            assert 0 < len(state.state) <= 255
    for state in hass.states.async_all("binary_sensor"):
        assert state.state in ("on", "off", "unknown", "unavailable"), state
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    assert await hass.config_entries.async_unload(nova_entry.entry_id)


async def test_generated_readings_give_the_right_states(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Generated readings of every DER type, flat or in the data-models' shape, through a
    running entry: every entity shows what the last applied reading of its DER says."""
    from homeassistant.helpers import entity_registry as er

    from .test_novacore_ders import DEVICES
    from .test_novacore_stream import send, setup_fast

    novacore.server.set_devices(SITE_ID, DEVICES)
    entry = await setup_fast(hass, novacore)
    samples = generated_readings(150, random.Random(7))
    TRIED["integration (generated DER readings)"] += len(samples)
    expected: dict[tuple[str, str, str], Any] = {}
    last: dict[str, int] = {}
    for index, reading in enumerate(samples):
        kind, der = reading["type"], reading["der_id"]
        # Mostly newer and newer; every fifth one older than the DER's last: it must change nothing.
        reading["timestamp"] = 1_709_740_800_000 + (index if index % 5 else index - 50) * 1000
        # Types whose documented wire is also the legacy one's signs may go nested.
        if kind in ("pv", "inverter", "v2x_charger") and index % 2:
            data = to_legacy(reading, device_sn_of(DEVICES, der))
        else:
            data = reading
        await send(hass, novacore, entry, data)
        if reading["timestamp"] <= last.get(der, 0):
            continue  # older than the last applied one: dropped, nothing changes
        last[der] = reading["timestamp"]
        for field, raw in reading.items():
            if field in _EXPECTED[kind]:
                key, convert = _EXPECTED[kind][field]
                expected[(der, "sensor", key)] = str(convert(raw))
        if kind == "v2x_charger":
            expected[(der, "sensor", "charge_limit")] = str(float(reading["upper_limit_W"][2]))
            expected[(der, "sensor", "status")] = _STATUS[reading["status"]]
            plug = "on" if reading["plug_connected"] else "off"
            expected[(der, "binary_sensor", "plug_connected")] = plug
    registry = er.async_get(hass)
    assert len(expected) > 35  # most of the 41 entities the fields above feed
    for (der, domain, key), state in expected.items():
        entity_id = registry.async_get_entity_id(domain, DOMAIN, f"{SITE_ID}_{der}_{key}")
        assert entity_id is not None, (der, key)
        shown = hass.states.get(entity_id)
        assert shown is not None
        if domain == "sensor" and state not in _STATUS.values():
            # Home Assistant writes a float with up to 15 significant digits.
            assert math.isclose(float(shown.state), float(state), rel_tol=1e-14, abs_tol=1e-300), (
                der,
                key,
                shown.state,
                state,
            )
        else:
            assert shown.state == state, (der, key)
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        or (r.name.startswith("custom_components.") and r.levelno >= logging.WARNING)
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)
