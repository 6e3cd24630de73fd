"""What each field of a Novacore reading becomes in Home Assistant, by DER type.

A description marked `signed` follows its DER's power in Home Assistant's convention: its
`value_fn` converts Sourceful's documented wire sign, after the coordinator has multiplied the
wire number by the DER's wire factor (under -1 the charge and discharge limits also trade places,
`wire_field`). Signs in depth: docs/signs.md.
"""

from __future__ import annotations

import re
from typing import Final

from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfApparentPower,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfReactivePower,
    UnitOfTemperature,
    UnitOfTime,
)

from ..descriptions import (
    EnergyTelemetryBinarySensorEntityDescription,
    EnergyTelemetrySensorEntityDescription as Description,
    PointDescription,
    generic_description,
    negate,
    percent,
    same,
)

# --- text states ----------------------------------------------------------------------------

EV_STATUS_OPTIONS: Final = [
    "charging",
    "discharging",
    "sleeping",
    "error",
    "not_ready",
    "suspended",
    "available",
    "preparing",
    "idle",
]
"""Sourceful's `unavailable` is shown as `not_ready`: Home Assistant reserves "unavailable"."""
_EV_STATUS: Final = {option: option for option in EV_STATUS_OPTIONS} | {"unavailable": "not_ready"}
CONTROL_MODE_OPTIONS: Final = ["scheduled", "dynamic"]
_CONTROL_MODE: Final = {option: option for option in CONTROL_MODE_OPTIONS}


def _ev_status(value: str | bool) -> str | None:
    return _EV_STATUS.get(value.strip().lower()) if isinstance(value, str) else None


def _control_mode(value: str | bool) -> str | None:
    return _CONTROL_MODE.get(value.strip().lower()) if isinstance(value, str) else None


def _text(value: str | bool) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _boolean(value: str | bool) -> bool | None:
    return value if isinstance(value, bool) else None


def _kilo(value: float) -> float:
    return value / 1000.0


# --- building blocks --------------------------------------------------------------------------


def _power(
    key: str, *, signed: bool = False, negative: bool = False, **kwargs: object
) -> Description:
    """A power sensor; `negative`: the documented wire is negative where Home Assistant is not."""
    return Description(
        key=key,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=negate if negative else same,
        signed=signed,
        **kwargs,  # type: ignore[arg-type]
    )


