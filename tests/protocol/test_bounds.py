"""Nothing a peer sends grows the protocol layer without limit (docs/how-it-works.md, Limits)."""

from __future__ import annotations

import json

from custom_components.energy_telemetry.protocol.ainsite import parse_topic
from custom_components.energy_telemetry.protocol.common import (
    MAX_IGNORED_NAMES,
    MAX_NAME_LENGTH,
    OTHER_IGNORED,
    ParseStats,
)
from custom_components.energy_telemetry.protocol.novacore import parse_event
from custom_components.energy_telemetry.protocol.novacore.signs import MAX_DERS, SignEngine

LONG = "x" * (MAX_NAME_LENGTH + 1)


def test_long_names_are_ignored_and_counted_short() -> None:
    stats = ParseStats()
    (reading,) = parse_event(json.dumps({"type": "pv", "W": 1, f"{LONG}_W": 2}), stats)
    assert reading.values == {"W": 1.0}
    assert list(stats.ignored) == [LONG[:MAX_NAME_LENGTH]]


def test_long_identifiers_are_absent_and_a_long_type_word_is_no_type() -> None:
    stats = ParseStats()
    (reading,) = parse_event(
        json.dumps({"type": "pv", "der_id": LONG, "device_sn": LONG, "make": LONG, "W": 1}), stats
    )
    assert (reading.der_id, reading.device_sn, reading.make) == (None, None, None)
    assert parse_event(json.dumps({"type": LONG, "W": 1}), stats) == []
    assert stats.rejected == {"no_type": 1}


def test_ignored_names_are_counted_up_to_a_limit() -> None:
    stats = ParseStats()
    for index in range(MAX_IGNORED_NAMES + 20):
        stats.ignore(f"field{index}")
    assert len(stats.ignored) == MAX_IGNORED_NAMES + 1
    assert stats.ignored[OTHER_IGNORED] == 20


def test_a_topic_with_a_long_level_is_not_a_meter_topic() -> None:
    assert parse_topic("meters/outbound/c/s/m") == ("c", "s", "m")
    assert parse_topic(f"meters/outbound/c/s/{LONG}") is None
    assert parse_topic(f"meters/outbound/{LONG}/s/m") is None


def test_sign_evidence_is_kept_for_a_bounded_number_of_ders() -> None:
    engine = SignEngine()
    for index in range(MAX_DERS + 10):
        engine.observe(f"der-{index}", "battery", 1000.0 + index, 500.0, {"total_charge_Wh": 1.0})
    stored = engine.as_dict()["ders"]
    assert len(stored) == MAX_DERS
    assert "der-0" not in stored  # the quietest went first
    assert f"der-{MAX_DERS + 9}" in stored
    again = SignEngine()
    again.load({"version": 1, "ders": {f"d{index}": "inverted" for index in range(MAX_DERS + 5)}})
    assert len(again.as_dict()["ders"]) == MAX_DERS
