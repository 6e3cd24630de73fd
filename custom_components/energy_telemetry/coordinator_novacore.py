"""Coordinator of a Sourceful Novacore site: one SSE stream, a group of sensors per DER."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import re
import time
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import UpdateFailed

from .compat import entry_device
from .const import DOMAIN, LOGGER
from .coordinator import (
    EnergyTelemetryConfigEntry,
    Group,
    Point,
    PushCoordinator,
    via_device,
)
from .descriptions import novacore_description
from .novacore import (
    Der,
    Device,
    NovacoreAuthError,
    NovacoreClient,
    NovacoreConnectionError,
    NovacoreError,
    NovacoreNotFoundError,
    Reading,
    SiteStream,
    describe,
)
from .repairs import SITE_NOT_FOUND, async_clear_issue, async_raise_issue
from .storage import EntryStore

TYPE_NAMES = {"pv": "Solar", "battery": "Battery", "meter": "Meter"}
MAX_FIELDS_PER_DER = 200
"""Fields beyond this many per DER are ignored, so a misbehaving stream cannot flood the registry."""
DEVICE_LIST_MIN_INTERVAL: Final = 60.0
"""The site's device list is read at most once a minute (on reconnects and unknown DERs)."""
DEVICE_LIST_INTERVAL: Final = timedelta(hours=6)
"""... and at least this often, so DERs that left the site are removed."""
NOT_FOUND_FOR_ISSUE: Final = 2
"""Consecutive 404 answers of the stream after which the site is reported as gone."""
STORE_SECTION: Final = "device_list"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class NovacoreGroup(Group):
    """The sensors of one DER, with a map from the source's field names to points."""

    __slots__ = ("der_type", "fields")

    def __init__(
        self, key: str, unique_prefix: str, device_info: DeviceInfo, der_type: str
    ) -> None:
        """Initialise an empty DER."""
        super().__init__(key, unique_prefix, device_info, track_staleness=True)
        self.der_type = der_type
        self.fields: dict[str, Point | None] = {}