def _current(key: str, *, negative: bool = False, **kwargs: object) -> Description:
    return Description(
        key=key,
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=negate if negative else same,
        signed=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _voltage(key: str, **kwargs: object) -> Description:
    return Description(
        key=key,
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        **kwargs,  # type: ignore[arg-type]
    )


def _total(key: str, translation_key: str | None = None) -> Description:
    """An ever-increasing energy counter (guarded): the energy dashboard can use it."""
    return Description(
        key=key,
        translation_key=translation_key or key,
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=2,
        guarded=True,
    )


def _stored(key: str, **kwargs: object) -> Description:
    """Energy held or wanted at this moment (not a counter)."""
    return Description(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        **kwargs,  # type: ignore[arg-type]
    )


def _temperature(key: str, translation_key: str | None = None) -> Description:
    return Description(
        key=key,
        translation_key=translation_key,
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
    )


def _limit(key: str, *, negative: bool = False) -> Description:
    """A power limit, shown as a positive magnitude; it follows its DER's sign."""
    return _power(key, signed=True, negative=negative, translation_key=key)


def _config_power(key: str) -> Description:
    """A static power figure from the DER's configuration (`spec`)."""
    return Description(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=0,
    )


def _config_energy(key: str, *, kilo: bool = False) -> Description:
    """A static energy capacity from the DER's configuration, in kWh (`kilo`: sent in Wh)."""
    return Description(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=1,
        value_fn=_kilo if kilo else same,
    )


def _config_percent(key: str) -> Description:
    return Description(
        key=key,
        translation_key=key,
        native_unit_of_measurement=PERCENTAGE,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=0,
        value_fn=percent,
    )


_FREQUENCY = Description(
    key="frequency",
    device_class=SensorDeviceClass.FREQUENCY,
    native_unit_of_measurement=UnitOfFrequency.HERTZ,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=2,
)
_HEATSINK = _temperature("heatsink_temperature", "heatsink_temperature")
_RATED_POWER = _config_power("rated_power")
_PHASES = Description(
    key="phases",
    translation_key="phases",
    entity_category=EntityCategory.DIAGNOSTIC,
    suggested_display_precision=0,
)
_READ_TIME = Description(
    key="read_time_ms",
    translation_key="read_time",
    device_class=SensorDeviceClass.DURATION,
    native_unit_of_measurement=UnitOfTime.MILLISECONDS,
    state_class=SensorStateClass.MEASUREMENT,
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
)
"""How long the gateway took to read the device: a duration, never the reading's time."""

# --- the tables -------------------------------------------------------------------------------

NOVACORE_FIELDS: Final[dict[str, dict[str, PointDescription]]] = {
    "pv": {
        "W": _power("power", signed=True, negative=True),
        "rated_power_W": _RATED_POWER,
        "installed_power_W": _config_power("installed_power"),
        "total_generation_Wh": _total("energy_produced"),
        "heatsink_C": _HEATSINK,
        "lower_limit_W": _limit("curtailment_limit", negative=True),
    },
    "battery": {
        "W": _power("power", signed=True, negative=True),
        "SoC_nom_fract": Description(
            key="state_of_charge",
            device_class=SensorDeviceClass.BATTERY,
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
            value_fn=percent,
        ),
        "V": _voltage("voltage"),
        "A": _current("current", negative=True),
        "total_charge_Wh": _total("energy_charged"),
        "total_discharge_Wh": _total("energy_discharged"),
        "SoH_fract": Description(
            key="state_of_health",
            translation_key="state_of_health",
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
            suggested_display_precision=0,
            value_fn=percent,
        ),
        "temperature_C": _temperature("temperature"),
        "heatsink_C": _HEATSINK,
        "available_charge_Wh": _stored("available_charge_energy"),
        "available_discharge_Wh": _stored("available_discharge_energy"),
        "upper_limit_W": _limit("charge_limit"),
        "lower_limit_W": _limit("discharge_limit", negative=True),
        "rated_power_W": _RATED_POWER,
        "capacity_kWh": _config_energy("capacity"),
        "capacity_Wh": _config_energy("capacity", kilo=True),
        "min_soc_fract": _config_percent("min_state_of_charge"),
        "max_soc_fract": _config_percent("max_state_of_charge"),
    },
    "meter": {
        "W": _power("power", signed=True),
        "Hz": _FREQUENCY,
        "total_import_Wh": _total("energy_imported"),
        "total_export_Wh": _total("energy_exported"),
    },
    "inverter": {
        "W": _power("power", signed=True, negative=True),
        "VA": Description(
            key="apparent_power",
            translation_key="apparent_power",
            device_class=SensorDeviceClass.APPARENT_POWER,
            native_unit_of_measurement=UnitOfApparentPower.VOLT_AMPERE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
        ),
        "VAR": Description(
            key="reactive_power",
            translation_key="reactive_power",
            device_class=SensorDeviceClass.REACTIVE_POWER,
            native_unit_of_measurement=UnitOfReactivePower.VOLT_AMPERE_REACTIVE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
        ),
        "Hz": _FREQUENCY,
        "dc_W": _power("dc_power", signed=True, negative=True, translation_key="dc_power"),
        "dc_V": _voltage("dc_voltage", translation_key="dc_voltage"),
        "dc_A": _current("dc_current", negative=True, translation_key="dc_current"),
        "heatsink_C": _HEATSINK,
        "rated_power_W": _RATED_POWER,
        "rated_power_VA": Description(
            key="rated_apparent_power",
            translation_key="rated_apparent_power",
            device_class=SensorDeviceClass.APPARENT_POWER,
            native_unit_of_measurement=UnitOfApparentPower.VOLT_AMPERE,
            entity_category=EntityCategory.DIAGNOSTIC,
            suggested_display_precision=0,
        ),
        "phases": _PHASES,
    },
    "ev_charger": {
        "W": _power("power", signed=True),
        "A": _current("current"),
        "V": _voltage("voltage"),
        "Hz": _FREQUENCY,
        "dc_W": _power("dc_power", signed=True, translation_key="dc_power"),
        "dc_V": _voltage("dc_voltage", translation_key="dc_voltage"),
        "dc_A": _current("dc_current", translation_key="dc_current"),
        "vehicle_soc_fract": Description(
            key="vehicle_state_of_charge",
            translation_key="vehicle_state_of_charge",
            device_class=SensorDeviceClass.BATTERY,
            native_unit_of_measurement=PERCENTAGE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=0,
            value_fn=percent,
        ),
        "ev_target_energy_req_Wh": _stored("target_energy_request"),
        "ev_max_energy_req_Wh": _stored("maximum_energy_request"),
        "ev_min_energy_req_Wh": _stored("minimum_energy_request"),
        # Session counters restart from 0 with every session: total_increasing (a drop is a new
        # cycle), guarded like every total so a lone low reading is not taken as a new session.
        "session_charge_Wh": _total("session_energy_charged"),
        "session_discharge_Wh": _total("session_energy_discharged"),
        "total_charge_Wh": _total("energy_charged", "ev_energy_charged"),
        "total_discharge_Wh": _total("energy_discharged", "ev_energy_discharged"),
        "status": Description(
            key="status",
            translation_key="ev_status",
            device_class=SensorDeviceClass.ENUM,
            options=EV_STATUS_OPTIONS,
            state_fn=_ev_status,
        ),
        "plug_connected": EnergyTelemetryBinarySensorEntityDescription(
            key="plug_connected",
            translation_key="plug_connected",
            device_class=BinarySensorDeviceClass.PLUG,
            state_fn=_boolean,
        ),
        "protocol": Description(
            key="protocol",
            translation_key="protocol",
            entity_category=EntityCategory.DIAGNOSTIC,
            state_fn=_text,
        ),
        "control_mode": Description(
            key="control_mode",
            translation_key="control_mode",
            device_class=SensorDeviceClass.ENUM,
            options=CONTROL_MODE_OPTIONS,
            entity_category=EntityCategory.DIAGNOSTIC,
            state_fn=_control_mode,
        ),
        "upper_limit_W": _limit("charge_limit"),
        "lower_limit_W": _limit("discharge_limit", negative=True),
        "rated_power_W": _RATED_POWER,
        "max_charge_power_W": _config_power("max_charge_power"),
        "max_discharge_power_W": _config_power("max_discharge_power"),
        "capacity_Wh": _config_energy("vehicle_capacity", kilo=True),
        "phases": _PHASES,
    },
}
_COMMON_FIELDS: Final[dict[str, PointDescription]] = {"read_time_ms": _READ_TIME}

_PHASE_SIGN: Final = {"meter": False, "ev_charger": False, "inverter": True}
"""DER types with per-phase fields, and whether their documented wire sign is Home Assistant's
opposite (the phases follow the DER's power)."""
_SWAPPED_LIMITS: Final = {"upper_limit_W": "lower_limit_W", "lower_limit_W": "upper_limit_W"}
SIGN_SWAPPED_FIELDS: Final = {"battery": _SWAPPED_LIMITS, "ev_charger": _SWAPPED_LIMITS}
"""Fields that trade places when a DER's wire is inverted: the charge limit is then the lower."""

_NUMBERED = re.compile(r"^(mppt|L)(\d{1,2})_(V|A|W)$")


def _numbered(der_type: str, field: str) -> Description | None:
    """Describe per-MPPT (PV) and per-phase (meter, inverter, EV charger) fields."""
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
                negative=True,
                translation_key="mppt_current",
                placeholders=placeholders,
            )
        return _power(
            f"mppt{number}_power",
            signed=True,
            negative=True,
            translation_key="mppt_power",
            placeholders=placeholders,
        )
    if prefix == "L" and der_type in _PHASE_SIGN:
        negative = _PHASE_SIGN[der_type]
        if unit == "V":
            return _voltage(
                f"l{number}_voltage", translation_key="phase_voltage", placeholders=placeholders
            )
        if unit == "A":
            return _current(
                f"l{number}_current",
                negative=negative,
                translation_key="phase_current",
                placeholders=placeholders,
            )
        return _power(
            f"l{number}_power",
            signed=True,
            negative=negative,
            translation_key="phase_power",
            placeholders=placeholders,
        )
    return None


def wire_field(der_type: str, field: str, sign: int) -> str:
    """Return the field whose documented meaning a wire field has under a wire factor."""
    if sign < 0 and (swapped := SIGN_SWAPPED_FIELDS.get(der_type)) is not None:
        return swapped.get(field, field)
    return field


_CACHE: dict[tuple[str, str], PointDescription] = {}


def novacore_description(der_type: str, field: str) -> PointDescription:
    """Return the description of a Novacore field of a DER type (cached)."""
    cache_key = (der_type, field)
    description = _CACHE.get(cache_key)
    if description is None:
        description = (
            NOVACORE_FIELDS.get(der_type, {}).get(field)
            or _COMMON_FIELDS.get(field)
            or _numbered(der_type, field)
            or generic_description(field)
        )
        _CACHE[cache_key] = description
    return description
