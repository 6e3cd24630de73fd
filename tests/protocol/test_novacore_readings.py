"""The Novacore event parser on every wire variant Sourceful's sources show (no Home Assistant)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from custom_components.energy_telemetry.protocol import novacore
from custom_components.energy_telemetry.protocol.common import (
    MAX_IGNORED_NAMES,
    OTHER_IGNORED,
    ParseStats,
)
from custom_components.energy_telemetry.protocol.novacore import (
    MAX_LOGGED_CHARS,
    DerReading,
    normalise_type,
    parse_event,
)
from custom_components.energy_telemetry.protocol.novacore.readings import (
    MAX_MPPTS,
    MAX_TEXT_LENGTH,
    TEXT_FIELDS,
)
from tests.helpers.site import TS

TS_S = TS // 1000


def _parse(data: Any) -> tuple[list[DerReading], ParseStats]:
    stats = ParseStats()
    return parse_event(data if isinstance(data, str) else json.dumps(data), stats), stats


def _one(data: Any) -> tuple[DerReading, ParseStats]:
    readings, stats = _parse(data)
    assert len(readings) == 1, stats
    return readings[0], stats


# --- shapes of an event -------------------------------------------------------------------------


def test_parse_flat_reading() -> None:
    readings, stats = _parse({"type": "pv", "make": "Sungrow", "W": -1500, "timestamp": TS})
    assert readings == [DerReading("pv", None, "Sungrow", float(TS), {"W": -1500.0})]
    assert stats.accepted == 1
    assert not stats.rejected


@pytest.mark.parametrize("envelope", ["data", "telemetry", "reading", "payload"])
def test_parse_envelope(envelope: str) -> None:
    """The reading may sit inside an envelope; outer keys (a DER id) are kept."""
    readings, stats = _parse(
        {"event": "telemetry", "der_id": "der-bat", envelope: {"type": "battery", "W": 5}}
    )
    assert readings == [DerReading("battery", "der-bat", None, None, {"W": 5.0})]
    assert stats.accepted == 1


def test_parse_list_of_readings() -> None:
    readings, stats = _parse(
        [
            {"type": "pv", "W": -1, "timestamp": TS},
            {"type": "meter", "W": 2, "timestamp": TS},
            "junk",
            {"W": 3},
        ]
    )
    assert [(r.der_type, r.values) for r in readings] == [
        ("pv", {"W": -1.0}),
        ("meter", {"W": 2.0}),
    ]
    assert stats.accepted == 2
    assert stats.rejected == {"not_an_object": 1, "no_type": 1}


@pytest.mark.parametrize(
    ("item", "der_id"),
    [
        ({"der_id": "der-1"}, "der-1"),
        ({"derId": "der-2"}, "der-2"),
        ({"der": "der-3"}, "der-3"),
        ({"der_id": 42}, "42"),
        ({"der_id": "", "derId": "der-4"}, "der-4"),
        ({"der_id": None}, None),
        ({"der_id": True}, None),
        ({}, None),
    ],
)
def test_parse_der_id(item: dict[str, Any], der_id: str | None) -> None:
    readings, _ = _parse({"type": "pv", "W": 1, **item})
    assert readings[0].der_id == der_id
    assert readings[0].values == {"W": 1.0}  # the id is never a value


# --- type words -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("pv", "pv"),
        ("solar", "pv"),
        ("Solar", "pv"),
        (" Solar ", "pv"),
        ("v2x_charger", "ev_charger"),
        ("ev_port", "ev_charger"),
        ("charger", "ev_charger"),
        ("EV_Port", "ev_charger"),
        ("ev_charger", "ev_charger"),
        ("EV_Charger", "ev_charger"),
        ("inverter", "inverter"),
        ("Inverter", "inverter"),
        ("battery", "battery"),
        ("Battery", "battery"),
        ("meter", "meter"),
        ("heat_pump", "heat_pump"),
    ],
)
def test_type_words(word: str, expected: str) -> None:
    """Every documented word of one kind of DER gives one type, in readings and device lists."""
    reading, _ = _one({"type": word, "W": 1})
    assert reading.der_type == expected
    assert normalise_type(word) == expected


def test_type_under_der_type() -> None:
    """The type may come as `der_type`."""
    reading, _ = _one({"der_type": "solar", "W": 1})
    assert reading.der_type == "pv"


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (TS, float(TS)),
        (TS_S, float(TS)),  # seconds
        (TS_S + 0.25, TS + 250.0),
        (float(TS), float(TS)),
        ("2024-03-06T16:00:00Z", float(TS)),
        ("2024-03-06T16:00:00.250Z", TS + 250.0),
        ("2024-03-06T16:00:00.250000000Z", TS + 250.0),  # Go's RFC3339Nano
        ("2024-03-06t16:00:00z", float(TS)),  # RFC 3339 allows lower case
        ("2024-03-06T17:30:00+01:30", float(TS)),
        ("2024-03-06T17:00:00.500+01:00", TS + 500.0),
        ("2024-03-06T16:00:00", None),  # no zone: ambiguous
        ("2024-03-06T16:00:00Z" + " " * 100, None),  # too long to be a time
        ("yesterday", None),
        (True, None),
        (None, None),
        ([TS], None),
        pytest.param(10**400, None, id="huge-int"),
    ],
)
def test_timestamp_forms(timestamp: Any, expected: float | None) -> None:
    """Epoch milliseconds or seconds and RFC 3339 strings with a zone give the same
    milliseconds; a time that cannot be read leaves the reading without one."""
    reading, stats = _one({"type": "meter", "W": 1, "timestamp": timestamp})
    assert reading.timestamp == expected
    assert stats.accepted == 1


def test_parse_rejects_a_timestamp_far_ahead_of_the_clock() -> None:
    """More than a day ahead it is rejected (taken as is, it would make every later reading of
    its DER look older); within a day it is accepted, in any of its forms."""
    now = time.time()
    hour, day = 3_600_000, 86_400_000
    for timestamp in (
        int(now * 1000) + day + hour,
        now + 2 * 86400.0,  # seconds
        "2999-01-01T00:00:00Z",
        4_102_444_800_000,  # 2100
    ):
        readings, stats = _parse({"type": "meter", "W": 1, "timestamp": timestamp})
        assert readings == [], timestamp
        assert stats.rejected == {"timestamp_in_future": 1}
    readings, stats = _parse({"type": "meter", "W": 1, "timestamp": int(now * 1000) + day - hour})
    assert len(readings) == 1
    assert stats.rejected == {}
    # In a list, only the reading from the future is rejected.
    readings, stats = _parse(
        [
            {"type": "meter", "W": 1, "timestamp": 4_102_444_800_000},
            {"type": "pv", "W": -1, "timestamp": TS},
        ]
    )
    assert [reading.der_type for reading in readings] == ["pv"]
    assert (stats.accepted, stats.rejected) == (1, {"timestamp_in_future": 1})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_parse_non_finite_timestamp(literal: str) -> None:
    readings, _ = _parse(f'{{"type": "meter", "W": 1, "timestamp": {literal}}}')
    assert readings[0].timestamp is None


def test_read_time_ms_is_a_duration() -> None:
    """`read_time_ms` (FTW puts epoch ms there) is a value, never the reading's time."""
    reading, _ = _one({"type": "pv", "W": -1, "read_time_ms": TS})
    assert reading.timestamp is None
    assert reading.values["read_time_ms"] == TS
    reading, _ = _one(
        {"type": "pv", "W": -1, "timestamp": "2024-03-06T16:00:01Z", "read_time_ms": 7}
    )
    assert reading.timestamp == TS + 1000.0
    assert reading.values == {"W": -1.0, "read_time_ms": 7.0}


