"""Entity descriptions: what a value becomes in Home Assistant (shared by both sources).

The Novacore field tables are in `novacore/descriptions.py`, the Ainsite registers in
`ainsite/descriptions.py`; this module holds the description classes and the generic description
of a field no table knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import re
from typing import ClassVar, Final

from homeassistant.components.binary_sensor import BinarySensorEntityDescription
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    Platform,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)

UNKNOWN_STATE: Final = ""
"""The value of a text point whose last text was not understood: shown as unknown."""


def same(value: float) -> float:
    """Return the number as sent."""
    return value


def negate(value: float) -> float:
    """Return the number with its sign flipped (never -0.0)."""
    return 0.0 - value


def percent(value: float) -> float:
    """Turn a fraction (0..1) into per cent."""
    return value * 100.0


@dataclass(frozen=True, kw_only=True)
class PointDescriptionMixin:
    """How one field of a reading becomes the value of an entity."""

    value_fn: Callable[[float], float] = same
    """Turns the source's number into the entity's (the documented sign convention, scale)."""
    state_fn: Callable[[str | bool], str | bool | None] | None = None
    """For a text or boolean field: turns it into the entity's state; None: not understood."""
    signed: bool = False
    """The value follows the sign of its DER's power: the DER's wire factor applies to it."""
    guarded: bool = False
    """An ever-increasing total: stale readings and glitches never move it backwards."""
    placeholders: tuple[tuple[str, str], ...] = ()
    """Translation placeholders of the entity name."""


@dataclass(frozen=True, kw_only=True)
class EnergyTelemetrySensorEntityDescription(SensorEntityDescription, PointDescriptionMixin):
    """Describes a sensor fed by one field of a reading."""

    platform: ClassVar[Platform] = Platform.SENSOR


@dataclass(frozen=True, kw_only=True)
class EnergyTelemetryBinarySensorEntityDescription(
    BinarySensorEntityDescription, PointDescriptionMixin
):
    """Describes a binary sensor fed by one boolean field of a reading."""

    platform: ClassVar[Platform] = Platform.BINARY_SENSOR


type PointDescription = (
    EnergyTelemetrySensorEntityDescription | EnergyTelemetryBinarySensorEntityDescription
)


_SUFFIX_KWARGS: dict[str, dict[str, object]] = {
    "W": {
        "device_class": SensorDeviceClass.POWER,
        "native_unit_of_measurement": UnitOfPower.WATT,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "kW": {
        "device_class": SensorDeviceClass.POWER,
        "native_unit_of_measurement": UnitOfPower.KILO_WATT,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "Wh": {
        "device_class": SensorDeviceClass.ENERGY_STORAGE,
        "native_unit_of_measurement": UnitOfEnergy.WATT_HOUR,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "kWh": {
        "device_class": SensorDeviceClass.ENERGY_STORAGE,
        "native_unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "V": {
        "device_class": SensorDeviceClass.VOLTAGE,
        "native_unit_of_measurement": UnitOfElectricPotential.VOLT,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "A": {
        "device_class": SensorDeviceClass.CURRENT,
        "native_unit_of_measurement": UnitOfElectricCurrent.AMPERE,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "Hz": {
        "device_class": SensorDeviceClass.FREQUENCY,
        "native_unit_of_measurement": UnitOfFrequency.HERTZ,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "C": {
        "device_class": SensorDeviceClass.TEMPERATURE,
        "native_unit_of_measurement": UnitOfTemperature.CELSIUS,
        "state_class": SensorStateClass.MEASUREMENT,
    },
    "fract": {
        "native_unit_of_measurement": PERCENTAGE,
        "state_class": SensorStateClass.MEASUREMENT,
        "value_fn": percent,
    },
    "ms": {
        "device_class": SensorDeviceClass.DURATION,
        "native_unit_of_measurement": UnitOfTime.MILLISECONDS,
        "state_class": SensorStateClass.MEASUREMENT,
    },
}
_TOTAL_ENERGY_KWARGS: dict[str, object] = {
    "device_class": SensorDeviceClass.ENERGY,
    "state_class": SensorStateClass.TOTAL_INCREASING,
    "guarded": True,
}


def generic_description(field: str) -> EnergyTelemetrySensorEntityDescription:
    """Describe a field we have no rule for: disabled by default, unit from its suffix."""
    suffix = field.rsplit("_", 1)[-1]
    kwargs = dict(_SUFFIX_KWARGS.get(suffix, {"state_class": SensorStateClass.MEASUREMENT}))
    if suffix in ("Wh", "kWh") and field.lower().startswith("total"):
        kwargs.update(_TOTAL_ENERGY_KWARGS)
    key = re.sub(r"[^a-z0-9]+", "_", field.lower()).strip("_") or "value"
    return EnergyTelemetrySensorEntityDescription(
        key=key,
        translation_key="field",
        placeholders=(("field", field),),
        entity_registry_enabled_default=False,
        **kwargs,  # type: ignore[arg-type]
    )
