"""Config flow of Ainsite subscriptions against a real mosquitto: every path recovers to an entry."""

from __future__ import annotations

from typing import Any, Literal

from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_RECONFIGURE, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.energy_telemetry.const import DOMAIN
from simulator.processes import free_port
from tests.helpers.ainsite import ainsite_input
from tests.helpers.brokers import RefusingBroker
from tests.helpers.flows import start_flow
from tests.helpers.site import CUSTOMER_ID, SUBSCRIPTION_ID
from tests.helpers.waiting import wait_for


def _input(broker: Any, **overrides: Any) -> dict[str, Any]:
    return ainsite_input(broker.tls_port, **overrides)


async def _start(hass: HomeAssistant) -> str:
    return str((await start_flow(hass, "ainsite"))["flow_id"])


async def test_full_flow(hass: HomeAssistant, mosquitto: Any) -> None:
    """The flow connects, subscribes and stores a client id for the persistent session."""
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(mosquitto))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == f"{CUSTOMER_ID}/{SUBSCRIPTION_ID}"
    assert result["result"].supports_options
    data = result["data"]
    assert data["client_id"].startswith("ha-energy-telemetry-")
    assert data["subscription_id"] == SUBSCRIPTION_ID
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"password": "wrong"}, "invalid_auth"),
        ({"username": "nobody"}, "invalid_auth"),
        ({"port": "FREE"}, "cannot_connect"),
        ({"tls": False}, "cannot_connect"),
        ({"customer_id": "bad/customer"}, "cannot_connect"),
    ],
)
async def test_errors_recover(
    hass: HomeAssistant, mosquitto: Any, overrides: dict[str, Any], error: str
) -> None:
    """Wrong password, unreachable broker and a refused subscription each recover."""
    if overrides.get("port") == "FREE":
        overrides["port"] = free_port()
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(mosquitto, **overrides))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    result = await hass.config_entries.flow.async_configure(flow_id, _input(mosquitto))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


@pytest.mark.parametrize("mode", ["refuse", "drop"])
async def test_subscription_refused_recovers(
    hass: HomeAssistant, mosquitto: Any, mode: Literal["refuse", "drop"]
) -> None:
    """A broker that refuses the subscription (SUBACK 0x80) or drops the session on it."""
    flow_id = await _start(hass)
    async with RefusingBroker(mode) as refuser:
        result = await hass.config_entries.flow.async_configure(
            flow_id, _input(mosquitto, host="127.0.0.1", port=refuser.port, tls=False)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "subscribe_failed"}
    assert refuser.subscriptions  # the check did subscribe
    result = await hass.config_entries.flow.async_configure(flow_id, _input(mosquitto))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_duplicates_abort(hass: HomeAssistant, mosquitto: Any) -> None:
    """The same customer/subscription twice aborts; the whole customer is another entry."""
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(mosquitto))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(mosquitto))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _input(mosquitto, subscription_id="")
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == CUSTOMER_ID
    assert result["data"]["subscription_id"] is None
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        assert await hass.config_entries.async_unload(entry.entry_id)


async def _entry(hass: HomeAssistant, broker: Any) -> Any:
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _input(broker))
    await hass.async_block_till_done()
    return result["result"]


async def test_reauth(hass: HomeAssistant, mosquitto: Any) -> None:
    """New credentials are checked against the broker; the client id is kept."""
    entry = await _entry(hass, mosquitto)
    client_id = entry.data["client_id"]
    first_coordinator = entry.runtime_data
    mosquitto.add_user("new-user", "new-pass", CUSTOMER_ID)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_REAUTH, "entry_id": entry.entry_id},
        data=dict(entry.data),
    )
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"username": "new-user", "password": "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"username": "new-user", "password": "new-pass"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["username"] == "new-user"
    assert entry.data["client_id"] == client_id
    await hass.async_block_till_done()
    # The entry was reloaded with the new credentials (by the flow; no update listener).
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not first_coordinator
    await wait_for(lambda: entry.runtime_data.connected)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure(hass: HomeAssistant, mosquitto: Any) -> None:
    """Reconfigure checks the new broker settings; the customer cannot change."""
    entry = await _entry(hass, mosquitto)
    client_id = entry.data["client_id"]
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    assert result["step_id"] == "ainsite_reconfigure"
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, _input(mosquitto, port=free_port())
    )
    assert result["errors"] == {"base": "cannot_connect"}
    mosquitto.add_user("second-user", "second-pass", CUSTOMER_ID)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _input(mosquitto, username="second-user", password="second-pass")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["username"] == "second-user"
    assert entry.data["client_id"] == client_id
    await hass.async_block_till_done()

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(mosquitto, customer_id="someone-else")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)
