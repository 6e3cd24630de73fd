"""Coordinator of a Sourceful Novacore site: one SSE stream, a group of sensors per DER."""

from __future__ import annotations

from collections import Counter
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
from .descriptions import UNKNOWN_STATE, PointDescription
from .descriptions_novacore import SIGN_SWAPPED_FIELDS, novacore_description, wire_field
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

TYPE_NAMES = {
    "pv": "Solar",
    "battery": "Battery",
    "meter": "Meter",
    "inverter": "Inverter",
    "ev_charger": "EV charger",
}
MAX_FIELDS_PER_DER = 200
"""Fields beyond this many per DER are ignored, so a misbehaving stream cannot flood the registry."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


type Binding = tuple[Point, PointDescription]
"""The point a wire field feeds, and the field's own description (its conversion)."""


class NovacoreGroup(Group):
    """The entities of one DER, with a map from the source's field names to points."""

    __slots__ = ("der_type", "fields", "raw", "sign", "texts")

    def __init__(
        self, key: str, unique_prefix: str, device_info: DeviceInfo, der_type: str, sign: int = 1
    ) -> None:
        """Initialise an empty DER."""
        super().__init__(key, unique_prefix, device_info, track_staleness=True)
        self.der_type = der_type
        self.fields: dict[str, Binding | None] = {}
        """Wire field name -> what it feeds (None: ignored), bound under the current sign."""
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
        self.wire_signs: dict[str, int] = {}
        """Wire factor by DER type for groups created from now on (default +1)."""
        self.unknown_texts: Counter[str] = Counter()
        """Text values not understood (e.g. an unknown charger status), by `type.field`."""
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
        self._devices_by_hardware_id.clear()
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
            if device.hardware_id:
                self._devices_by_hardware_id.setdefault(device.hardware_id, device)
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
            elif sn is not None:
                key = f"{der_type}_{_slug(sn)}"
            elif reading.make:
                key = f"{der_type}_{_slug(reading.make)}"
            else:
                key = der_type
        group = self.data.get(key)
        if group is None:
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
            self.wire_signs.get(reading.der_type, 1),
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

    def _apply_texts(
        self,
        group: NovacoreGroup,
        texts: dict[str, str | bool],
        timestamp: float | None,
        write: bool,
    ) -> None:
        """Apply the documented text and boolean fields of a reading (enums, flags)."""
        fields = group.fields
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
        if len(group.fields) >= MAX_FIELDS_PER_DER:
            group.fields[field] = None
            LOGGER.debug(
                "%s: ignoring field %s of %s (too many fields)", self.name, field, group.key
            )
            return None
        description = novacore_description(
            group.der_type, wire_field(group.der_type, field, group.sign)
        )
        if (description.state_fn is not None) is not text:
            # A number where text is documented, or text where a number is: never shown.
            group.fields[field] = None
            return None
        point = group.points.get(description.key)
        if point is None:
            point = self.async_add_point(group, description)
        binding = (point, description)
        group.fields[field] = binding
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
            "ignored_fields": dict(stats.parse.ignored),
            "unknown_texts": dict(self.unknown_texts),
            "ders": {
                der_id: {"name": der.name, "type": der.type, "device": device.name}
                for der_id, (der, device) in self._ders_by_id.items()
            },
        }
        for key, group in self.data.items():
            if isinstance(group, NovacoreGroup):
                data["groups"][key]["der_type"] = group.der_type
                data["groups"][key]["wire_sign"] = group.sign
        return data
