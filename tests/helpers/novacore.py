"""A Novacore site in a running Home Assistant: set up through the config flow, events in."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.novacore.coordinator import NovacoreCoordinator
from tests.helpers.flows import start_flow
from tests.helpers.site import SITE_ID, SITE_NAME, Novacore
from tests.helpers.waiting import wait_for

# --- set-up -------------------------------------------------------------------------------------


async def setup_novacore(hass: HomeAssistant, novacore: Novacore, **creds: str) -> Any:
    """Add the site through the real config flow and wait for the stream."""
    result = await start_flow(hass, "novacore")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"api_url": novacore.url, **(creds or {"private_key": novacore.private_key_pem})},
    )
    assert result["type"] is FlowResultType.FORM, result
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"site_id": SITE_ID})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await novacore.server.wait_for_streams(SITE_ID, 1)
    return entry


def fast(entry: Any) -> NovacoreCoordinator:
    """Shorten the reconnect backoff so that a test does not wait for it."""
    coordinator: NovacoreCoordinator = entry.runtime_data
    coordinator.stream.backoff_initial = 0.02
    coordinator.stream.backoff_max = 0.1
    return coordinator


async def setup_fast(hass: HomeAssistant, novacore: Novacore, **creds: str) -> Any:
    """Set up the site (as setup_novacore) with a short reconnect backoff."""
    entry = await setup_novacore(hass, novacore, **creds)
    fast(entry)
    return entry


async def reload_fast(hass: HomeAssistant, novacore: Novacore, entry: Any) -> None:
    """Reload the entry, wait for its stream and shorten its backoff again."""
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID)
    fast(entry)


def stored_entry(novacore: Novacore, **creds: str | None) -> MockConfigEntry:
    """Return an entry of the site as Home Assistant stores it (not added yet)."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=SITE_NAME,
        unique_id=SITE_ID,
        data={
            "source": "novacore",
            "api_url": novacore.url,
            "private_key": None,
            "token": None,
            "site_id": SITE_ID,
            **creds,
        },
    )


async def send(hass: HomeAssistant, novacore: Novacore, entry: Any, data: Any, **kw: Any) -> None:
    """Push one event and wait until the integration has handled it."""
    stats = entry.runtime_data.stream.stats
    before = stats.events + stats.ignored_events
    await novacore.push(data, **kw)
    await wait_for(lambda: stats.events + stats.ignored_events > before)
    await hass.async_block_till_done()


def reauth_flows(hass: HomeAssistant, entry: Any) -> list[Any]:
    """Return the reauthentication flows in progress for an entry."""
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["context"]["source"] == SOURCE_REAUTH
        and flow["context"].get("entry_id") == entry.entry_id
    ]


# --- what a DER shows ---------------------------------------------------------------------------


def der_state(hass: HomeAssistant, der: str, key: str, domain: str = "sensor") -> State:
    """Return the state of a DER's entity found by its unique id (the public contract)."""
    entity_id = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{SITE_ID}_{der}_{key}")
    assert entity_id is not None, (der, key)
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


def der_number(hass: HomeAssistant, der: str, key: str) -> float:
    """Return the state of a DER's entity as a number."""
    return float(der_state(hass, der, key).state)


def devices_of(hass: HomeAssistant, entry: Any) -> dict[Any, dr.DeviceEntry]:
    """Return the entry's devices by each of their identifiers."""
    registry = dr.async_get(hass)
    return {
        identifier: device
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        for identifier in device.identifiers
    }
