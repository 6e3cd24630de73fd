"""Diagnostics of the Energy Telemetry integration, with every credential redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .const import CONF_CLIENT_ID, CONF_PRIVATE_KEY, CONF_TOKEN
from .coordinator import EnergyTelemetryConfigEntry

TO_REDACT = {CONF_PRIVATE_KEY, CONF_TOKEN, CONF_PASSWORD, CONF_USERNAME, CONF_CLIENT_ID}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EnergyTelemetryConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    return {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "coordinator": entry.runtime_data.diagnostics(),
    }
