"""Coordinator of an Ainsite subscription: its own persistent MQTT session, a sensor per register."""

from __future__ import annotations

from datetime import datetime
import ssl
import time
from typing import Any, Final

from homeassistant.components.sensor import SensorStateClass
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo

from ..compat import via_device
from ..const import (
    CONF_CLIENT_ID,
    CONF_CUSTOMER_ID,
    CONF_REGISTERS,
    CONF_SUBSCRIPTION_ID,
    CONF_TLS,
    DOMAIN,
    LOGGER,
)
from ..coordinator import EnergyTelemetryConfigEntry, Group, PushCoordinator
from ..energy_dashboard import EnergyItem
from ..issues import (
    METERS_LIMIT,
    REGISTERS_LIMIT,
    SUBSCRIPTION_REFUSED,
    async_clear_issue,
    async_raise_issue,
)
from ..protocol.ainsite import AinsiteAuthError, AinsiteConnection, parse_payload, parse_topic
from ..protocol.common import ParseStats
from .descriptions import LAST_READING_DESCRIPTION, register_description
from .validation import async_tls_context

MAX_METERS: Final = 5_000
"""Meters one entry takes (a property manager's subscription has a thousand or so)."""
MAX_REGISTERS_PER_METER: Final = 50
"""Registers one meter takes (a meter reports a few: energy, power, volume ...)."""
REFUSALS_FOR_ISSUE: Final = 3
"""Subscriptions refused in a row after which a repair issue says so."""
REMOVABLE_AFTER: Final = 3600.0
"""A meter device may be deleted by the user after this many seconds without a reading."""


async def async_create_coordinator(
    hass: HomeAssistant, entry: EnergyTelemetryConfigEntry
) -> AinsiteCoordinator:
    """Build the coordinator, with a TLS context made off the event loop."""
    return AinsiteCoordinator(hass, entry, await async_tls_context(hass, entry.data[CONF_TLS]))


