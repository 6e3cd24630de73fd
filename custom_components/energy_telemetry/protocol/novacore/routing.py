"""Which DER a reading belongs to, and what its group is called (docs/how-it-works.md).

A reading names its DER by id when it can; else by its device's serial number, else it is the
only listed DER of its type, else it is a DER the device list does not know, grouped by serial,
make or type.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Final

from .client import Der, Device
from .readings import DerReading

TYPE_NAMES: Final = {
    "pv": "Solar",
    "battery": "Battery",
    "meter": "Meter",
    "inverter": "Inverter",
    "ev_charger": "EV charger",
}

type RouteKey = tuple[str | None, str, str | None, str | None]
"""What routes a reading: (der_id, der_type, make, device_sn)."""


def slug(text: str) -> str:
    """Return a lower-case key of letters, digits and underscores."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def route_key(reading: DerReading) -> RouteKey:
    """Return what decides a reading's DER: readings with equal keys go to the same DER."""
    return (reading.der_id, reading.der_type, reading.make, reading.device_sn)


def unlisted_key(reading: DerReading) -> str:
    """Return the group key of a DER the device list does not name: by serial, make or type."""
    if reading.device_sn is not None:
        return f"{reading.der_type}_{slug(reading.device_sn)}"
    if reading.make:
        return f"{reading.der_type}_{slug(reading.make)}"
    return reading.der_type


def type_name(der_type: str) -> str:
    """Return the name of a DER type for people ("Solar", "EV charger", ...)."""
    return TYPE_NAMES.get(der_type, der_type.replace("_", " ").title())


@dataclass(frozen=True, slots=True)
class Route:
    """Where a reading goes."""

    key: str
    """The group key: the listed DER's id, or a key made from the reading."""
    der: Der | None
    """The listed DER, if the list names it."""
    device: Device | None
    """The listed physical device, if the list names it (also when its DER is not listed)."""
    replaces: str | None = None
    """The key the DER's readings were grouped under before the list named it, if any."""


class DerDirectory:
    """The site's device list, indexed the ways a reading can name its DER."""

    def __init__(self) -> None:
        """Start with no list."""
        self.devices: tuple[Device, ...] = ()
        self.ders_by_id: dict[str, tuple[Der, Device]] = {}
        self._ders_by_type: dict[str, list[tuple[Der, Device]]] = {}
        self._devices_by_hardware_id: dict[str, Device] = {}

    def load(self, devices: list[Device]) -> set[str]:
        """Take a new device list; return the ids of its devices and DERs."""
        self.devices = tuple(devices)
        self.ders_by_id = {}
        self._ders_by_type = {}
        self._devices_by_hardware_id = {}
        listed: set[str] = set()
        for device in devices:
            listed.add(device.id)
            if device.hardware_id:
                self._devices_by_hardware_id.setdefault(device.hardware_id, device)
            for der in device.ders:
                self.ders_by_id[der.id] = (der, device)
                self._ders_by_type.setdefault(der.type, []).append((der, device))
                listed.add(der.id)
        return listed

    def route(self, reading: DerReading) -> Route:
        """Return the DER of a reading: by DER id, by serial, as the only one of its type."""
        der_type = reading.der_type
        if reading.der_id is not None:
            der, device = self.ders_by_id.get(reading.der_id, (None, None))
            return Route(reading.der_id, der, device)
        sn = reading.device_sn
        if sn is not None and (device := self._devices_by_hardware_id.get(sn)) is not None:
            ders = [item for item in device.ders if item.type == der_type]
            if len(ders) == 1:
                return Route(ders[0].id, ders[0], device, unlisted_key(reading))
            # The device is known, its DER is not.
            return Route(f"{der_type}_{slug(sn)}", None, device)
        if len(candidates := self._ders_by_type.get(der_type, [])) == 1:
            der, device = candidates[0]
            return Route(der.id, der, device, unlisted_key(reading))
        return Route(unlisted_key(reading), None, None)


def der_name(reading: DerReading, der: Der | None) -> str:
    """Return the name of a DER's group: its listed name, else its type and what names it."""
    if der is not None:
        return der.name
    name = type_name(reading.der_type)
    label = reading.der_id or reading.device_sn or reading.make
    return f"{name} {label}" if label else name