# --- values -------------------------------------------------------------------------------------


def test_parse_drops_unusable_values() -> None:
    """Bools, NaN, infinities, absurd magnitudes, strings and nested objects are not values."""
    data = (
        '{"type": "battery", "W": 1200, "V": 51.5, "on": true, "off": false, "nan_W": NaN,'
        ' "inf_W": Infinity, "ninf_W": -Infinity, "huge_W": 1e16, "huge_int_W": 1' + "0" * 400 + ","
        ' "name": "BYD", "nested": {"W": 5}, "list": [1], "none": null, "timestamp": 1709740800000}'
    )
    readings, stats = _parse(data)
    assert readings[0].values == {"W": 1200.0, "V": 51.5}
    assert stats.accepted == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        # deeper than the JSON decoder's recursion limit
        pytest.param("[" * 100_000, "invalid_json", id="deeply-nested"),
        ("42", "not_an_object"),
        ('"a string"', "not_an_object"),
        ("null", "not_an_object"),
        ('{"W": 1}', "no_type"),
        ('{"type": "", "W": 1}', "no_type"),
        ('{"type": 5, "W": 1}', "no_type"),
        ('{"type": "pv", "timestamp": 1709740800000}', "no_values"),
        ('{"type": "pv", "W": "1500"}', "no_values"),
        ('{"type": "pv", "W": true}', "no_values"),
    ],
)
def test_parse_rejects(data: str, reason: str) -> None:
    readings, stats = _parse(data)
    assert readings == []
    assert stats.accepted == 0
    assert stats.rejected == {reason: 1}


