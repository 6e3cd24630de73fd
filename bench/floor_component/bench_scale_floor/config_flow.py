"""One-step config flow: the broker, the account and the topic filter, answered by the bench."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
import voluptuous as vol

from .const import CONF_CLIENT_ID, CONF_TOPIC, DOMAIN

SCHEMA = vol.Schema(
    {
        vol.Required("host"): str,
        vol.Required("port"): int,
        vol.Required("username"): str,
        vol.Required("password"): str,
        vol.Required(CONF_TOPIC): str,
        vol.Required(CONF_CLIENT_ID): str,
    }
)


class ScaleFloorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Create an entry from the settings given; no check (the bench waits for the subscription)."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the settings; create the entry with them."""
        if user_input is None:
            return self.async_show_form(step_id="user", data_schema=SCHEMA)
        return self.async_create_entry(title="Bench scale floor", data=user_input)
