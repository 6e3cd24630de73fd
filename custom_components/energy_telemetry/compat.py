"""What differs between the Home Assistant releases this integration supports (2025.4 onwards).

Each difference is detected from the running release's own API, never from its version number.
"""

from __future__ import annotations

from functools import cache
import inspect
from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant import config_entries
from homeassistant.components.recorder.models import StatisticMetaData
from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.util.unit_conversion import EnergyConverter

__all__ = [
    "OPTIONS_FLOW_RELOADS",
    "ReloadingOptionsFlow",
    "energy_keys",
    "energy_power",
    "energy_statistic_class",
    "energy_unified_grid",
    "entry_device",
    "issue_of_entry",
    "via_device",
]

_VIA_DEVICE_ID: Final = "via_device_id" in DeviceInfo.__annotations__


def via_device(parent: dr.DeviceEntry) -> DeviceInfo:
    """Return the device info keys linking a device to its parent, old and new style.

    Home Assistant 2026.8 links by registry id (`via_device_id`); older releases by identifier.
    """
    if _VIA_DEVICE_ID:
        return cast("DeviceInfo", {"via_device_id": parent.id})
    return DeviceInfo(via_device=next(iter(parent.identifiers)))


def entry_device(
    registry: dr.DeviceRegistry, identifier: tuple[str, str], config_entry_id: str
) -> dr.DeviceEntry | None:
    """Return the device of a config entry with an identifier.

    Home Assistant 2026.10 looks devices up per config entry (`async_get_device` is deprecated
    there, as identifiers are unique only within an entry); older releases by identifier.
    """
    by_identifier = getattr(registry, "async_get_device_by_identifier", None)
    if by_identifier is not None:
        device: dr.DeviceEntry | None = by_identifier(identifier, config_entry_id)
        return device
    return registry.async_get_device(identifiers={identifier})


if TYPE_CHECKING:
    from homeassistant.config_entries import OptionsFlow as ReloadingOptionsFlow
else:
    ReloadingOptionsFlow = getattr(
        config_entries, "OptionsFlowWithReload", config_entries.OptionsFlow
    )

OPTIONS_FLOW_RELOADS: Final = ReloadingOptionsFlow is not config_entries.OptionsFlow
"""True from Home Assistant 2025.8: an options flow reloads its entry itself when it changes the
options. An update listener that reloads is then not allowed, and combined with
`async_update_reload_and_abort` it is deprecated (2026.6) and an error (2026.12). Before 2025.8,
an update listener reloads the entry when its options change."""


_ISSUE_TAKES_ENTRY: Final = "config_entry_id" in inspect.signature(ir.async_create_issue).parameters


def issue_of_entry(entry: ConfigEntry) -> dict[str, Any]:
    """Return the keyword that ties a repair issue to its config entry, where there is one.

    Home Assistant 2025.11 ties an issue to its entry (and removes it with the entry).
    """
    return {"config_entry_id": entry.entry_id} if _ISSUE_TAKES_ENTRY else {}


def _schema_keys(schema: Any) -> frozenset[str]:
    """Return the keys a voluptuous or probatio schema (possibly inside an All) accepts."""
    inner = getattr(schema, "schema", None)
    if isinstance(inner, dict):
        return frozenset(str(key) for key in inner)
    keys: frozenset[str] = frozenset()
    for validator in getattr(schema, "validators", ()):
        keys |= _schema_keys(validator)
    return keys


@cache
def energy_keys(schema: str) -> frozenset[str]:
    """Return the keys the running release's energy preferences accept in one part.

    `schema`: a schema of `homeassistant.components.energy.data`, such as
    "BATTERY_SOURCE_SCHEMA". Home Assistant added power sensors (`stat_rate`, 2025.12), power
    options (`power_config`, 2026.2), a battery's state of charge (`stat_soc`), capacity and a
    `name` per source (2026.6) over the releases this integration supports.
    """
    from homeassistant.components.energy import data  # noqa: PLC0415

    return _schema_keys(getattr(data, schema, None))


@cache
def energy_unified_grid() -> bool:
    """Return True where each grid connection is a source of its own (Home Assistant 2026.3).

    Before, one grid source holds lists (`flow_from`, `flow_to`, `power`).
    """
    return "flow_from" not in energy_keys("GRID_SOURCE_SCHEMA")


def energy_power(schema: str, entity_id: str) -> dict[str, Any]:
    """Return a power sensor in the newest form a part of the preferences takes, or nothing.

    The standard form: the integration's power sensors already have the dashboard's signs.
    """
    keys = energy_keys(schema)
    if "power_config" in keys:
        return {"power_config": {"stat_rate": entity_id}}
    if "stat_rate" in keys:
        return {"stat_rate": entity_id}
    return {}


_UNIT_CLASS: Final = "unit_class" in StatisticMetaData.__annotations__


def energy_statistic_class() -> dict[str, Any]:
    """Return the metadata keys that say a statistic holds energy.

    `unit_class` exists from Home Assistant 2025.10 and is required from 2026.11; before it,
    `has_mean` says there is no mean.
    """
    return {"unit_class": EnergyConverter.UNIT_CLASS} if _UNIT_CLASS else {"has_mean": False}
