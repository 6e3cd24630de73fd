"""The Energy Telemetry integration: live energy data pushed from Sourceful Novacore and Ainsite."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    CONF_API_URL,
    CONF_PRIVATE_KEY,
    CONF_SITE_ID,
    CONF_SOURCE,
    CONF_TOKEN,
    SOURCE_AINSITE,
    SOURCE_NOVACORE,
)
from .coordinator import EnergyTelemetryConfigEntry, PushCoordinator
from .novacore import InvalidKeyError, NovacoreClient, load_signer
from .statistics import async_remove_store

PLATFORMS: list[Platform] = [Platform.SENSOR]


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
        raise ConfigEntryError(f"Unknown source {source}")
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
            raise ConfigEntryError(f"The stored private key cannot be used: {err}") from None
    client = NovacoreClient(
        async_get_clientsession(hass),
        data[CONF_API_URL],
        signer=signer,
        token=None if signer else data.get(CONF_TOKEN),
    )
    return NovacoreCoordinator(hass, entry, client, data[CONF_SITE_ID])


async def async_unload_entry(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> bool:
    """Unload an entry; its stream task and timers stop with it.

    The connection stops first, while the entities still exist: whatever it delivers as it closes
    is applied to them (and so stored for the next start) instead of to removed entities.
    """
    await entry.runtime_data.async_stop_connection()
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: EnergyTelemetryConfigEntry) -> None:
    """Delete the file the entry's statistics keep between runs (its statistics stay)."""
    await async_remove_store(hass, entry.entry_id)
