"""The floor's sensors: a number written from outside, nothing else."""

from __future__ import annotations

from homeassistant.components.sensor import SensorEntity, SensorStateClass
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import DOMAIN, FloorData

PER_DEVICE = 10


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry[FloorData], async_add_entities: AddEntitiesCallback
) -> None:
    """Keep the callback; sensors are made by the `create` service."""
    data = entry.runtime_data

    @callback
    def _add(count: int) -> None:
        first = len(data.entities)
        new = [FloorSensor(first + index) for index in range(count)]
        data.entities.extend(new)
        async_add_entities(new)

    data.add = _add


class FloorSensor(SensorEntity):
    """A measurement sensor with a unique id, on a device of ten."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, number: int) -> None:
        """Name the sensor and its device."""
        device = number // PER_DEVICE
        self._attr_unique_id = f"floor_{number}"
        self._attr_name = f"Value {number % PER_DEVICE}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"floor_{device}")}, name=f"Floor {device}"
        )

    @callback
    def set_value(self, value: float) -> None:
        """Show a new value."""
        self._attr_native_value = value
        self.async_write_ha_state()
