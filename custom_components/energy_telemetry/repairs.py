"""Fix flows of the repair issues (`issues.py`): new credentials, checked as set-up checks them."""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult

from .ainsite import validation as ainsite_validation
from .const import CONF_API_URL, CONF_CUSTOMER_ID, CONF_SITE_ID, CONF_SOURCE, LOGGER, SOURCE_AINSITE
from .issues import FIXABLE_KINDS
from .novacore import validation as novacore_validation


class CredentialsRepairFlow(RepairsFlow):
    """Fix an issue with new credentials; on success the entry is updated and reloaded."""

    def __init__(self, entry: ConfigEntry, kind: str) -> None:
        """Fix `kind` of `entry`."""
        super().__init__()
        self._entry = entry
        self._kind = kind

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        """Ask for new credentials."""
        return await self.async_step_credentials()

    async def async_step_credentials(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        """Check the new credentials; on success update and reload the entry."""
        entry = self._entry
        validation = (
            ainsite_validation if entry.data[CONF_SOURCE] == SOURCE_AINSITE else novacore_validation
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            updates = await validation.async_validate_credentials(
                self.hass, entry.data, user_input, errors
            )
            if updates is not None:
                self.hass.config_entries.async_update_entry(entry, data={**entry.data, **updates})
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
                LOGGER.info("%s: new credentials from the repair of %s", entry.title, self._kind)
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="credentials",
            data_schema=self.add_suggested_values_to_schema(
                validation.credentials_schema(entry.data), user_input
            ),
            errors=errors,
            description_placeholders={
                "name": entry.title,
                "site_id": str(entry.data.get(CONF_SITE_ID, "")),
                "api_url": str(entry.data.get(CONF_API_URL, "")),
                "customer_id": str(entry.data.get(CONF_CUSTOMER_ID, "")),
            },
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Return the fix flow of an issue of this integration."""
    entry = hass.config_entries.async_get_entry(str((data or {}).get("entry_id")))
    kind = str((data or {}).get("kind"))
    if entry is None or kind not in FIXABLE_KINDS:
        raise ValueError(f"Unknown issue {issue_id}")
    return CredentialsRepairFlow(entry, kind)
