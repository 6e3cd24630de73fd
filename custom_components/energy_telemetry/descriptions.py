"""Sensor descriptions: what each field of a reading becomes in Home Assistant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import re

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)


def _same(value: float) -> float:
    return value


def _negate(value: float) -> float:
    return 0.0 - value  # never -0.0


def _percent(value: float) -> float:
    return value * 100.0


@dataclass(frozen=True, kw_only=True)
class EnergyTelemetrySensorEntityDescription(SensorEntityDescription):
    """Describes a sensor fed by one field of a reading."""

    value_fn: Callable[[float], float] = _same
    """Turns the source's number into the sensor's (sign convention, scale)."""
    guarded: bool = False
    """An ever-increasing total: stale readings and glitches never move it backwards."""
    placeholders: tuple[tuple[str, str], ...] = ()
    """Translation placeholders of the entity name."""


def _power(
    key: str, value_fn: Callable[[float], float] = _same, **kwargs: object
) -> EnergyTelemetrySensorEntityDescription:
    return EnergyTelemetrySensorEntityDescription(
        key=key,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=value_fn,
        **kwargs,  # type: ignore[arg-type]
    )


def _energy(key: str) -> EnergyTelemetrySensorEntityDescription:
    return EnergyTelemetrySensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=2,
        guarded=True,
    )


def _voltage(key: str, **kwargs: object) -> EnergyTelemetrySensorEntityDescription:
    return EnergyTelemetrySensorEntityDescription(
        key=key,
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        **kwargs,  # type: ignore[arg-type]
    )


def _current(
    key: str, value_fn: Callable[[float], float] = _same, **kwargs: object
) -> EnergyTelemetrySensorEntityDescription:
    return EnergyTelemetrySensorEntityDescription(
        key=key,
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=value_fn,
        **kwargs,  # type: ignore[arg-type]
    )


_FREQUENCY = EnergyTelemetrySensorEntityDescription(
    key="frequency",
    device_class=SensorDeviceClass.FREQUENCY,
    native_unit_of_measurement=UnitOfFrequency.HERTZ,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=2,
)

# Sourceful's signs: PV power is negative while producing, battery power positive while
# charging, meter power positive while importing. Home Assistant's: solar positive while
# producing, battery positive while discharging, grid positive while importing.
NOVACORE_FIELDS: dict[str, dict[str, EnergyTelemetrySensorEntityDescription]] = {
    "pv": {
        "W": _power("power", _negate),
        "rated_power_W": EnergyTelemetrySensorEntityDescription(
            key="rated_power",
            translation_key="rated_power",
            device_class=SensorDeviceClass.POWER,
            native_unit_of_measurement=UnitOfPower.WATT,
            entity_category=EntityCategory.DIAGNOSTIC,
            suggested_display_precision=0,
        ),
        "total_generation_Wh": _energy("energy_produced"),
    },
    "battery": {
        "W": _power("power", _negate),
        "SoC_nom_fract": EnergyTelemetrySensorEntityDescription(
            key="state_of_charge",
            device_class=SensorDeviceClass.BATTERY,
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
            value_fn=_percent,
        ),
        "V": _voltage("voltage"),
        "A": _current("current", _negate),
        "total_charge_Wh": _energy("energy_charged"),
        "total_discharge_Wh": _energy("energy_discharged"),
        "SoH_fract": EnergyTelemetrySensorEntityDescription(
            key="state_of_health",
            translation_key="state_of_health",
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
            suggested_display_precision=0,
            value_fn=_percent,
        ),
        "temperature_C": EnergyTelemetrySensorEntityDescription(
            key="temperature",
            device_class=SensorDeviceClass.TEMPERATURE,
            native_unit_of_measurement=UnitOfTemperature.CELSIUS,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=1,
        ),
    },
    "meter": {
        "W": _power("power"),
        "Hz": _FREQUENCY,
        "total_import_Wh": _energy("energy_imported"),
        "total_export_Wh": _energy("energy_exported"),
    },
}

_NUMBERED = re.compile(r"^(mppt|L)(\d{1,2})_(V|A|W)$")


def _numbered(der_type: str, field: str) -> EnergyTelemetrySensorEntityDescription | None:
    """Describe per-MPPT (PV) and per-phase (meter) fields."""
    match = _NUMBERED.match(field)
    if match is None:
        return None
    prefix, number, unit = match.groups()
    placeholders = (("number", str(int(number))),)
    if prefix == "mppt" and der_type == "pv":
        if unit == "V":
            return _voltage(
                f"mppt{number}_voltage", translation_key="mppt_voltage", placeholders=placeholders
            )
        if unit == "A":
            return _current(
                f"mppt{number}_current",
                _negate,
                translation_key="mppt_current",
                placeholders=placeholders,
            )
        return None
    if prefix == "L" and der_type == "meter":
        if unit == "V":
            return _voltage(
                f"l{number}_voltage", translation_key="phase_voltage", placeholders=placeholders
            )
        if unit == "A":
            return _current(
                f"l{number}_current", translation_key="phase_current", placeholders=placeholders
            )
        return _power(f"l{number}_power", translation_key="phase_power", placeholders=placeholders)
    return None


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
        "value_fn": _percent,
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


_CACHE: dict[tuple[str, str], EnergyTelemetrySensorEntityDescription] = {}


def novacore_description(der_type: str, field: str) -> EnergyTelemetrySensorEntityDescription:
    """Return the description of a Novacore field of a DER type (cached)."""
    cache_key = (der_type, field)
    description = _CACHE.get(cache_key)
    if description is None:
        description = (
            NOVACORE_FIELDS.get(der_type, {}).get(field)
            or _numbered(der_type, field)
            or generic_description(field)
        )
        _CACHE[cache_key] = description
    return description