def test_parse_stats_count_across_events(caplog: pytest.LogCaptureFixture) -> None:
    """One ParseStats adds up; the debug log of a dropped event is cut short."""
    stats = ParseStats()
    caplog.set_level(logging.DEBUG, logger=novacore.__name__)
    parse_event('{"type": "pv", "W": 1}', stats)
    parse_event("x" * 10_000, stats)
    parse_event("x", stats)
    parse_event('[{"type": "pv", "W": 2}, 7]', stats)
    assert stats.accepted == 2
    assert stats.rejected == {"invalid_json": 2, "not_an_object": 1}
    dropped = [r.getMessage() for r in caplog.records if "Dropped" in r.getMessage()]
    assert len(dropped) == 3
    assert all(len(message) < MAX_LOGGED_CHARS + 50 for message in dropped)


# --- the data-models' complete shape ------------------------------------------------------------

NESTED_BATTERY = {
    "type": "battery",
    "device_sn": "SN12345",
    "spec": {
        "rated_power_W": 5000,
        "capacity_kWh": 10.5,
        "min_soc_fract": 0.1,
        "max_soc_fract": 0.95,
        "enabled": True,
        "controllable": True,
    },
    "state": {
        "W": 1200,
        "V": 51.2,
        "A": 23.4,
        "SoC_nom_fract": 0.5,
        "upper_limit_W": 5000,
        "lower_limit_W": -4000,
        "timestamp": TS,
    },
}


def test_nested_shape() -> None:
    """Telemetry from `state`, configuration from `spec`; time and serial read too."""
    reading, stats = _one(NESTED_BATTERY)
    assert reading == DerReading(
        "battery",
        None,
        None,
        float(TS),
        {
            "rated_power_W": 5000.0,
            "capacity_kWh": 10.5,
            "min_soc_fract": 0.1,
            "max_soc_fract": 0.95,
            "W": 1200.0,
            "V": 51.2,
            "A": 23.4,
            "SoC_nom_fract": 0.5,
            "upper_limit_W": 5000.0,
            "lower_limit_W": -4000.0,
        },
        "SN12345",
    )
    # Undocumented booleans are counted, not shown.
    assert stats.ignored == {"enabled": 1, "controllable": 1}
    assert stats.accepted == 1


def test_nested_equals_flat() -> None:
    """The same DER in the flat and the nested shape gives the same values."""
    flat, _ = _one(
        {
            "type": "battery",
            "device_sn": "SN12345",
            "timestamp": TS,
            **{k: v for k, v in NESTED_BATTERY["spec"].items() if not isinstance(v, bool)},
            **{k: v for k, v in NESTED_BATTERY["state"].items() if k != "timestamp"},
        }
    )
    nested, _ = _one(NESTED_BATTERY)
    assert flat == nested


