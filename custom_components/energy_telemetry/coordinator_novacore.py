"""Coordinator of a Sourceful Novacore site: one SSE stream, a group of sensors per DER."""

from __future__ import annotations

import asyncio
from collections import Counter
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
from .const import CONF_SIGNS, DOMAIN, LOGGER
from .coordinator import (
    EnergyTelemetryConfigEntry,
    Group,
    Point,
    PushCoordinator,
    via_device,
)
from .descriptions import UNKNOWN_STATE, PointDescription
from .descriptions_novacore import SIGN_SWAPPED_FIELDS, novacore_description, wire_field
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
from .sign_evidence import SignEngine
from .storage import EntryStore

TYPE_NAMES = {
    "pv": "Solar",
    "battery": "Battery",
    "meter": "Meter",
    "inverter": "Inverter",
    "ev_charger": "EV charger",
}
MAX_FIELDS_PER_DER = 200
"""Fields beyond this many per DER are ignored, so a misbehaving stream cannot flood the registry."""
DEVICE_LIST_MIN_INTERVAL: Final = 60.0
"""The site's device list is read at most once a minute (on reconnects and unknown DERs)."""
DEVICE_LIST_INTERVAL: Final = timedelta(hours=6)
"""... and at least this often, so DERs that left the site are removed."""
NOT_FOUND_FOR_ISSUE: Final = 2
"""Consecutive 404 answers of the stream after which the site is reported as gone."""
STORE_SECTION: Final = "device_list"
SIGNS_SECTION: Final = "signs"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _unlisted_key(reading: Reading) -> str:
    """Return the group key of a DER the device list does not name: by serial, make or type."""
    if reading.device_sn is not None:
        return f"{reading.der_type}_{_slug(reading.device_sn)}"
    if reading.make:
        return f"{reading.der_type}_{_slug(reading.make)}"
    return reading.der_type


type Binding = tuple[Point, PointDescription]
"""The point a wire field feeds, and the field's own description (its conversion)."""