class AinsiteCoordinator(PushCoordinator):
    """Holds the MQTT session of one customer (or one of its subscriptions)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: EnergyTelemetryConfigEntry,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        """Prepare the connection; it opens in `async_start`."""
        super().__init__(hass, entry, name=entry.title)
        data = entry.data
        self.customer_id: str = data[CONF_CUSTOMER_ID]
        self.subscription_id: str | None = data.get(CONF_SUBSCRIPTION_ID) or None
        self.mappings: dict[str, dict[str, Any]] = dict(entry.options.get(CONF_REGISTERS, {}))
        self.stats = ParseStats()
        self.duplicates = 0
        self.out_of_order = 0
        self.foreign = 0
        self._subscription_devices: dict[str, dr.DeviceEntry] = {}
        self._subscription_of: dict[str, str] = {}
        """Meter id -> subscription id, for meters seen in this run."""
        self.limits = {METERS_LIMIT: MAX_METERS, REGISTERS_LIMIT: MAX_REGISTERS_PER_METER}
        self.connection = AinsiteConnection(
            data[CONF_HOST],
            data[CONF_PORT],
            data[CONF_USERNAME],
            data[CONF_PASSWORD],
            data[CONF_CLIENT_ID],
            self.customer_id,
            self.subscription_id,
            tls_context,
            on_message=self._async_on_message,
            on_connected=self.async_connection_up,
            on_disconnected=self._async_on_disconnected,
            on_subscription=self._async_on_subscription,
        )

    async def _async_update_data(self) -> dict[str, Group]:
        """Recreate the meters and registers known from earlier runs, so totals restore at once."""
        registry = er.async_get(self.hass)
        prefix = f"{self.customer_id}_"
        for entity in er.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            unique_id = entity.unique_id
            if not unique_id.startswith(prefix) or entity.domain != "sensor":
                continue
            if unique_id.endswith(f"_{LAST_READING_DESCRIPTION.key}"):
                continue
            meter, _, register = unique_id[len(prefix) :].rpartition("_")
            if not meter:
                continue
            group = self.data.get(meter) or self._new_meter(meter, None)
            if register not in group.points:
                self.async_add_point(
                    group, register_description(register, self.mappings.get(register))
                )
        return self.data

    @callback
    def async_start(self) -> None:
        """Open the MQTT session as a background task of the entry."""
        self.async_start_watchdog()
        entry = self.config_entry
        self.async_run_connection(
            self.connection.run(), AinsiteAuthError, "the broker refused the credentials"
        )
        # Also on a failed set-up or unload that did not reach async_stop_connection.
        entry.async_on_unload(self.async_stop_connection)

    async def async_stop_connection(self) -> None:
        """Close the MQTT session; the messages it still held are applied before it returns."""
        await self.connection.close()

    @callback
    def _async_on_disconnected(self, error: Exception | None) -> None:
        self.async_connection_down(str(error) if error else "disconnected")

    @callback
    def _async_on_subscription(self, refusals: int) -> None:
        """Raise a repair issue while the broker keeps refusing the subscription; clear it after."""
        if refusals == 0:
            async_clear_issue(self.hass, SUBSCRIPTION_REFUSED, self.config_entry)
        elif refusals == REFUSALS_FOR_ISSUE:
            LOGGER.warning(
                "%s: the broker refused the subscription to %s %d times in a row; see the"
                " repair issue",
                self.name,
                self.connection.topic_filter,
                refusals,
            )
            async_raise_issue(
                self.hass,
                SUBSCRIPTION_REFUSED,
                self.config_entry,
                {"customer_id": self.customer_id, "topic": self.connection.topic_filter},
            )

    def async_remove_device(self, device: dr.DeviceEntry) -> bool:
        """Forget a meter (or subscription) device a user deletes, once it stopped reporting.

        A meter that reports again comes back with its device and entities.
        """
        now = time.monotonic()
        prefix = f"ainsite_{self.customer_id}_"
        for domain, identifier in device.identifiers:
            if domain != DOMAIN or not identifier.startswith(prefix):
                continue
            key = identifier.removeprefix(prefix)
            if key in self._subscription_devices:
                if any(
                    subscription == key and self._recent(group, now)
                    for group, subscription in self._meter_subscriptions()
                ):
                    return False
                del self._subscription_devices[key]
                return True
            group = self.data.get(key)
            if group is not None and self._recent(group, now):
                return False
            self.data.pop(key, None)
            return True
        return False

    @staticmethod
    def _recent(group: Group, now: float) -> bool:
        return group.last_seen is not None and now - group.last_seen < REMOVABLE_AFTER

    def _meter_subscriptions(self) -> list[tuple[Group, str]]:
        return [
            (group, via)
            for group in self.data.values()
            if (via := self._subscription_of.get(group.key)) is not None
        ]

    def known_registers(self) -> set[str]:
        """Return every register id seen so far."""
        return {
            point.description.key
            for group in self.data.values()
            for point in group.points.values()
            if point.description is not LAST_READING_DESCRIPTION
        }

    # --- readings -----------------------------------------------------------------------------

    def _subscription_device(self, subscription: str) -> dr.DeviceEntry:
        device = self._subscription_devices.get(subscription)
        if device is None:
            device = dr.async_get(self.hass).async_get_or_create(
                config_entry_id=self.config_entry.entry_id,
                identifiers={(DOMAIN, f"ainsite_{self.customer_id}_{subscription}")},
                name=f"Ainsite subscription {subscription}",
                manufacturer="Ainsite",
                model="MQTT subscription",
                entry_type=DeviceEntryType.SERVICE,
            )
            self._subscription_devices[subscription] = device
        return device

    def _new_meter(self, meter: str, subscription: str | None) -> Group:
        info = DeviceInfo(
            identifiers={(DOMAIN, f"ainsite_{self.customer_id}_{meter}")},
            name=f"Meter {meter}",
            manufacturer="Ainsite",
            model="Meter",
        )
        if subscription is not None:
            info.update(via_device(self._subscription_device(subscription)))
            self._subscription_of[meter] = subscription
        group = Group(meter, f"{self.customer_id}_{meter}", info)
        self.data[meter] = group
        return group

    @callback
    def _async_on_message(self, topic: str, payload: bytes) -> None:
        """Apply one MQTT message; duplicates and older readings are dropped."""
        parts = parse_topic(topic)
        if (
            parts is None
            or parts[0] != self.customer_id
            or (self.subscription_id is not None and parts[1] != self.subscription_id)
        ):
            self.foreign += 1
            LOGGER.debug("%s: ignoring message on unexpected topic %.200s", self.name, topic)
            return
        reading = parse_payload(payload, self.stats)
        if reading is None:
            return
        meter = parts[2]
        group = self.data.get(meter)
        if group is None:
            if len(self.data) >= self.limits[METERS_LIMIT]:
                self.async_limit_reached(METERS_LIMIT, meter)
                return
            group = self._new_meter(meter, parts[1])
        register = reading.register_id
        point = group.points.get(register)
        if point is None:
            registers = len(group.points) - (LAST_READING_DESCRIPTION.key in group.points)
            if registers >= self.limits[REGISTERS_LIMIT]:
                self.async_limit_reached(REGISTERS_LIMIT, meter)
                return
            # Its entity is added once the reading's value is set (async_announce_points).
            point = self.async_add_point(
                group, register_description(register, self.mappings.get(register)), announce=False
            )
        timestamp = reading.timestamp.timestamp() * 1000.0
        last = point.timestamp if point.guard is None else point.guard.timestamp
        if last is not None and timestamp <= last:
            if (statistic := point.statistic) is not None:  # late readings still fix their hour
                statistic(reading.value, timestamp, reading.start)
            if timestamp == last:
                self.duplicates += 1
            else:
                self.out_of_order += 1
            return
        force = False
        if (
            reading.start is not None
            and getattr(point.description, "state_class", None) is SensorStateClass.TOTAL
            and point.last_reset != reading.start
        ):
            point.last_reset = reading.start
            force = True
        group.seen(time.monotonic())
        self.async_set_value(point, reading.value, timestamp, force=force)
        self._set_last_reading(group, reading.timestamp)
        self.async_announce_points()

    def _set_last_reading(self, group: Group, moment: datetime) -> None:
        point = group.points.get(LAST_READING_DESCRIPTION.key)
        if point is None:
            point = self.async_add_point(group, LAST_READING_DESCRIPTION, announce=False)
        if not isinstance(point.value, datetime) or moment > point.value:
            self.async_set_value(point, moment, None)

    def energy_items(self) -> list[EnergyItem]:
        """Return every energy register of every meter (with its statistic) for the dashboard.

        A meter's energy comes from the grid or goes to one device: the user chooses.
        """
        items: list[EnergyItem] = []
        for meter, group in sorted(self.data.items()):
            for register, point in sorted(group.points.items()):
                if point.statistic is None:
                    continue
                entity = self.entity_id(point)
                items.append(
                    EnergyItem(
                        key=f"{meter}/{register}",
                        role="device",
                        name=f"{group.device_info.get('name') or meter} ({register})",
                        energy_from=point.statistic.statistic_id,
                        sensors=() if entity is None else (entity,),
                    )
                )
        return items

    def diagnostics(self) -> dict[str, Any]:
        """Add the session's counters to the common diagnostics."""
        data = super().diagnostics()
        data["mqtt"] = {
            "connects": self.connection.connects,
            "messages": self.connection.messages,
            "accepted": self.stats.accepted,
            "rejected": dict(self.stats.rejected),
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "foreign_topics": self.foreign,
            "registers": sorted(self.known_registers()),
        }
        return data
