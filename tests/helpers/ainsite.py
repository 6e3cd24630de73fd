"""An Ainsite subscription in a running Home Assistant: set up through the config flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.energy_telemetry.const import DOMAIN
from simulator.ainsite_publisher import meter_topic
from tests.helpers.flows import start_flow
from tests.helpers.site import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, SUBSCRIPTION_ID
from tests.helpers.waiting import wait_for

ENERGY = "sensor.meter_mtr_1_energy_register_2"
"""The energy total (register 2) of meter mtr-1."""


def topic(meter: str) -> str:
    """Return the topic of a meter of the test subscription."""
    return meter_topic(CUSTOMER_ID, SUBSCRIPTION_ID, meter)


def at(second: float) -> datetime:
    """Return the moment `second` seconds after midnight today (UTC): within the parser's range."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(seconds=second)


def ainsite_input(tls_port: int, **overrides: Any) -> dict[str, Any]:
    """Return what a user enters in the Ainsite form for the test customer's broker."""
    return {
        "host": "127.0.0.1",
        "port": tls_port,
        "tls": True,
        "username": MQTT_USERNAME,
        "password": MQTT_PASSWORD,
        "customer_id": CUSTOMER_ID,
        "subscription_id": SUBSCRIPTION_ID,
        **overrides,
    }


async def setup_ainsite(hass: HomeAssistant, broker: Any, **overrides: Any) -> Any:
    """Add the subscription through the real config flow and wait until it is connected."""
    result = await start_flow(hass, "ainsite")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], ainsite_input(broker.tls_port, **overrides)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: entry.runtime_data.connected)
    return entry


def stored_entry(port: int, username: str = "refused-user") -> MockConfigEntry:
    """Return a stored entry of the whole customer on a plain MQTT port (not added yet)."""
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
