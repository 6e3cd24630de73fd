"""Repair issues of an entry: a site that is gone, a subscription refused, a limit reached.

Each issue belongs to one config entry. A gone site and a refused subscription disappear by
themselves once the source recovers, and can be fixed with new credentials (`repairs.py`). A
limit reached (the peer sent more meters, registers, DERs or fields than an entry takes) says
what was dropped; it goes with the entry's next unload.
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
FIXABLE_KINDS: Final = (SITE_NOT_FOUND, SUBSCRIPTION_REFUSED)
"""Issues fixed with new credentials."""
METERS_LIMIT: Final = "meters_limit"
REGISTERS_LIMIT: Final = "registers_limit"
DERS_LIMIT: Final = "ders_limit"
FIELDS_LIMIT: Final = "fields_limit"
LIMIT_KINDS: Final = (METERS_LIMIT, REGISTERS_LIMIT, DERS_LIMIT, FIELDS_LIMIT)
ISSUE_KINDS: Final = (*FIXABLE_KINDS, *LIMIT_KINDS)


def issue_id(kind: str, entry: ConfigEntry) -> str:
    """Return the id of an issue of a config entry."""
    return f"{kind}_{entry.entry_id}"


@callback
def async_raise_issue(
    hass: HomeAssistant, kind: str, entry: ConfigEntry, placeholders: dict[str, str]
) -> None:
    """Create (or refresh) an issue of a config entry (fixable with new credentials or not)."""
    fixable = kind in FIXABLE_KINDS
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(kind, entry),
        is_fixable=fixable,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR if fixable else ir.IssueSeverity.WARNING,
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
