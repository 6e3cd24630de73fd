"""The energy dashboard in one step: what an entry adds to Home Assistant's energy preferences.

Each source lists its items (`EnergyItem`: a grid meter, a PV, a battery, an EV charger, an
Ainsite meter register). This module tells which are in the dashboard already (as the sensor or
as its statistic), builds the new sources in the form the running release takes (`compat.py`),
checks them with that release's own schemas and writes them through its energy manager. Energy
always comes from the integration's hour-true statistics; nothing the user set is changed or
removed (before Home Assistant 2026.3 the one grid source gets its new meters appended).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import voluptuous as vol

from .compat import energy_keys, energy_power, energy_unified_grid
from .const import LOGGER

type Role = Literal["grid", "solar", "battery", "device"]
ROLES: Final[tuple[Role, ...]] = ("grid", "solar", "battery", "device")
_NO_PRICE: Final = {"entity_energy_price": None, "number_energy_price": None}


@dataclass(frozen=True, slots=True)
class EnergyItem:
    """Something an entry can add to the energy dashboard."""

    key: str
    """Unique within the entry (the value of its checkbox)."""
    role: Role
    """Where it goes by default; an Ainsite register may also go to the grid or be a device."""
    name: str
    energy_from: str
    """Statistic id: grid import, production, battery discharge, a device's consumption."""
    energy_to: str | None = None
    """Statistic id: grid export, battery charge."""
    sensors: tuple[str, ...] = ()
    """Entity ids of its energy sensors (the dashboard may use a sensor instead of its statistic)."""
    power: str | None = None
    """Entity id of its power sensor, with the dashboard's sign."""
    soc: str | None = None
    """Entity id of a battery's state of charge."""
    capacity: float | None = None
    """A battery's capacity in kWh."""

    @property
    def statistics(self) -> tuple[str, ...]:
        """Return the statistic ids of its energy."""
        return (self.energy_from,) if self.energy_to is None else (self.energy_from, self.energy_to)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def used_in(preferences: dict[str, Any] | None) -> set[str]:
    """Return every statistic and entity id the preferences use, in any role."""
    return set(_strings(preferences or {}))


def is_present(item: EnergyItem, used: set[str]) -> bool:
    """Return True when the item's energy is in the dashboard (as its statistic or sensor)."""
    return any(stat in used for stat in (*item.statistics, *item.sensors))


def has_grid_import(preferences: dict[str, Any] | None) -> bool:
    """Return True when the dashboard counts energy from the grid already."""
    for source in (preferences or {}).get("energy_sources", []):
        if source.get("type") == "grid" and (
            source.get("stat_energy_from") or source.get("flow_from")
        ):
            return True
    return False


async def async_preferences(hass: HomeAssistant) -> dict[str, Any] | None:
    """Return the energy preferences as they are (None: never saved)."""
    from homeassistant.components.energy.data import async_get_manager  # noqa: PLC0415

    manager = await async_get_manager(hass)
    return None if manager.data is None else dict(manager.data)


def _with_name(source: dict[str, Any], schema: str, name: str) -> dict[str, Any]:
    if "name" in energy_keys(schema):
        source["name"] = name
    return source


def _grid_source(item: EnergyItem) -> dict[str, Any]:
    """Return a grid connection of its own (Home Assistant 2026.3 onwards)."""
    source: dict[str, Any] = {
        "type": "grid",
        "stat_energy_from": item.energy_from,
        "stat_energy_to": item.energy_to,
        "stat_cost": None,
        **_NO_PRICE,
        "stat_compensation": None,
        "entity_energy_price_export": None,
        "number_energy_price_export": None,
        "cost_adjustment_day": 0.0,
    }
    if item.power is not None:
        source.update(energy_power("GRID_SOURCE_SCHEMA", item.power))
    return _with_name(source, "GRID_SOURCE_SCHEMA", item.name)


def _add_to_legacy_grid(grid: dict[str, Any], item: EnergyItem) -> None:
    """Append a meter to the one grid source of releases before 2026.3."""
    flow_from: list[dict[str, Any]] = grid["flow_from"]
    # Power sensors pair with the meters by position (as 2026.3 migrates them): only where the
    # list of power sensors has one for each meter before this one.
    if (
        item.power is not None
        and "power" in energy_keys("GRID_SOURCE_SCHEMA")
        and len(grid.get("power", [])) == len(flow_from)
        and (power := energy_power("GRID_POWER_SOURCE_SCHEMA", item.power))
    ):
        grid["power"] = [*grid.get("power", []), power]
    flow_from.append({"stat_energy_from": item.energy_from, "stat_cost": None, **_NO_PRICE})
    if item.energy_to is not None:
        grid["flow_to"].append(
            {"stat_energy_to": item.energy_to, "stat_compensation": None, **_NO_PRICE}
        )


