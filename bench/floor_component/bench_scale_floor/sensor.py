"""The scale floor's sensors: a number (or a time) written from a reading, nothing else.

Each kind matches what the integration makes of an Ainsite meter, so Home Assistant's own cost
of creating and writing them is the same: register 2 an energy total (kWh, total_increasing,
three decimals suggested, restored after a restart), the other registers plain measurements,
and a diagnostic timestamp of the meter's last reading.
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EntityCategory, UnitOfEnergy
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import DOMAIN, LAST_READING, TOTAL_REGISTER, ScaleFloorData

PREFIX = "scale_floor_"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ConfigEntry[ScaleFloorData],
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Bring back every sensor in the registry (one call); keep the callback for new ones."""
    data = entry.runtime_data
    restored: list[FloorSensor] = []
    for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        key = entity.unique_id.removeprefix(PREFIX)
        if key.endswith(f"_{LAST_READING}"):
            meter, register = key.removesuffix(f"_{LAST_READING}"), LAST_READING
        else:
            meter, _, register = key.rpartition("_")
        sensor = make_sensor(meter, register, data.devices)
        data.sensors[key] = sensor
        restored.append(sensor)
    if restored:
        async_add_entities(restored)

    @callback
    def _add(sensors: list[FloorSensor]) -> None:
        async_add_entities(sensors)

    data.add = _add


def device_of(meter: str, devices: dict[str, DeviceInfo]) -> DeviceInfo:
    """Return the meter's device (one object shared by its sensors)."""
    info = devices.get(meter)
    if info is None:
        info = devices[meter] = DeviceInfo(
            identifiers={(DOMAIN, meter)},
            name=f"Meter {meter}",
            manufacturer="Bench",
            model="Meter",
        )
    return info


def make_sensor(meter: str, register: str, devices: dict[str, DeviceInfo]) -> FloorSensor:
    """Return the sensor of a meter's register (or of its last reading)."""
    device = device_of(meter, devices)
    if register == LAST_READING:
        return FloorLastReading(meter, register, device)
    if register == TOTAL_REGISTER:
        return FloorTotal(meter, register, device)
    return FloorSensor(meter, register, device)


class FloorSensor(SensorEntity):
    """A register's value: a measurement."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_state_class: SensorStateClass | str | None = SensorStateClass.MEASUREMENT

    def __init__(self, meter: str, register: str, device: DeviceInfo) -> None:
        """Name the sensor; it has no value yet."""
        self._attr_unique_id = f"{PREFIX}{meter}_{register}"
        self._attr_name = f"Register {register}"
        self._attr_device_info = device
        self._shown = False
        self.value: float | datetime | None = None
        """The value shown: a plain attribute (an `_attr_` one costs a cache reset to set)."""
        self.raw: str | None = None
        """The reading's own text of the value shown (the last reading's timestamp)."""

    @property
    def native_value(self) -> float | datetime | None:
        """Return the value."""
        return self.value

    async def async_added_to_hass(self) -> None:
        """Write from now on (the first state is written right after this)."""
        await super().async_added_to_hass()
        self._shown = True

    @callback
    def set_value(self, value: float | datetime | None) -> None:
        """Show a new value (before the sensor is added, its first state will show it)."""
        self.value = value
        if self._shown:
            self.async_write_ha_state()


class FloorTotal(FloorSensor, RestoreSensor):
    """Register 2: an energy total, restored after a restart."""

    _attr_device_class = SensorDeviceClass.ENERGY
    _attr_state_class = SensorStateClass.TOTAL_INCREASING
    _attr_native_unit_of_measurement = UnitOfEnergy.KILO_WATT_HOUR
    _attr_suggested_display_precision = 3

    def __init__(self, meter: str, register: str, device: DeviceInfo) -> None:
        """Name the total."""
        super().__init__(meter, register, device)
        self._attr_name = "Energy"

    async def async_added_to_hass(self) -> None:
        """Show the stored total until a reading comes."""
        await super().async_added_to_hass()
        if self.value is None and (stored := await self.async_get_last_sensor_data()):
            self.value = stored.native_value  # type: ignore[assignment]


class FloorLastReading(FloorSensor):
    """When the meter's newest reading was taken."""

    _attr_device_class = SensorDeviceClass.TIMESTAMP
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_state_class = None

    def __init__(self, meter: str, register: str, device: DeviceInfo) -> None:
        """Name the timestamp."""
        super().__init__(meter, register, device)
        self._attr_name = "Last reading"
