"""The entity descriptions against the translations, the icons and the parser's text fields."""

from __future__ import annotations

import json
import re

import pytest

from custom_components.energy_telemetry.ainsite.descriptions import (
    LAST_READING_DESCRIPTION,
    REGISTER_KINDS,
    register_description,
)
from custom_components.energy_telemetry.descriptions import (
    EnergyTelemetryBinarySensorEntityDescription,
    PointDescription,
)
from custom_components.energy_telemetry.novacore.descriptions import (
    NOVACORE_FIELDS,
    SIGN_SWAPPED_FIELDS,
    novacore_description,
    wire_field,
)
from custom_components.energy_telemetry.novacore.home import HOME_ENERGY, HOME_POWER
from custom_components.energy_telemetry.protocol.novacore.readings import TEXT_FIELDS
from tests.helpers.repository import INTEGRATION

STRINGS = json.loads((INTEGRATION / "strings.json").read_text())
ICONS = json.loads((INTEGRATION / "icons.json").read_text())
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _all_descriptions() -> list[PointDescription]:
    found: list[PointDescription] = []
    numbered = ("mppt1_V", "mppt1_A", "mppt1_W", "L1_V", "L1_A", "L1_W", "read_time_ms")
    for der_type, fields in NOVACORE_FIELDS.items():
        found.extend(fields.values())
        found.extend(novacore_description(der_type, field) for field in numbered)
    found.append(novacore_description("gadget", "x_W"))
    found.append(LAST_READING_DESCRIPTION)
    found.extend((HOME_POWER, HOME_ENERGY))
    found.extend(
        register_description(r, {"kind": kind}) for r in ("2", "9") for kind in REGISTER_KINDS
    )
    return found


def _platform(description: PointDescription) -> str:
    return str(description.platform)


@pytest.mark.parametrize("description", _all_descriptions(), ids=lambda d: d.key)
def test_translation_and_icon(description: PointDescription) -> None:
    """A translation key has a name (with the placeholders the description fills) and an icon."""
    key = description.translation_key
    if key is None:
        assert description.device_class is not None, description.key  # named by its class
        return
    entry = STRINGS["entity"][_platform(description)][key]
    assert set(PLACEHOLDER.findall(entry["name"])) == {name for name, _ in description.placeholders}
    if key != "field":  # the generic fields show their own name and no icon of their own
        assert key in ICONS["entity"][_platform(description)], key
    options = getattr(description, "options", None)
    if options:
        assert set(entry["state"]) == set(options), key
        assert not {"unavailable", "unknown"} & set(options)
        icon = ICONS["entity"][_platform(description)][key]
        assert set(icon.get("state", {})) <= set(options)


def test_every_translation_is_used() -> None:
    used = {
        (_platform(description), description.translation_key)
        for description in _all_descriptions()
        if description.translation_key
    }
    for platform, entries in STRINGS["entity"].items():
        for key in entries:
            assert (platform, key) in used, (platform, key)


def test_parser_text_fields_are_the_text_descriptions() -> None:
    """The parser keeps exactly the fields that have a text description, with the right type."""
    for der_type, fields in NOVACORE_FIELDS.items():
        texts = {field for field, d in fields.items() if d.state_fn is not None}
        assert texts == set(TEXT_FIELDS.get(der_type, {})), der_type
        for field in texts:
            is_binary = isinstance(fields[field], EnergyTelemetryBinarySensorEntityDescription)
            assert (TEXT_FIELDS[der_type][field] is bool) is is_binary, field


def test_fields_sharing_a_key_share_the_entity() -> None:
    """Two fields of one type feeding one point describe the same entity (unit, class)."""
    for der_type, fields in NOVACORE_FIELDS.items():
        by_key: dict[str, list[PointDescription]] = {}
        for description in fields.values():
            by_key.setdefault(description.key, []).append(description)
        for key, shared in by_key.items():
            first = shared[0]
            for other in shared[1:]:
                for attribute in (
                    "device_class",
                    "native_unit_of_measurement",
                    "state_class",
                    "entity_category",
                    "translation_key",
                    "signed",
                    "guarded",
                ):
                    assert getattr(other, attribute) == getattr(first, attribute), (
                        der_type,
                        key,
                        attribute,
                    )


def test_signed_values_and_swapped_limits() -> None:
    """Powers, currents and limits follow their DER's sign; only limits trade places."""
    for der_type, fields in NOVACORE_FIELDS.items():
        for field, description in fields.items():
            should = field in ("W", "A", "dc_W", "dc_A", "upper_limit_W", "lower_limit_W")
            assert description.signed is should, (der_type, field)
        assert (wire_field(der_type, "upper_limit_W", -1) == "lower_limit_W") is (
            der_type in SIGN_SWAPPED_FIELDS
        )
        assert wire_field(der_type, "upper_limit_W", 1) == "upper_limit_W"
        assert wire_field(der_type, "W", -1) == "W"
    assert novacore_description("meter", "L2_A").signed
    assert not novacore_description("meter", "L2_V").signed
    assert novacore_description("pv", "mppt3_W").signed
    assert not novacore_description("gadget", "W").signed


@pytest.mark.parametrize(
    ("der_type", "field", "wire", "shown"),
    [
        ("pv", "W", -1500.0, 1500.0),  # producing
        ("battery", "W", 1500.0, -1500.0),  # charging
        ("meter", "W", 1500.0, 1500.0),  # importing
        ("ev_charger", "W", 1500.0, 1500.0),  # charging the vehicle
        ("inverter", "W", -1500.0, 1500.0),  # AC output
        ("inverter", "L2_W", -500.0, 500.0),
        ("ev_charger", "L2_A", -2.0, -2.0),  # vehicle-to-grid
        ("pv", "lower_limit_W", -6000.0, 6000.0),
        ("battery", "upper_limit_W", 5000.0, 5000.0),
        ("battery", "lower_limit_W", -4000.0, 4000.0),
        ("battery", "capacity_Wh", 13500.0, 13.5),
        ("ev_charger", "vehicle_soc_fract", 0.5, 50.0),
    ],
)
def test_documented_conversions(der_type: str, field: str, wire: float, shown: float) -> None:
    assert novacore_description(der_type, field).value_fn(wire) == shown


def test_no_negative_zero() -> None:
    value = novacore_description("pv", "W").value_fn(0.0)
    assert str(value) == "0.0"
