"""Coordinator of a Sourceful Novacore site: one SSE stream, a group of sensors per DER."""

from __future__ import annotations

import re
import time
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import UpdateFailed

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
    Reading,
    SiteStream,
    describe,
)

TYPE_NAMES = {"pv": "Solar", "battery": "Battery", "meter": "Meter"}
MAX_FIELDS_PER_DER = 200
"""Fields beyond this many per DER are ignored, so a misbehaving stream cannot flood the registry."""


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
        self.stream = SiteStream(
            client,
            site_id,
            on_readings=self._async_on_readings,
            on_connected=self.async_connection_up,
            on_disconnected=self._async_on_disconnected,
        )

    async def _async_update_data(self) -> dict[str, Group]:
        """Read the site's devices and DERs (once, at setup)."""
        try:
            self.devices = await self.client.async_get_devices(self.site_id)
        except NovacoreAuthError as err:
            raise ConfigEntryAuthFailed(str(err)) from err
        except NovacoreConnectionError as err:
            raise UpdateFailed(f"Novacore cannot be reached: {err}") from err
        except NovacoreError as err:
            # The devices endpoint is optional: DERs are then named after their type.
            LOGGER.debug("No device list for site %s: %s", self.site_id, describe(err))
            self.devices = []
        self._register_devices()
        return self.data

    def _register_devices(self) -> None:
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
        self._ders_by_id.clear()
        self._ders_by_type.clear()
        self._device_entries.clear()
        for device in self.devices:
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
            for der in device.ders:
                self._ders_by_id[der.id] = (der, device)
                self._ders_by_type.setdefault(der.type, []).append((der, device))

    @callback
    def async_start(self) -> None:
        """Open the stream as a background task of the entry and watch its health."""
        self.async_start_watchdog()
        self.config_entry.async_create_background_task(
            self.hass, self._async_run_stream(), f"{self.name} stream"
        )

    async def _async_run_stream(self) -> None:
        try:
            await self.stream.run()
        except NovacoreAuthError:
            LOGGER.warning("%s: the token was refused; please re-authenticate", self.name)
            self.config_entry.async_start_reauth(self.hass)

    @callback
    def _async_on_disconnected(self, error: Exception) -> None:
        self.async_connection_down(describe(error))

    # --- readings -----------------------------------------------------------------------------

    def _resolve(self, reading: Reading) -> NovacoreGroup:
        """Find the DER a reading belongs to (see README: how readings find their DER)."""
        der: Der | None = None
        device: Device | None = None
        if reading.der_id is not None:
            key = reading.der_id
            der, device = self._ders_by_id.get(key, (None, None))
        else:
            candidates = self._ders_by_type.get(reading.der_type, [])
            if len(candidates) == 1:
                der, device = candidates[0]
                key = der.id
            elif reading.make:
                key = f"{reading.der_type}_{_slug(reading.make)}"
            else:
                key = reading.der_type
        group = self.data.get(key)
        if group is None:
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
        return data
