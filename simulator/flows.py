"""Adding the sources through the integration's own config flow.

The answers to each source's forms are built here once: the demo and the benchmark give them to
a Home Assistant process over REST (HomeAssistantProcess.config_flow), the chaos scenarios to a
Home Assistant in this process (setup_novacore, setup_ainsite). The rule: a source is only ever
added through the real flow, and set-up returns once its connection is up (or raises saying why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.energy_telemetry.const import DOMAIN

from .wait import wait_for

if TYPE_CHECKING:
    from .novacore_server import NovacoreServer

SETUP_TIMEOUT = 60.0
"""Seconds a new entry may take to connect (a hang guard)."""


class SetupError(RuntimeError):
    """The config flow did not create a loaded entry; the message holds its last result."""


def novacore_answers(
    api_url: str, site_id: str, credentials: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Answers that add a Novacore site; credentials: {"private_key": PEM} or {"token": ...}."""
    return [{"next_step_id": "novacore"}, {"api_url": api_url, **credentials}, {"site_id": site_id}]


def ainsite_answers(
    port: int,
    username: str,
    password: str,
    customer_id: str,
    subscription_id: str | None,
    *,
    tls: bool,
    host: str = "127.0.0.1",
) -> list[dict[str, Any]]:
    """Answers that add an Ainsite subscription (every subscription without subscription_id)."""
    broker: dict[str, Any] = {
        "host": host,
        "port": port,
        "tls": tls,
        "username": username,
        "password": password,
        "customer_id": customer_id,
    }
    if subscription_id:
        broker["subscription_id"] = subscription_id
    return [{"next_step_id": "ainsite"}, broker]


async def run_flow(hass: HomeAssistant, answers: Sequence[Mapping[str, Any]]) -> ConfigEntry[Any]:
    """Run the integration's config flow in this process; return the loaded entry."""
    result: Any = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    for answer in answers:
        result = await hass.config_entries.flow.async_configure(result["flow_id"], dict(answer))
    if result["type"] is not FlowResultType.CREATE_ENTRY:
        raise SetupError(f"the config flow did not create an entry: {result}")
    await hass.async_block_till_done()
    entry: ConfigEntry[Any] = result["result"]
    if entry.state is not ConfigEntryState.LOADED:
        raise SetupError(f"the new entry is {entry.state}, not loaded: {entry.reason}")
    return entry


async def setup_novacore(
    hass: HomeAssistant, server: NovacoreServer, site_id: str, private_key_pem: str
) -> ConfigEntry[Any]:
    """Add a Novacore site through the real config flow; return once its stream is open."""
    entry = await run_flow(
        hass, novacore_answers(server.url, site_id, {"private_key": private_key_pem})
    )
    await server.wait_for_streams(site_id, 1, SETUP_TIMEOUT)
    return entry


async def setup_ainsite(
    hass: HomeAssistant,
    port: int,
    username: str,
    password: str,
    customer_id: str,
    subscription_id: str | None,
    *,
    tls: bool = True,
) -> ConfigEntry[Any]:
    """Add an Ainsite subscription through the real config flow; return once it is connected."""
    entry = await run_flow(
        hass, ainsite_answers(port, username, password, customer_id, subscription_id, tls=tls)
    )
    await wait_for(
        lambda: entry.runtime_data.connected,
        timeout=SETUP_TIMEOUT,
        what=f"the Ainsite entry's MQTT session to 127.0.0.1:{port}",
    )
    return entry
