"""Repair issues of an entry: a Novacore site that is gone, an Ainsite subscription refused.

Each issue belongs to one config entry and disappears by itself once its source recovers (the
site's stream opens again, the broker grants the subscription). Both can be fixed with new
credentials (`repairs.py`).
"""

from __future__ import annotations

from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .compat import issue_of_entry
from .const import DOMAIN

SITE_NOT_FOUND: Final = "site_not_found"
SUBSCRIPTION_REFUSED: Final = "subscription_refused"
ISSUE_KINDS: Final = (SITE_NOT_FOUND, SUBSCRIPTION_REFUSED)


def issue_id(kind: str, entry: ConfigEntry) -> str:
    """Return the id of an issue of a config entry."""
    return f"{kind}_{entry.entry_id}"


@callback
def async_raise_issue(
    hass: HomeAssistant, kind: str, entry: ConfigEntry, placeholders: dict[str, str]
) -> None:
    """Create (or refresh) an issue of a config entry; it is fixable with new credentials."""
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
        **issue_of_entry(entry),
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
