"""A Novacore site's device list, kept in step with Home Assistant's device registry.

Read at set-up, on reconnects, for unknown DERs (at most once a minute) and every 6 hours;
devices and DERs that leave the site are removed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import time
from typing import TYPE_CHECKING, Final

from homeassistant.core import callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.event import async_track_time_interval

from ..compat import entry_device, via_device
from ..const import DOMAIN, LOGGER
from ..issues import DERS_LIMIT
from ..protocol.novacore import Device, NovacoreError, describe
from ..protocol.novacore.routing import DerDirectory

if TYPE_CHECKING:
    from .coordinator import NovacoreCoordinator, NovacoreGroup

MIN_INTERVAL: Final = 60.0
"""The site's device list is read at most once a minute (on reconnects and unknown DERs)."""
INTERVAL: Final = timedelta(hours=6)
"""... and at least this often, so DERs that left the site are removed."""
STORE_SECTION: Final = "device_list"


class DeviceList:
    """The listed devices and DERs of a site and their entries in the device registry."""

    def __init__(self, coordinator: NovacoreCoordinator) -> None:
        """Start with no list; `async_load` reads what the last run listed."""
        self._coordinator = coordinator
        self.directory = DerDirectory()
        self.site_device: dr.DeviceEntry
        self._device_entries: dict[str, dr.DeviceEntry] = {}
        self.listed: set[str] = set()
        """Ids of the devices and DERs in the last list read (remembered across restarts)."""
        self._read_at: float | None = None
        self.min_interval = MIN_INTERVAL
        self._task: asyncio.Task[None] | None = None
        self.reads = 0
        self.devices_removed = 0

    @property
    def loaded(self) -> bool:
        """Return True once the list has been asked for (read or not) in this run."""
        return self._read_at is not None

    def async_load(self) -> None:
        """Take the ids the last run listed from the entry's store."""
        store = self._coordinator.store
        listed = store.section(STORE_SECTION)
        if isinstance(listed, list):
            self.listed = {item for item in listed if isinstance(item, str)}
        store.provide(STORE_SECTION, lambda: sorted(self.listed))

    @callback
    def async_start(self) -> None:
        """Read the list again every few hours until the entry unloads."""
        coordinator = self._coordinator
        coordinator.config_entry.async_on_unload(
            async_track_time_interval(coordinator.hass, self._async_periodic, INTERVAL)
        )

    @callback
    def _async_periodic(self, _now: datetime) -> None:
        self.async_request("periodic")

    @callback
    def async_request(self, reason: str) -> None:
        """Read the list again soon: at most once a minute, never twice at a time."""
        if self.pending:
            return
        delay = 0.0
        if (read_at := self._read_at) is not None:
            delay = max(0.0, read_at + self.min_interval - time.monotonic())
        coordinator = self._coordinator
        LOGGER.debug("%s: reading the device list in %.0f s (%s)", coordinator.name, delay, reason)
        self._task = coordinator.config_entry.async_create_background_task(
            coordinator.hass, self._async_read(delay), f"{coordinator.name} device list"
        )

    @property
    def pending(self) -> bool:
        """Return True while a read of the list is waiting or running."""
        task = self._task
        return task is not None and not task.done()

    async def _async_read(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        coordinator = self._coordinator
        try:
            devices = await coordinator.client.async_get_devices(coordinator.site_id)
        except NovacoreError as err:
            # The stream reports what matters (refused credentials, a site that is gone).
            LOGGER.debug("%s: device list not read: %s", coordinator.name, describe(err))
            self._read_at = time.monotonic()
            return
        self.apply(devices)

    def apply(self, devices: list[Device] | None) -> None:
        """Register the listed devices and DERs; remove those that left the site."""
        self._read_at = time.monotonic()
        self.reads += 1
        coordinator = self._coordinator
        registry = dr.async_get(coordinator.hass)
        entry_id = coordinator.config_entry.entry_id
        site_id = coordinator.site_id
        self.site_device = registry.async_get_or_create(
            config_entry_id=entry_id,
            identifiers={(DOMAIN, site_id)},
            name=coordinator.config_entry.title,
            manufacturer="Sourceful",
            model="Novacore site",
            entry_type=DeviceEntryType.SERVICE,
        )
        if devices is None:
            return
        devices = self._within_limit(devices)
        listed = self.directory.load(devices)
        self._device_entries.clear()
        for device in devices:
            info = DeviceInfo(
                identifiers={(DOMAIN, f"{site_id}_{device.id}")},
                name=device.name,
                model=device.type,
                serial_number=device.hardware_id,
            )
            info.update(via_device(self.site_device))
            self._device_entries[device.id] = registry.async_get_or_create(
                config_entry_id=entry_id, **info
            )
        # Readings find their DER again with the new list: a DER that joined gets its real name.
        coordinator.async_device_list_changed()
        for key, group in list(coordinator.data.items()):
            if key in self.directory.ders_by_id:
                self._link(registry, group)  # type: ignore[arg-type]
        if not listed and self.listed:
            # An empty list where there were devices is more likely a glitch than an empty site.
            LOGGER.debug("%s: the device list is empty; keeping the devices", coordinator.name)
            return
        for key in self.listed - listed:
            self.remove(key, "it left the site")
        if listed != self.listed:
            self.listed = listed
            coordinator.store.async_schedule_save()

    def _within_limit(self, devices: list[Device]) -> list[Device]:
        """Return the devices up to the site's limit of DERs (devices and DERs count alike)."""
        coordinator = self._coordinator
        limit = coordinator.limits[DERS_LIMIT]
        kept: list[Device] = []
        count = 0
        for device in devices:
            count += 1 + len(device.ders)
            if count > limit:
                coordinator.async_limit_reached(DERS_LIMIT, device.id)
                break
            kept.append(device)
        return kept

    def parent(self, device: Device | None) -> dr.DeviceEntry:
        """Return the registry entry a DER's device hangs under: its physical device, or the site."""
        return self._device_entries[device.id] if device else self.site_device

    def _link(self, registry: dr.DeviceRegistry, group: NovacoreGroup) -> None:
        """Give a DER first seen in readings its listed name and physical device."""
        der, device = self.directory.ders_by_id[group.key]
        parent = self._device_entries[device.id]
        entry = entry_device(
            registry, (DOMAIN, group.unique_prefix), self._coordinator.config_entry.entry_id
        )
        if entry is None or (entry.name == der.name and entry.via_device_id == parent.id):
            return
        registry.async_update_device(entry.id, name=der.name, via_device_id=parent.id)
        group.device_info["name"] = der.name
        group.device_info.update(via_device(parent))

    def remove(self, key: str, why: str) -> None:
        """Remove the device of a DER or physical device key, with its entities."""
        coordinator = self._coordinator
        coordinator.async_forget_group(key)
        registry = dr.async_get(coordinator.hass)
        entry = entry_device(
            registry,
            (DOMAIN, f"{coordinator.site_id}_{key}"),
            coordinator.config_entry.entry_id,
        )
        if entry is None:
            return
        LOGGER.info("%s: removing device %s (%s)", coordinator.name, entry.name, why)
        self.devices_removed += 1
        registry.async_remove_device(entry.id)

    def diagnostics(self) -> dict[str, object]:
        """Return the list's counters."""
        return {
            "reads": self.reads,
            "pending": self.pending,
            "listed": len(self.listed),
            "devices_removed": self.devices_removed,
        }
