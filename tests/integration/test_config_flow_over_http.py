"""The config and options flows as the frontend sees them: serialised over Home Assistant's HTTP API.

The flows build their forms with voluptuous (declared in manifest.json): Home Assistant 2026.x
validates its own schemas with probatio, so these tests show that ours still serialise, render
and validate there, and on the oldest release supported.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from custom_components.energy_telemetry.const import DOMAIN
from simulator.ainsite_publisher import payload_v2
from tests.helpers.ainsite import ainsite_input, topic
from tests.helpers.site import SITE_ID, Novacore
from tests.helpers.waiting import wait_for

FLOW_URL = "/api/config/config_entries/flow"


@pytest.fixture
async def client(hass: HomeAssistant, hass_client: Any) -> Any:
    """Return an authenticated HTTP client of a Home Assistant with the config API."""
    assert await async_setup_component(hass, "config", {})
    return await hass_client()


def _fields(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the serialised form fields by name."""
    return {field["name"]: field for field in result["data_schema"]}


async def _post(client: Any, url: str, body: dict[str, Any], status: int = 200) -> Any:
    response = await client.post(url, json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def test_novacore_flow_over_http(
    hass: HomeAssistant, client: Any, novacore: Novacore
) -> None:
    """The menu, the credentials form (with its selectors) and the site list, start to entry."""
    result = await _post(client, FLOW_URL, {"handler": DOMAIN, "show_advanced_options": False})
    assert result["type"] == "menu"
    assert result["menu_options"] == ["novacore", "ainsite"]
    flow_url = f"{FLOW_URL}/{result['flow_id']}"
    result = await _post(client, flow_url, {"next_step_id": "novacore"})
    fields = _fields(result)
    assert set(fields) == {"api_url", "private_key", "token"}
    assert fields["api_url"]["required"] is True
    assert "text" in fields["api_url"]["selector"]
    assert fields["private_key"]["selector"]["text"]["multiline"] is True
    assert fields["token"]["selector"]["text"]["type"] == "password"

    # Input the schema refuses never reaches the step: the API answers 400.
    await _post(client, flow_url, {"api_url": 42}, status=400)
    result = await _post(client, flow_url, {"api_url": novacore.url})
    assert result["errors"] == {"base": "missing_credentials"}

    result = await _post(
        client, flow_url, {"api_url": novacore.url, "private_key": novacore.private_key_pem}
    )
    assert result["step_id"] == "site"
    site = _fields(result)["site_id"]["selector"]["select"]
    assert site["options"] == [{"value": SITE_ID, "label": "Home"}]
    await _post(client, flow_url, {"site_id": "sit-unknown"}, status=400)
    result = await _post(client, flow_url, {"site_id": SITE_ID})
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ainsite_flow_and_options_over_http(
    hass: HomeAssistant, client: Any, mosquitto: Any
) -> None:
    """The Ainsite form coerces and checks its fields; the options flow renders its selectors."""
    result = await _post(client, FLOW_URL, {"handler": DOMAIN})
    flow_url = f"{FLOW_URL}/{result['flow_id']}"
    result = await _post(client, flow_url, {"next_step_id": "ainsite"})
    fields = _fields(result)
    assert fields["port"]["selector"]["number"]["max"] == 65535
    assert fields["tls"]["selector"] == {"boolean": {}}
    assert fields["subscription_id"]["optional"] is True
    user_input = ainsite_input(mosquitto.tls_port)
    del user_input["subscription_id"]  # optional: left out, as a user may leave it
    await _post(client, flow_url, {**user_input, "port": "not a port"}, status=400)
    result = await _post(client, flow_url, {**user_input, "port": float(mosquitto.tls_port)})
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.data["port"] == mosquitto.tls_port  # coerced to int by the schema
    coordinator = entry.runtime_data
    await wait_for(lambda: coordinator.connected)  # subscribed: the broker keeps what follows
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await mosquitto.apublish(
        topic("mtr-1"), payload_v2(12, 1.5, start, start + timedelta(minutes=15))
    )
    await wait_for(lambda: "12" in coordinator.known_registers())

    options_url = "/api/config/config_entries/options/flow"
    result = await _post(client, options_url, {"handler": entry.entry_id})
    assert result["type"] == "menu"
    assert result["menu_options"] == ["registers", "energy_dashboard"]
    result = await _post(
        client, f"{options_url}/{result['flow_id']}", {"next_step_id": "registers"}
    )
    assert result["step_id"] == "registers"
    select = _fields(result)["register"]["selector"]["select"]
    assert select["options"] == ["12"]
    result = await _post(client, f"{options_url}/{result['flow_id']}", {"register": "12"})
    fields = _fields(result)
    assert fields["kind"]["selector"]["select"]["translation_key"] == "register_kind"
    assert fields["unit"]["selector"]["select"]["custom_value"] is True
    flow_url = f"{options_url}/{result['flow_id']}"
    await _post(client, flow_url, {"kind": "no such kind"}, status=400)
    result = await _post(client, flow_url, {"kind": "energy_interval", "unit": "kWh"})
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    assert entry.options["registers"] == {"12": {"kind": "energy_interval", "unit": "kWh"}}
    assert await hass.config_entries.async_unload(entry.entry_id)
