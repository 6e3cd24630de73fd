"""The house's own consumption on a Novacore site, by the energy dashboard's formula.

home = grid import - grid export + PV production + battery discharge - battery charge, over
every meter, PV and battery of the site (docs/how-it-works.md). Power is shown only while every
one of those DERs has a fresh power (never a sum missing a term); energy grows with the
counters' net growth and never goes down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from homeassistant.helpers.device_registry import DeviceInfo

from ..const import DOMAIN
from ..coordinator import Group, Point
from ..totals import NetGrowth
from .descriptions import power_description, total_description

if TYPE_CHECKING:
    from .coordinator import NovacoreCoordinator, NovacoreGroup

HOME_KEY: Final = ""
"""The key of the site's consumption group: no DER has an empty key."""
POWER_SIGNS: Final = {"meter": 1.0, "pv": 1.0, "battery": 1.0}
"""The DER types whose power adds to the house's: each power already has Home Assistant's sign
(grid positive while importing, PV while producing, battery while discharging)."""
COUNTERS: Final = {
    "meter": (("energy_imported", 1.0), ("energy_exported", -1.0)),
    "pv": (("energy_produced", 1.0),),
    "battery": (("energy_discharged", 1.0), ("energy_charged", -1.0)),
}
"""The energy counters of each DER type and how they count for the house."""
POWER_KEY: Final = "power"

HOME_POWER: Final = power_description("home_power", translation_key="home_power")
HOME_ENERGY: Final = total_description("home_energy")


class HomeConsumption:
    """The site's consumption group: its power and its energy total."""

    def __init__(self, coordinator: NovacoreCoordinator) -> None:
        """Start without the group; it is made once the site has a meter."""
        self._coordinator = coordinator
        self.group: Group | None = None
        self.growth = NetGrowth()
        self._terms: list[str] | None = None
        """Keys of the DERs that count (cached until DERs come or go)."""

    # --- the group ----------------------------------------------------------------------------

    def async_ders_changed(self) -> None:
        """Take a change of the site's DERs (listed or seen); make the group with a meter."""
        coordinator = self._coordinator
        self._terms = None
        if self.group is None and "meter" in {der_type for _, der_type in self._types()}:
            site_id = coordinator.site_id
            group = Group(HOME_KEY, site_id, DeviceInfo(identifiers={(DOMAIN, site_id)}), points={})
            coordinator.data[HOME_KEY] = group
            self.group = group
            coordinator.async_add_point(group, HOME_POWER)
            coordinator.async_add_point(group, HOME_ENERGY)
            self.async_update(None)

    def async_forget(self, key: str) -> None:
        """Forget a DER that left the site."""
        self._terms = None
        for counter, _ in COUNTERS.get(self._type_of(key) or "", ()):
            self.growth.forget(f"{key}.{counter}")

    def _types(self) -> list[tuple[str, str]]:
        """Return (key, type) of every DER of the site, listed or seen in readings."""
        coordinator = self._coordinator
        found = {
            key: group.der_type
            for key, group in coordinator.data.items()
            if key != HOME_KEY and hasattr(group, "der_type")
        }
        for der_id, (der, _) in coordinator.devices.directory.ders_by_id.items():
            found.setdefault(der_id, der.type)
        return list(found.items())

    def _type_of(self, key: str) -> str | None:
        return dict(self._types()).get(key)

    @property
    def terms(self) -> list[str]:
        """Return the keys of the DERs whose power and energy count for the house."""
        if self._terms is None:
            self._terms = sorted(key for key, der_type in self._types() if der_type in COUNTERS)
        return self._terms

    # --- values -------------------------------------------------------------------------------

    def async_update(self, timestamp: float | None) -> None:
        """Recompute the power and add the counters' growth (after readings, at `timestamp`)."""
        group = self.group
        if group is None:
            return
        coordinator = self._coordinator
        data = coordinator.data
        power: float | None = 0.0
        growth = self.growth
        for key in self.terms:
            der: NovacoreGroup | None = data.get(key)  # type: ignore[assignment]
            if der is None:
                power = None
                continue
            sign = POWER_SIGNS[der.der_type]
            point = der.points.get(POWER_KEY)
            if power is not None:
                if point is None or point.value is None or der.stale or der.last_seen is None:
                    power = None
                else:
                    power += sign * float(point.value)  # type: ignore[arg-type]
            for counter, counter_sign in COUNTERS[der.der_type]:
                total = der.points.get(counter)
                if total is None or not isinstance(total.value, float):
                    continue
                name = f"{key}.{counter}"
                if (
                    not growth.known(name)
                    and total.guard is not None
                    and (start := total.guard.start) is not None
                ):
                    # A counter counts from where it started: its value restored from the last
                    # run (what it counted while Home Assistant was down counts too), else its
                    # first reading (also those applied before its entity was added).
                    growth.add(name, counter_sign, start)
                growth.add(name, counter_sign, total.value)
        self._set_power(group.points[HOME_POWER.key], power, timestamp)
        self._add_energy(group.points[HOME_ENERGY.key], timestamp)

    def _set_power(self, point: Point, power: float | None, timestamp: float | None) -> None:
        if power is None:
            if point.value is not None:
                point.value = None
                if point.entity is not None:
                    point.entity.async_write_ha_state()
            return
        self._coordinator.async_set_value(point, round(power, 3), timestamp)

    def _add_energy(self, point: Point, timestamp: float | None) -> None:
        guard = point.guard
        if guard is None or not guard.seeded:
            return  # its restored value is not known yet: the growth waits
        growth = self.growth.take()
        if growth == 0.0 and guard.value is not None:
            return
        last = guard.timestamp
        if timestamp is None or (last is not None and timestamp <= last):
            # DERs report at their own moments: the total's time only moves forward.
            timestamp = None if last is None else last + 1.0
        # Rounded to a mWh: sums of many floats would otherwise show their rounding noise.
        self._coordinator.async_set_value(point, round((guard.value or 0.0) + growth, 3), timestamp)

    def diagnostics(self) -> dict[str, Any]:
        """Return which DERs count and the growth not shown yet."""
        return {"ders": self.terms, "balance": self.growth.balance}
