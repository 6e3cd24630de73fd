"""What each field of a Novacore reading becomes in Home Assistant, by DER type.

A description marked `signed` follows its DER's power in Home Assistant's convention: its
`value_fn` converts Sourceful's documented wire sign, after the coordinator has multiplied the
wire number by the DER's wire factor (under -1 the charge and discharge limits also trade places,
`wire_field`). Signs in depth: docs/signs.md.
"""

from __future__ import annotations

from functools import partial
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


def _measured(
    key: str, device_class: SensorDeviceClass, unit: str, precision: int | None, **kwargs: object
) -> Description:
    """A value measured now (state class measurement)."""
    return Description(
        key=key,
        device_class=device_class,
        native_unit_of_measurement=unit,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=precision,
        **kwargs,  # type: ignore[arg-type]
    )


def _configured(key: str, unit: str, precision: int, **kwargs: object) -> Description:
    """A static figure from the DER's configuration (`spec`), a diagnostic."""
    return Description(
        key=key,
        translation_key=key,
        native_unit_of_measurement=unit,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=precision,
        **kwargs,  # type: ignore[arg-type]
    )


def power_description(
    key: str, *, signed: bool = False, negative: bool = False, **kwargs: object
) -> Description:
    """A power sensor; `negative`: the documented wire is negative where Home Assistant is not."""
    value_fn = negate if negative else same
    return _measured(
        key,
        SensorDeviceClass.POWER,
        UnitOfPower.WATT,
        0,
        value_fn=value_fn,
        signed=signed,
        **kwargs,
    )


def _current(key: str, *, negative: bool = False, **kwargs: object) -> Description:
    value_fn = negate if negative else same
    unit = UnitOfElectricCurrent.AMPERE
    return _measured(
        key, SensorDeviceClass.CURRENT, unit, 2, value_fn=value_fn, signed=True, **kwargs
    )


def _voltage(key: str, **kwargs: object) -> Description:
    return _measured(key, SensorDeviceClass.VOLTAGE, UnitOfElectricPotential.VOLT, 1, **kwargs)


def _temperature(key: str, translation_key: str | None = None) -> Description:
    unit = UnitOfTemperature.CELSIUS
    return _measured(key, SensorDeviceClass.TEMPERATURE, unit, 1, translation_key=translation_key)


def _state_of_charge(key: str, **kwargs: object) -> Description:
    """A state of charge, sent as a fraction, shown in per cent (a battery sensor)."""
    return _measured(key, SensorDeviceClass.BATTERY, PERCENTAGE, 0, value_fn=percent, **kwargs)


def total_description(key: str, translation_key: str | None = None) -> Description:
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
    kilo = UnitOfEnergy.KILO_WATT_HOUR
    return _measured(
        key,
        SensorDeviceClass.ENERGY_STORAGE,
        UnitOfEnergy.WATT_HOUR,
        2,
        translation_key=key,
        suggested_unit_of_measurement=kilo,
        **kwargs,
    )


def _limit(key: str, *, negative: bool = False) -> Description:
    """A power limit, shown as a positive magnitude; it follows its DER's sign."""
    return power_description(key, signed=True, negative=negative, translation_key=key)


def _config_power(key: str) -> Description:
    return _configured(key, UnitOfPower.WATT, 0, device_class=SensorDeviceClass.POWER)


def _config_energy(key: str, *, kilo: bool = False) -> Description:
    """A static energy capacity, in kWh (`kilo`: sent in Wh)."""
    return _configured(
        key,
        UnitOfEnergy.KILO_WATT_HOUR,
        1,
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        value_fn=_kilo if kilo else same,
    )


def _config_percent(key: str) -> Description:
    return _configured(key, PERCENTAGE, 0, value_fn=percent)


_FREQUENCY = _measured("frequency", SensorDeviceClass.FREQUENCY, UnitOfFrequency.HERTZ, 2)
_HEATSINK = _temperature("heatsink_temperature", "heatsink_temperature")
_RATED_POWER = _config_power("rated_power")
_PHASES = Description(
    key="phases",
    translation_key="phases",
    entity_category=EntityCategory.DIAGNOSTIC,
    suggested_display_precision=0,
)
_READ_TIME = _measured(
    "read_time_ms",
    SensorDeviceClass.DURATION,
    UnitOfTime.MILLISECONDS,
    None,
    translation_key="read_time",
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
)
"""How long the gateway took to read the device: a duration, never the reading's time."""

# --- the tables -------------------------------------------------------------------------------