def test_nested_precedence_and_placement() -> None:
    """State wins over spec over the outer object; id, make and time may sit in `state`."""
    reading, _ = _one(
        {
            "type": "pv",
            "W": -1,
            "spec": {"W": -2, "installed_power_W": 8000},
            "state": {
                "W": -3,
                "der_id": "der-9",
                "make": "SMA",
                "timestamp": "2024-03-06T16:00:00Z",
            },
        }
    )
    assert reading.values == {"W": -3.0, "installed_power_W": 8000.0}
    assert (reading.der_id, reading.make, reading.timestamp) == ("der-9", "SMA", float(TS))
    # The outer id and time win over the state's.
    reading, _ = _one(
        {"type": "pv", "der_id": "der-1", "timestamp": TS, "state": {"der_id": "x", "W": -1}}
    )
    assert (reading.der_id, reading.timestamp) == ("der-1", float(TS))


@pytest.mark.parametrize(
    ("device_sn", "expected"), [("SN1", "SN1"), (12345, "12345"), ("", None), (True, None)]
)
def test_device_sn(device_sn: Any, expected: str | None) -> None:
    reading, _ = _one({"type": "meter", "device_sn": device_sn, "W": 1})
    assert reading.device_sn == expected
    assert reading.values == {"W": 1.0}  # never a value


def test_nested_objects_that_are_not_objects() -> None:
    """`spec` or `state` that are not objects are counted and ignored; the rest is read."""
    reading, stats = _one({"type": "meter", "W": 5, "state": "active", "spec": [1]})
    assert reading.values == {"W": 5.0}
    assert stats.ignored == {"state": 1, "spec": 1}
    readings, stats = _parse({"type": "meter", "state": {}, "spec": {}})
    assert readings == []
    assert stats.rejected == {"no_values": 1}


# --- MPPT arrays --------------------------------------------------------------------------------


def test_mppts_array_gives_the_flat_fields() -> None:
    """`mppts: [{V, A, W}]` (any subset) gives mppt{n}_V/_A/_W, n from 1."""
    array, stats = _one(
        {
            "type": "solar",
            "W": -2500,
            "mppts": [{"V": 400, "A": -6.25, "W": -2500}, {"V": 380}, {"W": -3}, {}],
        }
    )
    flat, _ = _one(
        {
            "type": "pv",
            "W": -2500,
            "mppt1_V": 400,
            "mppt1_A": -6.25,
            "mppt1_W": -2500,
            "mppt2_V": 380,
            "mppt3_W": -3,
        }
    )
    assert array.values == flat.values
    assert array.der_type == "pv"
    assert not stats.ignored


def test_mppts_array_in_state_and_bad_entries() -> None:
    """Entries that are not objects or values that are not numbers are counted."""
    reading, stats = _one(
        {
            "type": "pv",
            "state": {"mppt": [{"V": "400", "A": -1}, 7, {"V": 390}]},
        }
    )
    assert reading.values == {"mppt1_A": -1.0, "mppt3_V": 390.0}
    assert stats.ignored == {"mppts.V": 1, "mppts": 1}
    _, stats = _one({"type": "pv", "W": -1, "mppts": {"V": 1}})
    assert stats.ignored == {"mppts": 1}


def test_mppts_array_is_bounded() -> None:
    reading, stats = _one({"type": "pv", "mppts": [{"V": n} for n in range(MAX_MPPTS + 5)]})
    assert len(reading.values) == MAX_MPPTS
    assert reading.values[f"mppt{MAX_MPPTS}_V"] == MAX_MPPTS - 1
    assert stats.ignored == {"mppts": 5}


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upper", "lower", "values", "ignored"),
    [
        (
            [1380, 0, 11000],
            [-11000, 0, -1380],
            {"upper_limit_W": 11000.0, "lower_limit_W": -11000.0},
            {},
        ),
        (7400, -7400, {"upper_limit_W": 7400.0, "lower_limit_W": -7400.0}, {}),
        ([], ["x", 0, 1], {}, {"upper_limit_W": 1, "lower_limit_W": 1}),
        (list(range(20)), [None, 0, 1], {}, {"upper_limit_W": 1, "lower_limit_W": 1}),
    ],
)
def test_limit_arrays(
    upper: Any, lower: Any, values: dict[str, float], ignored: dict[str, int]
) -> None:
    """A charger's [min, 0, max] / [-max, 0, -min] arrays give their largest magnitude."""
    reading, stats = _one(
        {"type": "v2x_charger", "W": 1, "upper_limit_W": upper, "lower_limit_W": lower}
    )
    assert reading.values == {"W": 1.0, **values}
    assert stats.ignored == ignored


