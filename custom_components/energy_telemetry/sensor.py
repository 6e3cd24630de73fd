"""Sensors of the Energy Telemetry integration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from homeassistant.components.sensor import RestoreSensor, SensorEntity, SensorExtraStoredData
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .coordinator import EnergyTelemetryConfigEntry, Point
from .descriptions import UNKNOWN_STATE, EnergyTelemetrySensorEntityDescription
from .entity import EnergyTelemetryEntity

PARALLEL_UPDATES = 0

__all__ = ["EnergyTelemetrySensor", "EnergyTelemetrySensorEntityDescription"]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EnergyTelemetryConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Add a sensor for every value, now and whenever a new one shows up."""
    coordinator = entry.runtime_data

    @callback
    def _add(points: list[Point]) -> None:
        async_add_entities(
            (EnergyTelemetryTotalSensor if point.guard else EnergyTelemetrySensor)(
                coordinator, point
            )
            for point in points
        )

    coordinator.async_set_new_points_listener(_add, Platform.SENSOR)


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
        point = self._point
        guard = point.guard
        if guard is not None and not guard.seeded:
            value: float | None = None
            timestamp: float | None = None
            if (extra := await self.async_get_last_extra_data()) is not None and (
                stored := TotalExtraStoredData.from_dict(extra.as_dict())
            ) is not None:
                try:
                    value = float(stored.native_value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    value = None
                timestamp = stored.last_timestamp
            guard.seed(value, timestamp)
            point.value = guard.value
        point.entity = self

    @property
    def extra_restore_state_data(self) -> SensorExtraStoredData:
        """Store the source timestamp of a total with its value."""
        guard = self._point.guard
        return TotalExtraStoredData(
            self.native_value,
            self.native_unit_of_measurement,
            None if guard is None else guard.timestamp,
        )
