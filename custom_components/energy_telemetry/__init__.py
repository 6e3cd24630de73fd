"""The Energy Telemetry integration: live energy data pushed from Sourceful Novacore and Ainsite."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import device_registry as dr

from .ainsite.coordinator import async_create_coordinator as async_create_ainsite
from .compat import OPTIONS_FLOW_RELOADS
from .const import CONF_SOURCE, DOMAIN, SOURCE_AINSITE, SOURCE_NOVACORE
from .coordinator import EnergyTelemetryConfigEntry, PushCoordinator
from .issues import async_clear_issues
from .novacore.coordinator import async_create_coordinator as async_create_novacore
from .statistics import async_remove_store as async_remove_statistics_store
from .storage import async_remove_store

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]
COORDINATORS: Final[
    dict[str, Callable[[HomeAssistant, EnergyTelemetryConfigEntry], Awaitable[PushCoordinator]]]
] = {SOURCE_NOVACORE: async_create_novacore, SOURCE_AINSITE: async_create_ainsite}
"""How each source builds its coordinator."""


async def async_setup_entry(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> bool:
    """Set up a Novacore site or an Ainsite subscription."""
    source = entry.data[CONF_SOURCE]
    if (create := COORDINATORS.get(source)) is None:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="unknown_source",
            translation_placeholders={"source": str(source)},
        )
    coordinator = await create(hass, entry)
    if not OPTIONS_FLOW_RELOADS:
        entry.async_on_unload(entry.add_update_listener(_async_options_updated(entry)))
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    coordinator.async_start()
    return True


def _async_options_updated(
    entry: EnergyTelemetryConfigEntry,
) -> Callable[[HomeAssistant, EnergyTelemetryConfigEntry], Coroutine[Any, Any, None]]:
    """Return an update listener that reloads when the options changed (before 2025.8 only).

    Newer releases reload from the options flow itself. Changes of the entry's data come from
    reauthentication, reconfiguration and repairs, whose flows reload the entry themselves.
    """
    options = dict(entry.options)

    async def _async_updated(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> None:
        if dict(entry.options) != options:
            hass.config_entries.async_schedule_reload(entry.entry_id)

    return _async_updated


async def async_unload_entry(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> bool:
    """Unload an entry; its stream task and timers stop with it.

    The connection stops first, while the entities still exist: whatever it delivers as it closes
    is applied to them (and so stored for the next start) instead of to removed entities.
    """
    await entry.runtime_data.async_stop_connection()
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        # An entry that is not running reports no problem; set-up raises it again if it persists.
        async_clear_issues(hass, entry)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> None:
    """Forget what the entry stored and any issue it raised (its statistics stay)."""
    async_clear_issues(hass, entry)
    await async_remove_store(hass, entry.entry_id)
    await async_remove_statistics_store(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: EnergyTelemetryConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let a user delete a device that no longer reports (it comes back if it reports again)."""
    coordinator: PushCoordinator | None = getattr(entry, "runtime_data", None)
    return coordinator is None or coordinator.async_remove_device(device)
