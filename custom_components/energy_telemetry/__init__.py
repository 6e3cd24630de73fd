"""The Energy Telemetry integration: live energy data pushed from Sourceful Novacore and Ainsite."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .compat import OPTIONS_FLOW_RELOADS
from .const import (
    CONF_API_URL,
    CONF_PRIVATE_KEY,
    CONF_SITE_ID,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    SOURCE_AINSITE,
    SOURCE_NOVACORE,
)
from .coordinator import EnergyTelemetryConfigEntry, PushCoordinator
from .novacore import InvalidKeyError, NovacoreClient, load_signer
from .repairs import async_clear_issues
from .statistics import async_remove_store as async_remove_statistics_store
from .storage import async_remove_store

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> bool:
    """Set up a Novacore site or an Ainsite subscription."""
    coordinator: PushCoordinator
    source = entry.data[CONF_SOURCE]
    if source == SOURCE_NOVACORE:
        coordinator = _novacore_coordinator(hass, entry)
    elif source == SOURCE_AINSITE:
        from .coordinator_ainsite import async_create_coordinator  # noqa: PLC0415

        coordinator = await async_create_coordinator(hass, entry)
    else:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="unknown_source",
            translation_placeholders={"source": str(source)},
        )
    if not OPTIONS_FLOW_RELOADS:
        entry.async_on_unload(entry.add_update_listener(_async_options_updated(entry)))
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    coordinator.async_start()
    return True


def _novacore_coordinator(
    hass: HomeAssistant, entry: EnergyTelemetryConfigEntry
) -> PushCoordinator:
    from .coordinator_novacore import NovacoreCoordinator  # noqa: PLC0415

    data = entry.data
    signer = None
    if key := data.get(CONF_PRIVATE_KEY):
        try:
            signer = load_signer(key)
        except InvalidKeyError as err:
            raise ConfigEntryError(
                translation_domain=DOMAIN,
                translation_key="invalid_stored_key",
                translation_placeholders={"error": str(err)},
            ) from None
    client = NovacoreClient(
        async_get_clientsession(hass),
        data[CONF_API_URL],
        signer=signer,
        token=None if signer else data.get(CONF_TOKEN),
    )
    return NovacoreCoordinator(hass, entry, client, data[CONF_SITE_ID])


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