class NovacoreGroup(Group):
    """The entities of one DER, with a map from the source's field names to points."""

    __slots__ = ("der_type", "fields", "raw", "sign", "text_fields", "texts")

    def __init__(
        self, key: str, unique_prefix: str, device_info: DeviceInfo, der_type: str, sign: int = 1
    ) -> None:
        """Initialise an empty DER."""
        super().__init__(key, unique_prefix, device_info, track_staleness=True)
        self.der_type = der_type
        self.fields: dict[str, Binding | None] = {}
        """Wire field name -> what its numbers feed (None: ignored), bound under the current sign."""
        self.text_fields: dict[str, Binding | None] = {}
        """Wire field name -> what its texts and booleans feed (None: ignored).

        Apart from `fields`: one name may come as a number in a reading whose type word is not
        the DER's and as a documented text in another; each must find its own binding.
        """
        self.sign = sign
        """The wire factor: +1 the wire follows Sourceful's documented signs, -1 inverted."""
        self.raw: dict[str, float] = {}
        """The last wire number of every signed field, to re-render when the sign changes."""
        self.texts: dict[str, str | bool] = {}
        """The last text of every text field (an unknown one is logged when it changes)."""


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
        self._devices_by_hardware_id: dict[str, Device] = {}
        self._routes: dict[tuple[str | None, str, str | None, str | None], NovacoreGroup] = {}
        """(der_id, der_type, make, device_sn) of a reading -> its DER's group."""
        self.signs = SignEngine(overrides=entry.options.get(CONF_SIGNS) or {})
        """Decides each DER's wire sign from its energy counters (or the user's choice)."""
        self._signs_revision = 0
        self.unknown_texts: Counter[str] = Counter()
        """Text values not understood (e.g. an unknown charger status), by `type.field`."""
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
            self.signs.load(self.store.section(SIGNS_SECTION))
            self._signs_revision = self.signs.revision
            self.store.provide(SIGNS_SECTION, self.signs.as_dict)
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
        self._devices_by_hardware_id.clear()
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
            if device.hardware_id:
                self._devices_by_hardware_id.setdefault(device.hardware_id, device)
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

    def _forget_group(self, key: str) -> None:
        """Forget a DER or physical device: its readings' routes and its sign evidence."""
        group = self.data.pop(key, None)
        if group is not None:
            self._routes = {route: g for route, g in self._routes.items() if g is not group}
        self.signs.forget(key)
        self._save_signs_if_changed()

    def _save_signs_if_changed(self) -> None:
        """Schedule a save of the entry's store when the sign engine's state changed."""
        if self.signs.revision != self._signs_revision:
            self._signs_revision = self.signs.revision
            self.store.async_schedule_save()

    def _remove_device_key(self, registry: dr.DeviceRegistry, key: str, why: str) -> None:
        """Remove the device of a DER or physical device key, with its entities."""
        self._forget_group(key)
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
            self._forget_group(key)
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
        """Find the DER a reading belongs to (see README: how a reading finds its DER)."""
        der: Der | None = None
        device: Device | None = None
        der_type = reading.der_type
        if reading.der_id is not None:
            key = reading.der_id
            der, device = self._ders_by_id.get(key, (None, None))
        else:
            sn = reading.device_sn
            if sn is not None and (device := self._devices_by_hardware_id.get(sn)) is not None:
                ders = [item for item in device.ders if item.type == der_type]
                if len(ders) == 1:
                    der = ders[0]
            if der is not None:
                key = der.id
            elif device is not None:
                key = f"{der_type}_{_slug(sn or '')}"  # the device is known, its DER is not
            elif len(candidates := self._ders_by_type.get(der_type, [])) == 1:
                der, device = candidates[0]
                key = der.id
            else:
                key = _unlisted_key(reading)
            if der is not None and (old_key := _unlisted_key(reading)) in self.data:
                # The DER joined the list: it replaces the group its readings had before.
                self._remove_device_key(
                    dr.async_get(self.hass), old_key, f"it is listed as {der.name} now"
                )
        group = self.data.get(key)
        if group is None:
            if der is None:
                # A DER the list does not know yet: read the list again (at most once a minute).
                self.async_request_device_list(f"unknown DER {key}")
            group = self._new_group(key, reading, der, device)
        assert isinstance(group, NovacoreGroup)
        self._routes[(reading.der_id, der_type, reading.make, reading.device_sn)] = group
        return group

    def _new_group(
        self, key: str, reading: Reading, der: Der | None, device: Device | None
    ) -> NovacoreGroup:
        type_name = TYPE_NAMES.get(reading.der_type, reading.der_type.replace("_", " ").title())
        if der is not None:
            name = der.name
        elif reading.der_id is not None:
            name = f"{type_name} {reading.der_id}"
        elif reading.device_sn is not None:
            name = f"{type_name} {reading.device_sn}"
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
            self.signs.factor(key, reading.der_type),
        )
        self.data[key] = group
        return group

    @callback
    def _async_on_readings(self, readings: list[Reading]) -> None:
        """Apply readings: drop older ones, write only the entities whose value changed."""
        routes = self._routes
        now = time.monotonic()
        for reading in readings:
            group = routes.get((reading.der_id, reading.der_type, reading.make, reading.device_sn))
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
            write = not came_back
            self._observe_sign(group, reading)
            fields = group.fields
            inverted = group.sign < 0
            raw_values = group.raw
            for field, raw in reading.values.items():
                try:
                    binding = fields[field]
                except KeyError:
                    binding = self._bind(group, field, text=False)
                if binding is None:
                    continue
                point, description = binding
                if description.signed:
                    raw_values[field] = raw
                    if inverted:
                        self.async_set_value(
                            point, description.value_fn(0.0 - raw), timestamp, write
                        )
                        continue
                self.async_set_value(point, description.value_fn(raw), timestamp, write)
            if reading.texts is not None:
                self._apply_texts(group, reading.texts, timestamp, write)
            if came_back:
                self._write_group(group)
        self.async_announce_points()

    def _observe_sign(self, group: NovacoreGroup, reading: Reading) -> None:
        """Let the DER's counters prove its wire's sign; apply a new decision at once.

        The DER's own type counts, not the reading's type word: a reading found by its DER id
        whose word names another type is read as the DER's type, and must not make the engine
        start the DER's evidence afresh (its decision would be lost).
        """
        signs = self.signs
        key = group.key
        der_type = group.der_type
        values = reading.values
        decision = signs.observe(key, der_type, reading.timestamp, values.get("W"), values)
        if decision is not None:
            LOGGER.log(
                decision.level,
                "%s: %s: %s",
                self.name,
                group.device_info.get("name") or key,
                decision.message,
            )
        self._save_signs_if_changed()
        if (factor := signs.factor(key, der_type)) != group.sign:
            self.async_set_wire_sign(key, factor)

    def _apply_texts(
        self,
        group: NovacoreGroup,
        texts: dict[str, str | bool],
        timestamp: float | None,
        write: bool,
    ) -> None:
        """Apply the documented text and boolean fields of a reading (enums, flags)."""
        fields = group.text_fields
        last_texts = group.texts
        for field, text in texts.items():
            try:
                binding = fields[field]
            except KeyError:
                binding = self._bind(group, field, text=True)
            if binding is None:
                continue
            point, description = binding
            assert description.state_fn is not None  # _bind made sure of it
            value = description.state_fn(text)
            if value is None:
                self.unknown_texts[f"{group.der_type}.{field}"] += 1
                if last_texts.get(field) != text:
                    LOGGER.debug(
                        "%s: %s of %s is %.100r, not a known value; shown as unknown",
                        self.name,
                        field,
                        group.key,
                        text,
                    )
                value = UNKNOWN_STATE
            last_texts[field] = text
            self.async_set_value(point, value, timestamp, write)

    def _bind(self, group: NovacoreGroup, field: str, *, text: bool) -> Binding | None:
        """Bind a wire field of a group to its point (created if new) under the group's sign."""
        fields = group.text_fields if text else group.fields
        if len(group.fields) + len(group.text_fields) >= MAX_FIELDS_PER_DER:
            fields[field] = None
            LOGGER.debug(
                "%s: ignoring field %s of %s (too many fields)", self.name, field, group.key
            )
            return None
        description = novacore_description(
            group.der_type, wire_field(group.der_type, field, group.sign)
        )
        if (description.state_fn is not None) is not text:
            # A number where text is documented, or text where a number is: never shown.
            fields[field] = None
            return None
        point = group.points.get(description.key)
        if point is None:
            # Its entity is added once the reading's values are set (async_announce_points).
            point = self.async_add_point(group, description, announce=False)
        binding = (point, description)
        fields[field] = binding
        return binding

    # --- signs --------------------------------------------------------------------------------

    @callback
    def async_set_wire_sign(self, group_key: str, sign: int) -> None:
        """Set a DER's wire factor (+1 as documented, -1 inverted) and re-render at once.

        Every signed value of the DER is rewritten from its last wire number, without waiting for
        the next reading; under -1 the charge and discharge limits trade places, and a limit no
        field feeds any more goes unavailable rather than keep a value of the other convention.
        """
        if sign not in (1, -1):
            raise ValueError(f"a wire factor is +1 or -1, not {sign!r}")
        group = self.data[group_key]
        assert isinstance(group, NovacoreGroup)
        if group.sign == sign:
            return
        group.sign = sign
        LOGGER.debug("%s: wire factor of %s is now %+d", self.name, group_key, sign)
        fields = group.fields
        swapped = SIGN_SWAPPED_FIELDS.get(group.der_type, {})
        unbound = {
            binding[0] for field in swapped if (binding := fields.pop(field, None)) is not None
        }
        for field, raw in group.raw.items():
            binding = fields[field] if field in fields else self._bind(group, field, text=False)
            if binding is None:
                continue
            point, description = binding
            unbound.discard(point)
            value = description.value_fn(raw if sign > 0 else 0.0 - raw)
            self.async_set_value(point, value, point.timestamp)
        for point in unbound:
            point.value = None
            if point.entity is not None:
                point.entity.async_write_ha_state()
        self.async_announce_points()

    def diagnostics(self) -> dict[str, Any]:
        """Add the stream's counters (never the token) to the common diagnostics."""
        data = super().diagnostics()
        stats = self.stream.stats
        data["stream"] = {
            "connects": stats.connects,
            "disconnects": stats.disconnects,
            "events": stats.events,
            "ignored_events": stats.ignored_events,
            "failed_events": stats.failed_events,
            "accepted_readings": stats.parse.accepted,
            "rejected": dict(stats.parse.rejected),
            "last_error": stats.last_error,
            "last_event_id": self.stream.last_event_id,
            "tokens_minted": self.client.tokens_minted,
            "token_expires_at": self.client.token_expires_at,
            "ignored_fields": dict(stats.parse.ignored),
            "unknown_texts": dict(self.unknown_texts),
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
        data["signs"] = self.signs.diagnostics()
        for key, group in self.data.items():
            if isinstance(group, NovacoreGroup):
                data["groups"][key]["der_type"] = group.der_type
                data["groups"][key]["wire_sign"] = group.sign
        return data