NOVACORE_FIELDS: Final[dict[str, dict[str, PointDescription]]] = {
    "pv": {
        "W": power_description("power", signed=True, negative=True),
        "rated_power_W": _RATED_POWER,
        "installed_power_W": _config_power("installed_power"),
        "total_generation_Wh": total_description("energy_produced"),
        "heatsink_C": _HEATSINK,
        "lower_limit_W": _limit("curtailment_limit", negative=True),
    },
    "battery": {
        "W": power_description("power", signed=True, negative=True),
        "SoC_nom_fract": _state_of_charge("state_of_charge"),
        "V": _voltage("voltage"),
        "A": _current("current", negative=True),
        "total_charge_Wh": total_description("energy_charged"),
        "total_discharge_Wh": total_description("energy_discharged"),
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
        "W": power_description("power", signed=True),
        "Hz": _FREQUENCY,
        "total_import_Wh": total_description("energy_imported"),
        "total_export_Wh": total_description("energy_exported"),
    },
    "inverter": {
        "W": power_description("power", signed=True, negative=True),
        "VA": _measured(
            "apparent_power",
            SensorDeviceClass.APPARENT_POWER,
            UnitOfApparentPower.VOLT_AMPERE,
            0,
            translation_key="apparent_power",
        ),
        "VAR": _measured(
            "reactive_power",
            SensorDeviceClass.REACTIVE_POWER,
            UnitOfReactivePower.VOLT_AMPERE_REACTIVE,
            0,
            translation_key="reactive_power",
        ),
        "Hz": _FREQUENCY,
        "dc_W": power_description(
            "dc_power", signed=True, negative=True, translation_key="dc_power"
        ),
        "dc_V": _voltage("dc_voltage", translation_key="dc_voltage"),
        "dc_A": _current("dc_current", negative=True, translation_key="dc_current"),
        "heatsink_C": _HEATSINK,
        "rated_power_W": _RATED_POWER,
        "rated_power_VA": _configured(
            "rated_apparent_power",
            UnitOfApparentPower.VOLT_AMPERE,
            0,
            device_class=SensorDeviceClass.APPARENT_POWER,
        ),
        "phases": _PHASES,
    },
    "ev_charger": {
        "W": power_description("power", signed=True),
        "A": _current("current"),
        "V": _voltage("voltage"),
        "Hz": _FREQUENCY,
        "dc_W": power_description("dc_power", signed=True, translation_key="dc_power"),
        "dc_V": _voltage("dc_voltage", translation_key="dc_voltage"),
        "dc_A": _current("dc_current", translation_key="dc_current"),
        "vehicle_soc_fract": _state_of_charge(
            "vehicle_state_of_charge", translation_key="vehicle_state_of_charge"
        ),
        "ev_target_energy_req_Wh": _stored("target_energy_request"),
        "ev_max_energy_req_Wh": _stored("maximum_energy_request"),
        "ev_min_energy_req_Wh": _stored("minimum_energy_request"),
        # Session counters restart from 0 with every session: total_increasing (a drop is a new
        # cycle), guarded like every total so a lone low reading is not taken as a new session.
        "session_charge_Wh": total_description("session_energy_charged"),
        "session_discharge_Wh": total_description("session_energy_discharged"),
        "total_charge_Wh": total_description("energy_charged", "ev_energy_charged"),
        "total_discharge_Wh": total_description("energy_discharged", "ev_energy_discharged"),
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
    if prefix == "mppt" and der_type == "pv":
        key, group, negative = f"mppt{number}", "mppt", True
    elif prefix == "L" and der_type in _PHASE_SIGN:
        key, group, negative = f"l{number}", "phase", _PHASE_SIGN[der_type]
    else:
        return None
    placeholders = (("number", str(int(number))),)
    if unit == "V":
        return _voltage(
            f"{key}_voltage", translation_key=f"{group}_voltage", placeholders=placeholders
        )
    build = _current if unit == "A" else partial(power_description, signed=True)
    name = "current" if unit == "A" else "power"
    return build(
        f"{key}_{name}",
        negative=negative,
        translation_key=f"{group}_{name}",
        placeholders=placeholders,
    )


def wire_field(der_type: str, field: str, sign: int) -> str:
    """Return the field whose documented meaning a wire field has under a wire factor."""
    if sign < 0 and (swapped := SIGN_SWAPPED_FIELDS.get(der_type)) is not None:
        return swapped.get(field, field)
    return field


_CACHE: dict[tuple[str, str], PointDescription] = {}
"""Descriptions made so far, by (DER type, field): emptied when it holds MAX_CACHED."""
MAX_CACHED: Final = 4096


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
        if len(_CACHE) >= MAX_CACHED:
            _CACHE.clear()
        _CACHE[cache_key] = description
    return description
