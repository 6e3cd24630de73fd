"""Sensors of the Energy Telemetry integration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from homeassistant.components.sensor import RestoreSensor, SensorEntity, SensorExtraStoredData
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.restore_state import ExtraStoredData

from .coordinator import EnergyTelemetryConfigEntry, Point, PushCoordinator
from .descriptions import UNKNOWN_STATE, EnergyTelemetrySensorEntityDescription
from .entity import EnergyTelemetryEntity, async_add_points

PARALLEL_UPDATES = 0

__all__ = ["EnergyTelemetrySensor", "EnergyTelemetrySensorEntityDescription"]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EnergyTelemetryConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Add a sensor for every value, now and whenever a new one shows up."""
    async_add_points(entry, Platform.SENSOR, async_add_entities, _sensor)


def _sensor(coordinator: PushCoordinator, point: Point) -> EnergyTelemetrySensor:
    """Return the sensor of a point: a total is restored and guarded."""
    if point.guard is not None:
        return EnergyTelemetryTotalSensor(coordinator, point)
    return EnergyTelemetrySensor(coordinator, point)


@dataclass
class TotalExtraStoredData(SensorExtraStoredData):
    """Stored data of a total: its value and the source timestamp of that value."""

    last_timestamp: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a dict representation."""
        data = super().as_dict()
        data["last_timestamp"] = self.last_timestamp
        return data

    @classmethod
    def from_dict(cls, restored: dict[str, Any]) -> Self | None:
        """Read the stored data back."""
        base = SensorExtraStoredData.from_dict(restored)
        if base is None:
            return None
        timestamp = restored.get("last_timestamp")
        return cls(
            base.native_value,
            base.native_unit_of_measurement,
            float(timestamp) if isinstance(timestamp, int | float) else None,
        )


class EnergyTelemetrySensor(EnergyTelemetryEntity, SensorEntity):
    """A sensor showing one value of a DER or meter, written only when it changes."""

    entity_description: EnergyTelemetrySensorEntityDescription

    @property
    def native_value(self) -> float | datetime | str | None:
        """Return the value (a text not understood is shown as unknown)."""
        value = self._point.value
        if value == UNKNOWN_STATE or isinstance(value, bool):
            return None
        return value

    @property
    def last_reset(self) -> datetime | None:
        """Return the start of the interval of an interval value."""
        return self._point.last_reset


class EnergyTelemetryTotalSensor(EnergyTelemetrySensor, RestoreSensor):
    """An ever-increasing total: restored after a restart, guarded against going backwards."""

    async def async_added_to_hass(self) -> None:
        """Seed the total from its last stored value before showing anything new."""
        await RestoreSensor.async_added_to_hass(self)
        self._async_seed(await self.async_get_last_extra_data())
        self._point.entity = self

    @callback
    def async_registry_entry_updated(self) -> None:
        """Seed the total before Home Assistant writes the state of the updated entry.

        Adding a new sensor, Home Assistant stores its display precision in the registry and
        writes the state, before `async_added_to_hass`: unseeded, the total would first show
        unavailable.
        """
        super().async_registry_entry_updated()
        stored = self._async_get_restored_data()
        self._async_seed(None if stored is None else stored.extra_data)

    @callback
    def _async_seed(self, extra: ExtraStoredData | None) -> None:
        """Seed the guard with the stored value (once): readings held back are judged against it."""
        point = self._point
        guard = point.guard
        if guard is None or guard.seeded:
            return
        value: float | None = None
        timestamp: float | None = None
        if extra is not None and (stored := TotalExtraStoredData.from_dict(extra.as_dict())):
            try:
                value = float(stored.native_value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                value = None
            timestamp = stored.last_timestamp
        guard.seed(value, timestamp)
        point.value = guard.value

    @property
    def extra_restore_state_data(self) -> SensorExtraStoredData:
        """Store the source timestamp of a total with its value."""
        guard = self._point.guard
        return TotalExtraStoredData(
            self.native_value,
            self.native_unit_of_measurement,
            None if guard is None else guard.timestamp,
        )
