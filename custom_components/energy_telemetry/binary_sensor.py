"""Binary sensors of the Energy Telemetry integration (an EV charger's plug, for one)."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .coordinator import EnergyTelemetryConfigEntry
from .descriptions import EnergyTelemetryBinarySensorEntityDescription
from .entity import EnergyTelemetryEntity, async_add_points

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EnergyTelemetryConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Add a binary sensor for every boolean value, now and whenever a new one shows up."""
    async_add_points(entry, Platform.BINARY_SENSOR, async_add_entities, EnergyTelemetryBinarySensor)


class EnergyTelemetryBinarySensor(EnergyTelemetryEntity, BinarySensorEntity):
    """A boolean value of a DER."""

    entity_description: EnergyTelemetryBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        """Return the value (None: not understood, shown as unknown)."""
        value = self._point.value
        return value if isinstance(value, bool) else None
