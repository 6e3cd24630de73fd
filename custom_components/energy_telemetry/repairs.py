"""Repair issues: a Novacore site that is gone, an Ainsite subscription the broker keeps refusing.

Each issue belongs to one config entry and disappears by itself once its source recovers (the
stream of the site opens again, the broker grants the subscription). Both can be fixed with new
credentials, so both offer a fix flow that checks them the way the config flow does, updates the
entry and reloads it.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResult
from homeassistant.helpers import issue_registry as ir

from .config_flow import (
    ainsite_credentials_schema,
    async_ainsite_check,
    async_novacore_login,
    novacore_schema,
)
from .const import CONF_API_URL, CONF_CUSTOMER_ID, CONF_SITE_ID, DOMAIN, LOGGER

SITE_NOT_FOUND: Final = "site_not_found"
SUBSCRIPTION_REFUSED: Final = "subscription_refused"
ISSUE_KINDS: Final = (SITE_NOT_FOUND, SUBSCRIPTION_REFUSED)

# Home Assistant 2025.11 ties an issue to its config entry (and removes it with the entry).
_ISSUE_TAKES_ENTRY: Final = "config_entry_id" in inspect.signature(ir.async_create_issue).parameters


def issue_id(kind: str, entry: ConfigEntry) -> str:
    """Return the id of an issue of a config entry."""
    return f"{kind}_{entry.entry_id}"


@callback
def async_raise_issue(
    hass: HomeAssistant, kind: str, entry: ConfigEntry, placeholders: dict[str, str]
) -> None:
    """Create (or refresh) an issue of a config entry; it is fixable with new credentials."""
    extra: dict[str, Any] = {"config_entry_id": entry.entry_id} if _ISSUE_TAKES_ENTRY else {}
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(kind, entry),
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=kind,
        translation_placeholders={"name": entry.title, **placeholders},
        data={"entry_id": entry.entry_id, "kind": kind},
        **extra,
    )


@callback
def async_clear_issue(hass: HomeAssistant, kind: str, entry: ConfigEntry) -> None:
    """Remove an issue of a config entry, if there is one."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry))


@callback
def async_clear_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Remove every issue of a config entry (it is unloaded or removed)."""
    for kind in ISSUE_KINDS:
        async_clear_issue(hass, kind, entry)


class CredentialsRepairFlow(RepairsFlow):
    """Fix an issue with new credentials, checked as the config flow checks them."""

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
        errors: dict[str, str] = {}
        if self._kind == SITE_NOT_FOUND:
            schema = novacore_schema(entry.data)
            if user_input is not None:
                credentials, sites = await async_novacore_login(self.hass, user_input, errors)
                if credentials is not None:
                    if entry.data[CONF_SITE_ID] in {site.id for site in sites}:
                        return self._async_apply(credentials)
                    errors["base"] = "site_not_found"
        else:
            schema = ainsite_credentials_schema(entry.data[CONF_USERNAME])
            if user_input is not None and await async_ainsite_check(
                self.hass, {**entry.data, **user_input}, errors
            ):
                return self._async_apply(user_input)
        return self.async_show_form(
            step_id="credentials",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
            description_placeholders=_placeholders(entry),
        )

    def _async_apply(self, updates: dict[str, Any]) -> FlowResult:
        entry = self._entry
        self.hass.config_entries.async_update_entry(entry, data={**entry.data, **updates})
        self.hass.config_entries.async_schedule_reload(entry.entry_id)
        LOGGER.info("%s: new credentials from the repair of %s", entry.title, self._kind)
        return self.async_create_entry(data={})


def _placeholders(entry: ConfigEntry) -> dict[str, str]:
    return {
        "name": entry.title,
        "site_id": str(entry.data.get(CONF_SITE_ID, "")),
        "api_url": str(entry.data.get(CONF_API_URL, "")),
        "customer_id": str(entry.data.get(CONF_CUSTOMER_ID, "")),
    }


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Return the fix flow of an issue of this integration."""
    entry = hass.config_entries.async_get_entry(str((data or {}).get("entry_id")))
    kind = str((data or {}).get("kind"))
    if entry is None or kind not in ISSUE_KINDS:
        raise ValueError(f"Unknown issue {issue_id}")
    return CredentialsRepairFlow(entry, kind)
