"""Snapshots of what a user sees: the entities of a site and its diagnostics download."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from tests.helpers.novacore import send, setup_novacore
from tests.helpers.site import BATTERY, EV, INVERTER, METER, PV, Novacore

ATTRIBUTES = ("friendly_name", "device_class", "state_class", "unit_of_measurement", "options")


async def test_site_entities_and_diagnostics(
    hass: HomeAssistant,
    novacore: Novacore,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    """The seed's three payloads, an EV charger and an inverter give these entities and this
    diagnostics download."""
    entry = await setup_novacore(hass, novacore)
    for payload in (PV, BATTERY, METER, EV, INVERTER):
        await send(hass, novacore, entry, payload)

    entities: dict[str, Any] = {}
    for registry_entry in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        state = hass.states.get(registry_entry.entity_id)
        entities[registry_entry.entity_id] = {
            "unique_id": registry_entry.unique_id,
            "enabled": registry_entry.disabled_by is None,
            "entity_category": registry_entry.entity_category,
            "state": None if state is None else state.state,
            **(
                {}
                if state is None
                else {key: state.attributes[key] for key in ATTRIBUTES if key in state.attributes}
            ),
        }
    assert dict(sorted(entities.items())) == snapshot(name="entities")

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    diagnostics["entry"]["data"]["api_url"] = "<server>"
    for group in diagnostics["coordinator"]["groups"].values():
        group["interval"] = None
    stream = diagnostics["coordinator"]["stream"]
    stream["token_expires_at"] = None
    assert diagnostics == snapshot(name="diagnostics")
    assert await hass.config_entries.async_unload(entry.entry_id)
