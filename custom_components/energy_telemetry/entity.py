"""The entity base of the Energy Telemetry integration: one entity shows one point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from homeassistant.core import callback
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .coordinator import EnergyTelemetryConfigEntry, Point, PushCoordinator

_PLACEHOLDERS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
MAX_SHARED: Final = 4096


def _shared(placeholders: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Return one dict of translation placeholders for every entity with the same ones.

    Home Assistant only reads it; a thousand meters' registers share ten.
    """
    found = _PLACEHOLDERS.get(placeholders)
    if found is None:
        if len(_PLACEHOLDERS) >= MAX_SHARED:
            _PLACEHOLDERS.clear()
        found = _PLACEHOLDERS[placeholders] = dict(placeholders)
    return found


class EnergyTelemetryEntity(Entity):
    """Shows one point of a group, written only when its value changes."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, coordinator: PushCoordinator, point: Point) -> None:
        """Bind the entity to its point."""
        self.coordinator = coordinator
        self._point = point
        self.entity_description = point.description
        self._attr_unique_id = point.unique_id
        self._attr_device_info = point.group.device_info
        if placeholders := point.description.placeholders:
            self._attr_translation_placeholders = _shared(placeholders)

    @property
    def available(self) -> bool:
        """Return True when the value is current."""
        return self.coordinator.point_available(self._point)

    async def async_added_to_hass(self) -> None:
        """Start receiving values."""
        await super().async_added_to_hass()
        self._point.entity = self

    async def async_will_remove_from_hass(self) -> None:
        """Stop writing through this entity."""
        if self._point.entity is self:
            self._point.entity = None


@callback
def async_add_points(
    entry: EnergyTelemetryConfigEntry,
    platform: str,
    async_add_entities: AddEntitiesCallback,
    entity: Callable[[PushCoordinator, Point], EnergyTelemetryEntity],
) -> None:
    """Add an entity for every point of a platform, now and whenever new ones show up."""
    coordinator = entry.runtime_data

    @callback
    def _add(points: list[Point]) -> None:
        async_add_entities(entity(coordinator, point) for point in points)

    coordinator.async_set_new_points_listener(_add, platform)
