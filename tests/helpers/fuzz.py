"""Hypothesis strategies of mutated inputs of both services, shared by the property-based tests
of the parsers and the fuzzed payloads sent through running entries."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st

from chaos.fuzz_inputs import TEXT_SAMPLES, TIMESTAMP_SAMPLES, TYPE_WORDS, valid_v1, valid_v2

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
"""The settings of every property-based test."""

# --- values -------------------------------------------------------------------------------------

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


def encode(data: Any) -> bytes:
    """Return data as JSON bytes, NaN and infinities included."""
    return json.dumps(data, allow_nan=True).encode()


ainsite_inputs = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    mutated_ainsite().map(encode),
    mutated_ainsite().map(lambda d: encode(d).replace(b"{", b"{\xff", 1)),
    json_values.map(encode),
)


# --- Novacore -----------------------------------------------------------------------------------

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
