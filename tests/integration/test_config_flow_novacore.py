"""Config flow of Novacore sites: every path, every error recovering to an entry."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_RECONFIGURE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.energy_telemetry.const import DOMAIN
from simulator.novacore_server import encode_public_key
from tests.helpers.flows import start_flow
from tests.helpers.site import SITE_ID, SITE_NAME, Novacore, pem


async def _start(hass: HomeAssistant) -> str:
    return str((await start_flow(hass, "novacore"))["flow_id"])


async def test_full_flow_with_key(hass: HomeAssistant, novacore: Novacore) -> None:
    """A private key leads to the site list and an entry named after the site."""
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url + "/", "private_key": novacore.private_key_pem}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "site"
    result = await hass.config_entries.flow.async_configure(flow_id, {"site_id": SITE_ID})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == SITE_NAME
    assert result["result"].unique_id == SITE_ID
    assert result["result"].supports_options  # the power signs per DER type
    assert result["data"] == {
        "source": "novacore",
        "api_url": novacore.url,
        "private_key": novacore.private_key_pem.strip(),
        "token": None,
        "site_id": SITE_ID,
    }
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("user_input", "error_field", "error"),
    [
        ({}, "base", "missing_credentials"),
        ({"private_key": "KEY", "token": "TOKEN"}, "base", "missing_credentials"),
        ({"private_key": "not a key"}, "private_key", "invalid_key"),
        ({"private_key": "RSA"}, "private_key", "invalid_key"),
        ({"private_key": "OTHER"}, "base", "invalid_auth"),
        ({"token": "not-a-valid-token"}, "base", "invalid_auth"),
        ({"private_key": "KEY", "api_url": "http://127.0.0.1:1"}, "base", "cannot_connect"),
        ({"private_key": "KEY", "api_url": "NOTJSON"}, "base", "cannot_connect"),
    ],
)
async def test_errors_recover(
    hass: HomeAssistant,
    novacore: Novacore,
    user_input: dict[str, str],
    error_field: str,
    error: str,
) -> None:
    """Each error is shown on the form, and correct input then creates the entry."""
    replacements = {
        "KEY": novacore.private_key_pem,
        "TOKEN": novacore.server.issue_token(novacore.identity),
        "RSA": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "OTHER": pem(ec.generate_private_key(ec.SECP256R1())),
        "NOTJSON": novacore.url + "/sites/nowhere/../..",
    }
    data = {"api_url": novacore.url}
    data.update({key: replacements.get(value, value) for key, value in user_input.items()})
    if data["api_url"] == replacements["NOTJSON"]:
        # A server that answers, but not with the API: a plain page instead of JSON.
        novacore.server.fail_all(200, 1)
        data["api_url"] = novacore.url
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, data)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {error_field: error}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url, "private_key": novacore.private_key_pem}
    )
    assert result["step_id"] == "site"
    result = await hass.config_entries.flow.async_configure(flow_id, {"site_id": SITE_ID})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_token_and_raw_key(hass: HomeAssistant, novacore: Novacore) -> None:
    """A bare token is stored as such; a raw base64 key is accepted too."""
    flow_id = await _start(hass)
    token = novacore.server.issue_token(novacore.identity)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url, "token": token}
    )
    result = await hass.config_entries.flow.async_configure(flow_id, {"site_id": SITE_ID})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["token"] == token
    assert result["data"]["private_key"] is None
    await hass.async_block_till_done()

    novacore.server.add_site("sit-second", "Cabin")
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url, "private_key": novacore.private_key_raw_b64}
    )
    result = await hass.config_entries.flow.async_configure(flow_id, {"site_id": "sit-second"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Cabin"
    await hass.async_block_till_done()


async def test_duplicate_site_aborts(hass: HomeAssistant, novacore: Novacore) -> None:
    """Adding the same site twice aborts."""
    for expected in (FlowResultType.CREATE_ENTRY, FlowResultType.ABORT):
        flow_id = await _start(hass)
        result = await hass.config_entries.flow.async_configure(
            flow_id, {"api_url": novacore.url, "private_key": novacore.private_key_pem}
        )
        result = await hass.config_entries.flow.async_configure(flow_id, {"site_id": SITE_ID})
        assert result["type"] is expected
        await hass.async_block_till_done()
    assert result["reason"] == "already_configured"


async def test_no_sites_aborts(hass: HomeAssistant, novacore: Novacore) -> None:
    """An identity that sees no site cannot add one."""
    key = ec.generate_private_key(ec.SECP256R1())
    novacore.server.add_identity(encode_public_key(key))
    flow_id = await _start(hass)
    novacore.server.add_site(SITE_ID, SITE_NAME, identities=[novacore.identity])
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url, "private_key": pem(key)}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_sites"


async def _entry(hass: HomeAssistant, novacore: Novacore, **credentials: str):  # type: ignore[no-untyped-def]
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url, **credentials}
    )
    result = await hass.config_entries.flow.async_configure(flow_id, {"site_id": SITE_ID})
    await hass.async_block_till_done()
    return result["result"]


async def test_reauth(hass: HomeAssistant, novacore: Novacore) -> None:
    """Reauth replaces the credentials; errors recover."""
    entry = await _entry(hass, novacore, token=novacore.server.issue_token(novacore.identity))
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_REAUTH, "entry_id": entry.entry_id},
        data=dict(entry.data),
    )
    assert result["step_id"] == "reauth_confirm"
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, {"token": "bad.token.x"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    assert result["errors"] == {"base": "missing_credentials"}
    # An identity that cannot see this site is refused.
    stranger = ec.generate_private_key(ec.SECP256R1())
    novacore.server.add_identity(encode_public_key(stranger))
    novacore.server.add_site(SITE_ID, SITE_NAME, identities=[novacore.identity])
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {"private_key": pem(stranger)},
    )
    assert result["errors"] == {"base": "site_not_found"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"private_key": novacore.private_key_pem}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["private_key"] == novacore.private_key_pem.strip()
    assert entry.data["token"] is None
    await hass.async_block_till_done()


async def test_reconfigure(hass: HomeAssistant, novacore: Novacore) -> None:
    """Reconfigure changes the URL and credentials of the same site; errors recover."""
    entry = await _entry(hass, novacore, private_key=novacore.private_key_pem)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    assert result["step_id"] == "reconfigure"
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": "http://127.0.0.1:1", "private_key": novacore.private_key_pem}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    token = novacore.server.issue_token(novacore.identity)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"api_url": novacore.url, "token": token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["token"] == token
    assert entry.data["private_key"] is None
    await hass.async_block_till_done()


def test_raw_key_fixture_is_ed25519(novacore: Novacore) -> None:
    """The fixture's raw key is the 32-byte form the flow accepts."""
    assert len(base64.b64decode(novacore.private_key_raw_b64)) == 32
