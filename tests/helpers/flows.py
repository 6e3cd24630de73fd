"""The config flow's first step, as a user takes it."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.energy_telemetry.const import DOMAIN


async def start_flow(hass: HomeAssistant, service: str) -> dict[str, Any]:
    """Open the config flow, pick `service` ("novacore" or "ainsite") in its menu: its form."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU, result
    assert result["menu_options"] == ["novacore", "ainsite"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": service}
    )
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == service
    return dict(result)


async def open_options_step(hass: HomeAssistant, entry: Any, step: str) -> dict[str, Any]:
    """Configure -> `step` in the options menu, as a user does: the step's form (or abort)."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU, result
    assert step in result["menu_options"]
    return dict(
        await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": step})
    )
