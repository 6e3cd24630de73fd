"""Repair issues: a Novacore site that is gone, an Ainsite subscription the broker keeps refusing.

Each issue appears after repeated answers from a real peer, goes away by itself once the source
recovers, and offers a fix flow (new credentials, checked against the peer) over the HTTP API the
frontend uses.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.energy_telemetry.const import DOMAIN
from simulator.mqtt_peers import RefusingBroker

from .conftest import CUSTOMER_ID, DEVICES, SITE_ID, SITE_NAME, Novacore, wait_for
from .test_novacore_stream import setup_fast

FIX_URL = "/api/repairs/issues/fix"


@pytest.fixture
async def client(hass: HomeAssistant, hass_client: Any) -> Any:
    """Return an HTTP client of a Home Assistant with the repairs API."""
    assert await async_setup_component(hass, "repairs", {})
    return await hass_client()


def _issue(hass: HomeAssistant, kind: str, entry: Any) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


async def _post(client: Any, url: str, body: dict[str, Any]) -> Any:
    response = await client.post(url, json=body)
    assert response.status == 200, await response.text()
    return await response.json()


def _second_identity(novacore: Novacore) -> str:
    key = Ed25519PrivateKey.generate()
    novacore.server.add_identity(base64.b64encode(key.public_key().public_bytes_raw()).decode())
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


async def test_site_gone_raises_an_issue_that_clears_itself(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 404 answers raise the issue (one warning); the site's return clears it."""
    entry = await setup_fast(hass, novacore)
    novacore.server.delete_site(SITE_ID)
    await wait_for(lambda: _issue(hass, "site_not_found", entry))
    issue = _issue(hass, "site_not_found", entry)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_key == "site_not_found"
    assert issue.translation_placeholders == {"name": SITE_NAME, "site_id": SITE_ID}
    stream = entry.runtime_data.stream
    await wait_for(lambda: stream.stats.disconnects >= 5)  # it keeps trying, quietly
    warnings = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(warnings) == 1

    novacore.server.add_site(SITE_ID, SITE_NAME, DEVICES)
    await wait_for(lambda: _issue(hass, "site_not_found", entry) is None)
    assert stream.connected
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_site_gone_fix_flow_with_other_credentials(
    hass: HomeAssistant, client: Any, novacore: Novacore
) -> None:
    """The fix flow checks new credentials against the site, then updates and reloads the entry."""
    entry = await setup_fast(hass, novacore)
    novacore.server.delete_site(SITE_ID)
    await wait_for(lambda: _issue(hass, "site_not_found", entry))

    result = await _post(
        client, FIX_URL, {"handler": DOMAIN, "issue_id": f"site_not_found_{entry.entry_id}"}
    )
    assert result["step_id"] == "credentials"
    assert result["description_placeholders"]["site_id"] == SITE_ID
    flow_url = f"{FIX_URL}/{result['flow_id']}"
    other_key = _second_identity(novacore)
    result = await _post(client, flow_url, {"api_url": novacore.url, "private_key": "nonsense"})
    assert result["errors"] == {"private_key": "invalid_key"}
    result = await _post(client, flow_url, {"api_url": novacore.url, "private_key": other_key})
    assert result["errors"] == {"base": "site_not_found"}  # still deleted

    novacore.server.add_site(SITE_ID, SITE_NAME, DEVICES)
    first = entry.runtime_data
    result = await _post(client, flow_url, {"api_url": novacore.url, "private_key": other_key})
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    assert entry.data["private_key"] == other_key.strip()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not first  # reloaded with the new key
    assert _issue(hass, "site_not_found", entry) is None
    await novacore.server.wait_for_streams(SITE_ID, 1)
    assert await hass.config_entries.async_unload(entry.entry_id)


def _ainsite_entry(port: int, username: str = "refused-user") -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Ainsite {CUSTOMER_ID}",
        unique_id=CUSTOMER_ID,
        data={
            "source": "ainsite",
            "host": "127.0.0.1",
            "port": port,
            "tls": False,
            "username": username,
            "password": "pw",
            "customer_id": CUSTOMER_ID,
            "subscription_id": None,
            "client_id": "ha-energy-telemetry-test",
        },
    )


async def _setup_refused(hass: HomeAssistant, refuser: RefusingBroker) -> MockConfigEntry:
    entry = _ainsite_entry(refuser.port)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    connection = entry.runtime_data.connection
    connection._backoff_initial = 0.01
    connection._backoff_max = 0.05
    return entry


async def test_refused_subscription_raises_an_issue_that_clears_itself(
    hass: HomeAssistant, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Three refusals in a row raise the issue; a granted subscription clears it."""
    async with RefusingBroker("refuse") as refuser:
        entry = await _setup_refused(hass, refuser)
        await wait_for(lambda: _issue(hass, "subscription_refused", entry))
        issue = _issue(hass, "subscription_refused", entry)
        assert issue is not None
        assert issue.translation_placeholders == {
            "name": f"Ainsite {CUSTOMER_ID}",
            "customer_id": CUSTOMER_ID,
            "topic": f"meters/outbound/{CUSTOMER_ID}/+/+",
        }
        assert entry.runtime_data.connection.subscribe_refusals >= 3
        refuser.mode = "grant"
        await wait_for(lambda: _issue(hass, "subscription_refused", entry) is None)
        assert entry.runtime_data.connection.subscribe_refusals == 0
        warnings = [
            r
            for r in caplog.records
            if r.levelname == "WARNING" and "refused the subscription" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_subscription_fix_flow(
    hass: HomeAssistant, socket_enabled: None, client: Any
) -> None:
    """New MQTT credentials are checked against the broker before the entry uses them."""
    async with RefusingBroker("drop") as refuser:
        entry = await _setup_refused(hass, refuser)
        await wait_for(lambda: _issue(hass, "subscription_refused", entry))
        result = await _post(
            client,
            FIX_URL,
            {"handler": DOMAIN, "issue_id": f"subscription_refused_{entry.entry_id}"},
        )
        assert result["step_id"] == "credentials"
        flow_url = f"{FIX_URL}/{result['flow_id']}"
        result = await _post(client, flow_url, {"username": "other", "password": "pw"})
        assert result["errors"] == {"base": "subscribe_failed"}
        refuser.granted_users.add("granted-user")
        result = await _post(client, flow_url, {"username": "granted-user", "password": "pw"})
        assert result["type"] == "create_entry"
        await hass.async_block_till_done()
        assert entry.data["username"] == "granted-user"
        assert entry.state is ConfigEntryState.LOADED
        await wait_for(lambda: entry.runtime_data.connection.subscribe_refusals == 0)
        await wait_for(lambda: entry.runtime_data.connected)
        assert _issue(hass, "subscription_refused", entry) is None
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_issues_go_with_the_entry(hass: HomeAssistant, socket_enabled: None) -> None:
    """Unloading or removing an entry removes its issues."""
    async with RefusingBroker("refuse") as refuser:
        entry = await _setup_refused(hass, refuser)
        await wait_for(lambda: _issue(hass, "subscription_refused", entry))
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
        assert _issue(hass, "subscription_refused", entry) is None
