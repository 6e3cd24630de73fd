"""Coordinator of a Sourceful Novacore site: one SSE stream, a group of sensors per DER."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
import time
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import UpdateFailed

from ..compat import via_device
from ..const import (
    CONF_API_URL,
    CONF_PRIVATE_KEY,
    CONF_SIGNS,
    CONF_SITE_ID,
    CONF_TOKEN,
    DOMAIN,
    LOGGER,
)
from ..coordinator import EnergyTelemetryConfigEntry, Group, Point, PushCoordinator
from ..descriptions import UNKNOWN_STATE, PointDescription
from ..energy_dashboard import EnergyItem, Role
from ..issues import (
    DERS_LIMIT,
    FIELDS_LIMIT,
    SITE_NOT_FOUND,
    async_clear_issue,
    async_raise_issue,
)
from ..protocol.novacore import (
    DerReading,
    InvalidKeyError,
    NovacoreAuthError,
    NovacoreClient,
    NovacoreConnectionError,
    NovacoreError,
    NovacoreNotFoundError,
    SiteStream,
    describe,
    load_signer,
)
from ..protocol.novacore.routing import RouteKey, der_name, route_key, type_name
from ..protocol.novacore.signs import SignEngine
from ..storage import EntryStore
from .descriptions import SIGN_SWAPPED_FIELDS, novacore_description, wire_field
from .devices import DeviceList
from .home import COUNTERS as HOME_COUNTERS, HomeConsumption

MAX_DERS: Final = 250
"""DERs one site takes, listed or seen in readings (a home has a handful, a large site dozens)."""
MAX_FIELDS_PER_DER: Final = 200
"""Fields one DER takes (Sourceful documents about 40 for the richest type)."""
MAX_ROUTES: Final = 4 * MAX_DERS
"""Remembered ways readings name their DERs (a cache: emptied when full)."""
NOT_FOUND_FOR_ISSUE: Final = 2
"""Consecutive 404 answers of the stream after which the site is reported as gone."""
SIGNS_SECTION: Final = "signs"
DASHBOARD_ROLES: Final[dict[str, tuple[Role, str, str | None]]] = {
    "meter": ("grid", "energy_imported", "energy_exported"),
    "pv": ("solar", "energy_produced", None),
    "battery": ("battery", "energy_discharged", "energy_charged"),
    "ev_charger": ("device", "energy_charged", None),
}
"""What each DER type is in the energy dashboard, and its energy counters (from, to)."""


async def async_create_coordinator(
    hass: HomeAssistant, entry: EnergyTelemetryConfigEntry
) -> NovacoreCoordinator:
    """Build the coordinator of a site with the entry's key (or token)."""
    data = entry.data
    signer = None
    if key := data.get(CONF_PRIVATE_KEY):
        try:
            signer = load_signer(key)
        except InvalidKeyError as err:
            raise ConfigEntryError(
                translation_domain=DOMAIN,
                translation_key="invalid_stored_key",
                translation_placeholders={"error": str(err)},
            ) from None
    client = NovacoreClient(
        async_get_clientsession(hass),
        data[CONF_API_URL],
        signer=signer,
        token=None if signer else data.get(CONF_TOKEN),
    )
    return NovacoreCoordinator(hass, entry, client, data[CONF_SITE_ID])


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
        self.store = EntryStore(hass, entry)
        self.devices = DeviceList(self)
        self.home = HomeConsumption(self)
        self._routes: dict[RouteKey, NovacoreGroup] = {}
        """The route key of a reading -> its DER's group."""
        self.signs = SignEngine(overrides=entry.options.get(CONF_SIGNS) or {})
        """Decides each DER's wire sign from its energy counters (or the user's choice)."""
        self._signs_revision = 0
        self.unknown_texts: Counter[str] = Counter()
        """Text values not understood (e.g. an unknown charger status), by `type.field`."""
        self._not_found = 0
        self.limits = {DERS_LIMIT: MAX_DERS, FIELDS_LIMIT: MAX_FIELDS_PER_DER}
        self.stream = SiteStream(
            client,
            site_id,
            on_readings=self._async_on_readings,
            on_connected=self._async_on_connected,
            on_disconnected=self._async_on_disconnected,
        )

    async def _async_update_data(self) -> dict[str, Group]:
        """Read the site's devices and DERs at set-up; later reads come from the stream."""
        if not self.devices.loaded:
            await self.store.async_load()
            self.devices.async_load()
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
        self.devices.apply(devices)
        return self.data

    # --- groups -------------------------------------------------------------------------------

    @callback
    def async_device_list_changed(self) -> None:
        """Route every reading afresh and count the listed DERs in the house's consumption."""
        self._routes.clear()
        self.home.async_ders_changed()

    @callback
    def async_forget_group(self, key: str) -> None:
        """Forget a DER or physical device: its readings' routes and its sign evidence."""
        self.home.async_forget(key)
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
            if key in self.devices.listed:
                return False
            group = self.data.get(key)
            if group is not None and not group.stale and group.last_seen is not None:
                return False
        for key in keys:
            self.async_forget_group(key)
        return True

    # --- the stream ---------------------------------------------------------------------------

    @callback
    def async_start(self) -> None:
        """Open the stream as a background task of the entry and watch its health."""
        self.async_start_watchdog()
        self.devices.async_start()
        self.async_run_connection(self.stream.run(), NovacoreAuthError, "the token was refused")

    async def async_stop_connection(self) -> None:
        """Keep what the entry remembers."""
        await self.store.async_save()

    @callback
    def _async_on_connected(self) -> None:
        self._not_found = 0
        async_clear_issue(self.hass, SITE_NOT_FOUND, self.config_entry)
        self.async_connection_up()
        self.devices.async_request("stream connected")

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

    def _resolve(self, reading: DerReading) -> NovacoreGroup | None:
        """Find (or create) the group of a reading's DER (protocol/novacore/routing.py).

        None: the DER is new and the site has reached its limit of DERs (the reading is dropped).
        """
        route = self.devices.directory.route(reading)
        if route.replaces is not None and route.replaces in self.data:
            # The DER joined the list: it replaces the group its readings had before.
            self.devices.remove(
                route.replaces, f"it is listed as {der_name(reading, route.der)} now"
            )
        key = route.key
        group = self.data.get(key)
        if group is None:
            if len(self.data) - (self.home.group is not None) >= self.limits[DERS_LIMIT]:
                self.async_limit_reached(DERS_LIMIT, key)
                return None
            if route.der is None:
                # A DER the list does not know yet: read the list again (at most once a minute).
                self.devices.async_request(f"unknown DER {key}")
            info = DeviceInfo(
                identifiers={(DOMAIN, f"{self.site_id}_{key}")},
                name=der_name(reading, route.der),
                manufacturer=reading.make,
                model=type_name(reading.der_type),
            )
            info.update(via_device(self.devices.parent(route.device)))
            group = NovacoreGroup(
                key,
                f"{self.site_id}_{key}",
                info,
                reading.der_type,
                self.signs.factor(key, reading.der_type),
            )
            self.data[key] = group
            self.home.async_ders_changed()
        assert isinstance(group, NovacoreGroup)
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        self._routes[route_key(reading)] = group
        return group

    @callback
    def _async_on_readings(self, readings: list[DerReading]) -> None:
        """Apply readings: drop older ones, write only the entities whose value changed."""
        routes = self._routes
        now = time.monotonic()
        home_at: float | None = None
        home = False
        for reading in readings:
            group = routes.get(route_key(reading))
            if group is None and (group := self._resolve(reading)) is None:
                continue
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
            if group.der_type in HOME_COUNTERS:
                home = True
                if timestamp is not None and (home_at is None or timestamp > home_at):
                    home_at = timestamp
        self.async_announce_points()
        if home:
            self.home.async_update(home_at)

    def _observe_sign(self, group: NovacoreGroup, reading: DerReading) -> None:
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
        if len(group.fields) + len(group.text_fields) >= self.limits[FIELDS_LIMIT]:
            self.async_limit_reached(FIELDS_LIMIT, group.key)
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
        self.home.async_update(None)

    @callback
    def _async_watchdog(self, now: datetime) -> None:
        """Mark DERs that stopped reporting stale; the house's power goes with them."""
        super()._async_watchdog(now)
        self.home.async_update(None)

    def energy_items(self) -> list[EnergyItem]:
        """Return the site's grid meters, PV, batteries and EV chargers for the dashboard.

        An inverter is left out: its AC output already holds its PV and battery.
        """
        items: list[EnergyItem] = []
        for group in sorted(self.data.values(), key=lambda group: group.key):
            if not isinstance(group, NovacoreGroup) or group.der_type not in DASHBOARD_ROLES:
                continue
            role, energy_from, energy_to = DASHBOARD_ROLES[group.der_type]
            points = group.points
            source = points.get(energy_from)
            target = points.get(energy_to) if energy_to else None
            if source is None or source.statistic is None:
                continue  # no energy counter yet (or no recorder)
            if energy_to is not None and role == "battery" and target is None:
                continue  # a battery needs both of its counters
            capacity = points.get("capacity")
            items.append(
                EnergyItem(
                    key=group.key,
                    role=role,
                    name=str(group.device_info.get("name") or group.key),
                    energy_from=source.statistic.statistic_id,
                    energy_to=None
                    if target is None or target.statistic is None
                    else target.statistic.statistic_id,
                    sensors=tuple(
                        entity
                        for point in (source, target)
                        if (entity := self.entity_id(point)) is not None
                    ),
                    power=self.entity_id(points.get("power")),
                    soc=self.entity_id(points.get("state_of_charge")),
                    capacity=capacity.value
                    if capacity is not None and isinstance(capacity.value, float)
                    else None,
                )
            )
        return items

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
                for der_id, (der, device) in self.devices.directory.ders_by_id.items()
            },
        }
        data["device_list"] = {
            **self.devices.diagnostics(),
            "site_not_found_answers": self._not_found,
        }
        data["signs"] = self.signs.diagnostics()
        data["home"] = self.home.diagnostics()
        for key, group in self.data.items():
            if isinstance(group, NovacoreGroup):
                data["groups"][key]["der_type"] = group.der_type
                data["groups"][key]["wire_sign"] = group.sign
        return data