# --- text and booleans ------------------------------------------------------------------------


def test_documented_texts_of_an_ev_charger() -> None:
    reading, stats = _one(
        {
            "type": "v2x_charger",
            "status": "charging",
            "protocol": "ISO15118-20",
            "control_mode": "dynamic",
            "plug_connected": True,
            "W": 7400,
        }
    )
    assert reading.texts == {
        "status": "charging",
        "protocol": "ISO15118-20",
        "control_mode": "dynamic",
        "plug_connected": True,
    }
    assert reading.values == {"W": 7400.0}
    assert not stats.ignored


def test_texts_alone_make_a_reading() -> None:
    reading, _ = _one({"type": "ev_port", "status": "sleeping"})
    assert reading.values == {}
    assert reading.texts == {"status": "sleeping"}


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        (1, {"plug_connected": True}),
        (0, {"plug_connected": False}),
        (0.0, {"plug_connected": False}),
    ],
)
def test_boolean_as_number(value: Any, texts: dict[str, bool]) -> None:
    reading, stats = _one({"type": "charger", "W": 0, "plug_connected": value})
    assert reading.texts == texts
    assert not stats.ignored


@pytest.mark.parametrize(
    "item",
    [
        {"plug_connected": "yes"},
        {"plug_connected": 2},
        {"status": True},
        {"status": 3},
        {"status": ""},
        {"protocol": "x" * (MAX_TEXT_LENGTH + 1)},
        {"control_mode": ["dynamic"]},
    ],
)
def test_texts_of_the_wrong_kind_are_ignored(item: dict[str, Any]) -> None:
    reading, stats = _one({"type": "v2x_charger", "W": 1, **item})
    assert reading.texts is None
    assert reading.values == {"W": 1.0}
    assert stats.ignored == dict.fromkeys(item, 1)


def test_texts_of_other_types_are_ignored() -> None:
    """Only an EV charger documents text fields; a battery's `status` is counted."""
    reading, stats = _one({"type": "battery", "W": 1, "status": "charging", "model": "LUNA"})
    assert reading.texts is None
    assert stats.ignored == {"status": 1, "model": 1}
    assert set(TEXT_FIELDS) == {"ev_charger"}


def test_structural_strings_are_not_counted() -> None:
    _, stats = _one(
        {
            "type": "meter",
            "der_type": "meter",
            "make": "Kamstrup",
            "device_sn": "KM-1",
            "der_id": "der-1",
            "event": "telemetry",
            "timestamp": "2024-03-06T16:00:00Z",
            "W": 1,
            "note": None,
        }
    )
    assert not stats.ignored


def test_unusable_numbers_are_counted() -> None:
    _, stats = _one('{"type": "meter", "W": 1, "A": NaN, "V": Infinity, "Hz": 1e400}')
    assert stats.ignored == {"A": 1, "V": 1, "Hz": 1}


def test_ignored_fields_log_once_and_stay_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """One debug line per new name; counts per name up to a bound, the rest together."""
    stats = ParseStats()
    caplog.set_level(logging.DEBUG, logger="custom_components.energy_telemetry.protocol.novacore")
    for _ in range(3):
        parse_event(json.dumps({"type": "meter", "W": 1, "model": "X"}), stats)
    assert stats.ignored == {"model": 3}
    lines = [r.getMessage() for r in caplog.records if "Ignored Novacore field" in r.getMessage()]
    assert len(lines) == 1
    assert "'model'" in lines[0]

    flood = {f"name{index}": "x" for index in range(MAX_IGNORED_NAMES + 50)}
    parse_event(json.dumps({"type": "meter", "W": 1, **flood}), stats)
    parse_event(json.dumps({"type": "meter", "W": 1, **flood}), stats)
    assert len(stats.ignored) == MAX_IGNORED_NAMES + 1
    assert stats.ignored[OTHER_IGNORED] == 2 * 51
    lines = [r.getMessage() for r in caplog.records if "Ignored Novacore field" in r.getMessage()]
    assert len(lines) == MAX_IGNORED_NAMES + 1  # the bound itself is logged once