class NovacoreCoordinator(PushCoordinator):
    """Holds the event stream of one site and turns readings into sensor values."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: EnergyTelemetryConfigEntry,
        client: NovacoreClient,
        site_id: str,
    ) -> None:
        """Prepare the stream; it opens in `async_start`."""
        super().__init__(hass, entry, name=f"Novacore site {entry.title}")
        self.client = client
        self.site_id = site_id
        self.devices: list[Device] = []
        self._ders_by_id: dict[str, tuple[Der, Device]] = {}
        self._ders_by_type: dict[str, list[tuple[Der, Device]]] = {}
        self._routes: dict[tuple[str | None, str, str | None], NovacoreGroup] = {}
        self._site_device: dr.DeviceEntry
        self._device_entries: dict[str, dr.DeviceEntry] = {}
        self.store = EntryStore(hass, entry)
        self._listed: set[str] = set()
        """Ids of the devices and DERs in the last device list read (remembered across restarts)."""
        self._device_list_read_at: float | None = None
        self.device_list_min_interval = DEVICE_LIST_MIN_INTERVAL
        self._device_list_task: asyncio.Task[None] | None = None
        self.device_list_reads = 0
        self.devices_removed = 0
        self._not_found = 0
        self.stream = SiteStream(
            client,
            site_id,
            on_readings=self._async_on_readings,
            on_connected=self._async_on_connected,
            on_disconnected=self._async_on_disconnected,
        )

    async def _async_update_data(self) -> dict[str, Group]:
        """Read the site's devices and DERs at set-up; later reads come from the stream."""
        if self._device_list_read_at is None:
            await self.store.async_load()
            listed = self.store.section(STORE_SECTION)
            if isinstance(listed, list):
                self._listed = {item for item in listed if isinstance(item, str)}
            self.store.provide(STORE_SECTION, lambda: sorted(self._listed))
        try:
            devices = await self.client.async_get_devices(self.site_id)
        except NovacoreAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="novacore_auth_failed",
                translation_placeholders={"name": self.config_entry.title},
            ) from err
        except NovacoreConnectionError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="novacore_cannot_connect",
                translation_placeholders={"error": describe(err)},
            ) from err
        except NovacoreError as err:
            # The devices endpoint is optional: DERs are then named after their type.
            LOGGER.debug("No device list for site %s: %s", self.site_id, describe(err))
            devices = None
        self._apply_device_list(devices)
        return self.data

    # --- the site's device list ---------------------------------------------------------------

    @callback
    def async_request_device_list(self, reason: str) -> None:
        """Read the device list again soon: at most once a minute, never twice at a time."""
        if self.device_list_pending:
            return
        delay = 0.0
        if (read_at := self._device_list_read_at) is not None:
            delay = max(0.0, read_at + self.device_list_min_interval - time.monotonic())
        LOGGER.debug("%s: reading the device list in %.0f s (%s)", self.name, delay, reason)
        self._device_list_task = self.config_entry.async_create_background_task(
            self.hass, self._async_read_device_list(delay), f"{self.name} device list"
        )

    @property
    def device_list_pending(self) -> bool:
        """Return True while a read of the device list is waiting or running."""
        task = self._device_list_task
        return task is not None and not task.done()

    async def _async_read_device_list(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            devices = await self.client.async_get_devices(self.site_id)
        except NovacoreError as err:
            # The stream reports what matters (refused credentials, a site that is gone).
            LOGGER.debug("%s: device list not read: %s", self.name, describe(err))
            self._device_list_read_at = time.monotonic()
            return
        self._apply_device_list(devices)

    @callback
    def _async_periodic_device_list(self, _now: datetime) -> None:
        self.async_request_device_list("periodic")

    def _apply_device_list(self, devices: list[Device] | None) -> None:
        """Register the listed devices and DERs; remove those that left the site."""
        self._device_list_read_at = time.monotonic()
        self.device_list_reads += 1
        registry = dr.async_get(self.hass)
        entry_id = self.config_entry.entry_id
        self._site_device = registry.async_get_or_create(
            config_entry_id=entry_id,
            identifiers={(DOMAIN, self.site_id)},
            name=self.config_entry.title,
            manufacturer="Sourceful",
            model="Novacore site",
            entry_type=DeviceEntryType.SERVICE,
        )
        if devices is None:
            return
        self._ders_by_id.clear()
        self._ders_by_type.clear()
        self._device_entries.clear()
        listed: set[str] = set()
        for device in devices:
            info = DeviceInfo(
                identifiers={(DOMAIN, f"{self.site_id}_{device.id}")},
                name=device.name,
                model=device.type,
                serial_number=device.hardware_id,
            )
            info.update(via_device(self._site_device))
            self._device_entries[device.id] = registry.async_get_or_create(
                config_entry_id=entry_id, **info
            )
            listed.add(device.id)
            for der in device.ders:
                self._ders_by_id[der.id] = (der, device)
                self._ders_by_type.setdefault(der.type, []).append((der, device))
                listed.add(der.id)
        # Readings find their DER again with the new list: a DER that joined gets its real name.
        self._routes.clear()
        for key, group in list(self.data.items()):
            if isinstance(group, NovacoreGroup) and key in self._ders_by_id:
                self._link_listed_group(registry, group)
        if not listed and self._listed:
            # An empty list where there were devices is more likely a glitch than an empty site.
            LOGGER.debug("%s: the device list is empty; keeping the devices", self.name)
            return
        for key in self._listed - listed:
            self._remove_device_key(registry, key, "it left the site")
        if listed != self._listed:
            self._listed = listed
            self.store.async_schedule_save()

    def _link_listed_group(self, registry: dr.DeviceRegistry, group: NovacoreGroup) -> None:
        """Give a DER first seen in readings its listed name and physical device."""
        der, device = self._ders_by_id[group.key]
        parent = self._device_entries[device.id]
        entry = entry_device(registry, (DOMAIN, group.unique_prefix), self.config_entry.entry_id)
        if entry is None or (entry.name == der.name and entry.via_device_id == parent.id):
            return
        registry.async_update_device(entry.id, name=der.name, via_device_id=parent.id)
        group.device_info["name"] = der.name
        group.device_info.update(via_device(parent))

    def _remove_device_key(self, registry: dr.DeviceRegistry, key: str, why: str) -> None:
        """Remove the device of a DER or physical device key, with its entities."""
        group = self.data.pop(key, None)
        if group is not None:
            self._routes = {route: g for route, g in self._routes.items() if g is not group}
        entry = entry_device(
            registry, (DOMAIN, f"{self.site_id}_{key}"), self.config_entry.entry_id
        )
        if entry is None:
            return
        LOGGER.info("%s: removing device %s (%s)", self.name, entry.name, why)
        self.devices_removed += 1
        registry.async_remove_device(entry.id)

    def async_remove_device(self, device: dr.DeviceEntry) -> bool:
        """Forget a device a user deletes; refuse while it is listed or reporting."""
        keys = {
            identifier[1].removeprefix(f"{self.site_id}_")
            for identifier in device.identifiers
            if identifier[0] == DOMAIN
        }
        if self.site_id in {identifier[1] for identifier in device.identifiers}:
            return False
        for key in keys:
            if key in self._listed:
                return False
            group = self.data.get(key)
            if group is not None and not group.stale and group.last_seen is not None:
                return False
        for key in keys:
            if (group := self.data.pop(key, None)) is not None:
                self._routes = {route: g for route, g in self._routes.items() if g is not group}
        return True

    @callback
    def async_start(self) -> None:
        """Open the stream as a background task of the entry and watch its health."""
        self.async_start_watchdog()
        entry = self.config_entry
        entry.async_on_unload(
            async_track_time_interval(
                self.hass, self._async_periodic_device_list, DEVICE_LIST_INTERVAL
            )
        )
        entry.async_create_background_task(
            self.hass, self._async_run_stream(), f"{self.name} stream"
        )

    async def async_stop_connection(self) -> None:
        """Keep what the entry remembers."""
        await self.store.async_save()

    async def _async_run_stream(self) -> None:
        try:
            await self.stream.run()
        except NovacoreAuthError:
            LOGGER.warning("%s: the token was refused; please re-authenticate", self.name)
            self.config_entry.async_start_reauth(self.hass)

    @callback
    def _async_on_connected(self) -> None:
        self._not_found = 0
        async_clear_issue(self.hass, SITE_NOT_FOUND, self.config_entry)
        self.async_connection_up()
        self.async_request_device_list("stream connected")

    @callback
    def _async_on_disconnected(self, error: Exception) -> None:
        if isinstance(error, NovacoreNotFoundError):
            self._not_found += 1
            if self._not_found == NOT_FOUND_FOR_ISSUE:
                LOGGER.warning(
                    "%s: Novacore answers that site %s does not exist (any more) for these"
                    " credentials; see the repair issue",
                    self.name,
                    self.site_id,
                )
                async_raise_issue(
                    self.hass, SITE_NOT_FOUND, self.config_entry, {"site_id": self.site_id}
                )
        else:
            self._not_found = 0
        self.async_connection_down(describe(error))

    # --- readings -----------------------------------------------------------------------------

    def _resolve(self, reading: Reading) -> NovacoreGroup:
        """Find the DER a reading belongs to (see README: how readings find their DER)."""
        der: Der | None = None
        device: Device | None = None
        type_key = f"{reading.der_type}_{_slug(reading.make)}" if reading.make else reading.der_type
        if reading.der_id is not None:
            key = reading.der_id
            der, device = self._ders_by_id.get(key, (None, None))
        else:
            candidates = self._ders_by_type.get(reading.der_type, [])
            if len(candidates) == 1:
                der, device = candidates[0]
                key = der.id
                if type_key in self.data and type_key not in self._ders_by_id:
                    # The DER joined the list: it replaces the group its readings had before.
                    self._remove_device_key(
                        dr.async_get(self.hass), type_key, f"it is listed as {der.name} now"
                    )
            else:
                key = type_key
        group = self.data.get(key)
        if group is None:
            if der is None:
                # A DER the list does not know yet: read the list again (at most once a minute).
                self.async_request_device_list(f"unknown DER {key}")
            group = self._new_group(key, reading, der, device)
        assert isinstance(group, NovacoreGroup)
        self._routes[(reading.der_id, reading.der_type, reading.make)] = group
        return group

    def _new_group(
        self, key: str, reading: Reading, der: Der | None, device: Device | None
    ) -> NovacoreGroup:
        type_name = TYPE_NAMES.get(reading.der_type, reading.der_type.replace("_", " ").title())
        if der is not None:
            name = der.name
        elif reading.der_id is not None:
            name = f"{type_name} {reading.der_id}"
        elif reading.make:
            name = f"{type_name} {reading.make}"
        else:
            name = type_name
        parent = self._device_entries[device.id] if device else self._site_device
        info = DeviceInfo(
            identifiers={(DOMAIN, f"{self.site_id}_{key}")},
            name=name,
            manufacturer=reading.make,
            model=type_name,
        )
        info.update(via_device(parent))
        group = NovacoreGroup(
            key,
            f"{self.site_id}_{key}",
            info,
            reading.der_type,
        )
        self.data[key] = group
        return group

    @callback
    def _async_on_readings(self, readings: list[Reading]) -> None:
        """Apply readings: drop older ones, write only the entities whose value changed."""
        routes = self._routes
        now = time.monotonic()
        for reading in readings:
            group = routes.get((reading.der_id, reading.der_type, reading.make))
            if group is None:
                group = self._resolve(reading)
            timestamp = reading.timestamp
            if timestamp is not None:
                last = group.last_timestamp
                if last is not None and timestamp <= last:
                    group.dropped_stale += 1
                    continue
                group.last_timestamp = timestamp
            came_back = group.seen(now)
            fields = group.fields
            for field, raw in reading.values.items():
                try:
                    point = fields[field]
                except KeyError:
                    point = self._new_field(group, field)
                if point is None:
                    continue
                self.async_set_value(
                    point, point.description.value_fn(raw), timestamp, not came_back
                )
            if came_back:
                self._write_group(group)

    def _new_field(self, group: NovacoreGroup, field: str) -> Point | None:
        if len(group.fields) >= MAX_FIELDS_PER_DER:
            group.fields[field] = None
            LOGGER.debug(
                "%s: ignoring field %s of %s (too many fields)", self.name, field, group.key
            )
            return None
        description = novacore_description(group.der_type, field)
        point = group.points.get(description.key)
        if point is None:
            point = self.async_add_point(group, description)
        group.fields[field] = point
        return point

    def diagnostics(self) -> dict[str, Any]:
        """Add the stream's counters (never the token) to the common diagnostics."""
        data = super().diagnostics()
        stats = self.stream.stats
        data["stream"] = {
            "connects": stats.connects,
            "disconnects": stats.disconnects,
            "events": stats.events,
            "ignored_events": stats.ignored_events,
            "accepted_readings": stats.parse.accepted,
            "rejected": dict(stats.parse.rejected),
            "last_error": stats.last_error,
            "last_event_id": self.stream.last_event_id,
            "tokens_minted": self.client.tokens_minted,
            "token_expires_at": self.client.token_expires_at,
            "ders": {
                der_id: {"name": der.name, "type": der.type, "device": device.name}
                for der_id, (der, device) in self._ders_by_id.items()
            },
        }
        data["device_list"] = {
            "reads": self.device_list_reads,
            "pending": self.device_list_pending,
            "listed": len(self._listed),
            "devices_removed": self.devices_removed,
            "site_not_found_answers": self._not_found,
        }
        return data
