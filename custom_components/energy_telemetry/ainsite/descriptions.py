"""Ainsite registers: what each one measures, by default or as the user mapped it."""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import EntityCategory, UnitOfEnergy, UnitOfPower, UnitOfVolume

from ..descriptions import EnergyTelemetrySensorEntityDescription

ENERGY_TOTAL_REGISTER: Final = "2"
"""Register 2: accumulated energy consumption in kWh (payload version 1)."""

REGISTER_KINDS: Final = ("energy_meter", "energy_interval", "power", "volume", "number")
UNITS_BY_KIND: Final[dict[str, tuple[str, ...]]] = {
    "energy_meter": (
        UnitOfEnergy.WATT_HOUR,
        UnitOfEnergy.KILO_WATT_HOUR,
        UnitOfEnergy.MEGA_WATT_HOUR,
    ),
    "energy_interval": (
        UnitOfEnergy.WATT_HOUR,
        UnitOfEnergy.KILO_WATT_HOUR,
        UnitOfEnergy.MEGA_WATT_HOUR,
    ),
    "power": (UnitOfPower.WATT, UnitOfPower.KILO_WATT),
    "volume": (UnitOfVolume.LITERS, UnitOfVolume.CUBIC_METERS),
    "number": (),
}
DEFAULT_UNITS: Final = {
    "energy_meter": UnitOfEnergy.KILO_WATT_HOUR,
    "energy_interval": UnitOfEnergy.KILO_WATT_HOUR,
    "power": UnitOfPower.KILO_WATT,
    "volume": UnitOfVolume.CUBIC_METERS,
}

LAST_READING_DESCRIPTION: Final = EnergyTelemetrySensorEntityDescription(
    key="last_reading",
    translation_key="last_reading",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


_DESCRIPTIONS: dict[tuple[str, object, object], EnergyTelemetrySensorEntityDescription] = {}
"""Descriptions made so far, by register and mapping (shared by every meter that has one)."""
MAX_CACHED: Final = 4096


def register_description(
    register_id: str, mapping: dict[str, Any] | None
) -> EnergyTelemetrySensorEntityDescription:
    """Describe a register: register 2 is an energy total; others are numbers until mapped."""
    cache_key = (register_id, (mapping or {}).get("kind"), (mapping or {}).get("unit"))
    description = _DESCRIPTIONS.get(cache_key)
    if description is None:
        if len(_DESCRIPTIONS) >= MAX_CACHED:
            _DESCRIPTIONS.clear()
        description = _DESCRIPTIONS[cache_key] = _describe(register_id, mapping)
    return description


def _describe(
    register_id: str, mapping: dict[str, Any] | None
) -> EnergyTelemetrySensorEntityDescription:
    kind = (mapping or {}).get("kind")
    if kind not in REGISTER_KINDS:
        kind = "energy_meter" if register_id == ENERGY_TOTAL_REGISTER else "number"
    unit = (mapping or {}).get("unit") or DEFAULT_UNITS.get(kind)
    common: dict[str, Any] = {
        "key": register_id,
        "translation_key": "energy_total" if register_id == ENERGY_TOTAL_REGISTER else "register",
        "placeholders": (("register", register_id),),
        "native_unit_of_measurement": unit,
    }
    if kind == "energy_meter":
        return EnergyTelemetrySensorEntityDescription(
            device_class=SensorDeviceClass.ENERGY,
            state_class=SensorStateClass.TOTAL_INCREASING,
            suggested_display_precision=3,
            guarded=True,
            **common,
        )
    if kind == "energy_interval":
        return EnergyTelemetrySensorEntityDescription(
            device_class=SensorDeviceClass.ENERGY,
            state_class=SensorStateClass.TOTAL,
            suggested_display_precision=3,
            **common,
        )
    if kind == "power":
        return EnergyTelemetrySensorEntityDescription(
            device_class=SensorDeviceClass.POWER,
            state_class=SensorStateClass.MEASUREMENT,
            **common,
        )
    if kind == "volume":
        return EnergyTelemetrySensorEntityDescription(
            device_class=SensorDeviceClass.VOLUME,
            state_class=SensorStateClass.TOTAL_INCREASING,
            guarded=True,
            **common,
        )
    return EnergyTelemetrySensorEntityDescription(
        state_class=SensorStateClass.MEASUREMENT, **common
    )