def _solar_source(item: EnergyItem) -> dict[str, Any]:
    source: dict[str, Any] = {
        "type": "solar",
        "stat_energy_from": item.energy_from,
        "config_entry_solar_forecast": None,
    }
    if item.power is not None and "stat_rate" in energy_keys("SOLAR_SOURCE_SCHEMA"):
        source["stat_rate"] = item.power
    return _with_name(source, "SOLAR_SOURCE_SCHEMA", item.name)


def _battery_source(item: EnergyItem) -> dict[str, Any]:
    keys = energy_keys("BATTERY_SOURCE_SCHEMA")
    source: dict[str, Any] = {
        "type": "battery",
        "stat_energy_from": item.energy_from,
        "stat_energy_to": item.energy_to,
    }
    if item.power is not None:
        source.update(energy_power("BATTERY_SOURCE_SCHEMA", item.power))
    if item.soc is not None and "stat_soc" in keys:
        source["stat_soc"] = item.soc
    if item.capacity and "capacity" in keys:
        source["capacity"] = item.capacity
    return _with_name(source, "BATTERY_SOURCE_SCHEMA", item.name)


def _device(item: EnergyItem) -> dict[str, Any]:
    keys = energy_keys("DEVICE_CONSUMPTION_SCHEMA")
    device: dict[str, Any] = {"stat_consumption": item.energy_from}
    if item.power is not None and "stat_rate" in keys:
        device["stat_rate"] = item.power
    if "name" in keys:
        device["name"] = item.name
    return device


def updated_preferences(
    preferences: dict[str, Any] | None, chosen: Iterable[tuple[EnergyItem, Role]]
) -> dict[str, Any] | None:
    """Return the preferences with the chosen items added as `role` (None: nothing to add).

    Items already in the dashboard are left out; the user's own sources stay as they are.
    """
    used = used_in(preferences)
    sources: list[dict[str, Any]] = [
        dict(source) for source in (preferences or {}).get("energy_sources", [])
    ]
    devices: list[dict[str, Any]] = list((preferences or {}).get("device_consumption", []))
    added = False
    for item, role in chosen:
        if is_present(item, used):
            continue
        used.update(item.statistics)
        added = True
        if role == "grid":
            if energy_unified_grid():
                sources.append(_grid_source(item))
                continue
            grid = next((source for source in sources if source["type"] == "grid"), None)
            if grid is None:
                grid = {"type": "grid", "flow_from": [], "flow_to": [], "cost_adjustment_day": 0.0}
                sources.insert(0, grid)
            else:
                grid.update(flow_from=list(grid["flow_from"]), flow_to=list(grid["flow_to"]))
            _add_to_legacy_grid(grid, item)
        elif role == "solar":
            sources.append(_solar_source(item))
        elif role == "battery":
            sources.append(_battery_source(item))
        else:
            devices.append(_device(item))
    if not added:
        return None
    return {"energy_sources": sources, "device_consumption": devices}


class EnergyPreferencesError(HomeAssistantError):
    """The running release refuses the new energy preferences."""


async def async_save(hass: HomeAssistant, update: dict[str, Any]) -> None:
    """Check the preferences with the release's own schemas, then write them as the UI does."""
    from homeassistant.components.energy import data  # noqa: PLC0415

    try:
        data.ENERGY_SOURCE_SCHEMA(update["energy_sources"])
        for device in update["device_consumption"]:
            data.DEVICE_CONSUMPTION_SCHEMA(device)
    # probatio's Invalid where Home Assistant aliases voluptuous; the release's own validators
    # raise a KeyError or TypeError on preferences they do not expect.
    except (vol.Invalid, KeyError, TypeError, ValueError) as err:
        LOGGER.warning("The energy dashboard refuses the new preferences: %s", err)
        raise EnergyPreferencesError(str(err)) from err
    manager = await data.async_get_manager(hass)
    await manager.async_update(update)  # type: ignore[arg-type]
