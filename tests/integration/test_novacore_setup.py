"""Setting up a stored Novacore entry (unreachable, refused, no device list), and coordinator
contracts no stream event reaches."""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.coordinator import Group, Point
from custom_components.energy_telemetry.novacore.coordinator import NovacoreCoordinator
from custom_components.energy_telemetry.novacore.descriptions import novacore_description
from custom_components.energy_telemetry.protocol.novacore import NovacoreClient
from tests.helpers.entities import number
from tests.helpers.novacore import fast, reauth_flows, send, stored_entry
from tests.helpers.site import SITE_ID, TS, Novacore


async def test_setup_retries_when_unreachable(hass: HomeAssistant, novacore: Novacore) -> None:
    entry = stored_entry(novacore, private_key=novacore.private_key_pem)
    entry.add_to_hass(hass)
    novacore.server.fail_all(503)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert novacore.server.open_streams(SITE_ID) == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_with_refused_token_starts_reauth(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    token = novacore.server.issue_token(novacore.identity)
    novacore.server.revoke_all_tokens()
    entry = stored_entry(novacore, token=token)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert reauth_flows(hass, entry)


async def test_setup_with_unusable_stored_key(hass: HomeAssistant, novacore: Novacore) -> None:
    entry = stored_entry(novacore, private_key="not a key")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "not a key" not in (entry.reason or "")


async def test_setup_without_device_list(hass: HomeAssistant, novacore: Novacore) -> None:
    """Without a device list, DERs are named after their type (and DER id)."""
    entry = stored_entry(novacore, token=novacore.server.issue_token(novacore.identity))
    entry.add_to_hass(hass)
    novacore.server.fail_all(404)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID)
    fast(entry)
    await send(hass, novacore, entry, {"type": "battery", "W": 100, "timestamp": TS})
    await send(hass, novacore, entry, {"type": "pv", "der_id": "der-pv", "W": -5, "timestamp": TS})
    assert number(hass, "sensor.battery_power") == -100
    assert number(hass, "sensor.solar_der_pv_power") == 5
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- coordinator contracts that no stream event reaches -------------------------------------------


class _Entity:
    """Stands in for a sensor: records the writes the coordinator asks for."""

    def __init__(self, writes: list[str], name: str) -> None:
        self._writes = writes
        self._name = name

    def async_write_ha_state(self) -> None:
        self._writes.append(self._name)


def _bare_coordinator(hass: HomeAssistant) -> NovacoreCoordinator:
    entry = MockConfigEntry(domain=DOMAIN, title="Home", data={"source": "novacore"})
    entry.add_to_hass(hass)
    client = NovacoreClient(async_get_clientsession(hass), "http://127.0.0.1:9", token="t")
    return NovacoreCoordinator(hass, entry, client, SITE_ID)


async def test_points_known_before_the_platform(hass: HomeAssistant) -> None:
    """Points that exist before the sensor platform registers are handed to it at once."""
    coordinator = _bare_coordinator(hass)
    group = Group("g", "g", DeviceInfo(identifiers={(DOMAIN, "g")}))
    coordinator.data["g"] = group
    first = coordinator.async_add_point(group, novacore_description("meter", "W"))
    handed: list[Point] = []
    coordinator.async_set_new_points_listener(handed.extend)
    assert handed == [first]
    second = coordinator.async_add_point(group, novacore_description("meter", "Hz"))
    assert handed == [first, second]


async def test_group_seen_and_late_grace_timer(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """A stale group is rewritten when seen again; a grace timer firing late changes nothing."""
    coordinator = _bare_coordinator(hass)
    group = Group("g", "g", DeviceInfo(identifiers={(DOMAIN, "g")}), track_staleness=True)
    coordinator.data["g"] = group
    point = coordinator.async_add_point(group, novacore_description("meter", "W"))
    writes: list[str] = []
    point.entity = _Entity(writes, "power")  # type: ignore[assignment]

    group.stale = True
    coordinator.async_group_seen(group)
    assert writes == ["power"]
    assert not group.stale
    coordinator.async_group_seen(group)
    assert writes == ["power"]

    coordinator.async_connection_up()
    writes.clear()
    coordinator._async_grace_expired(dt_util.utcnow())
    assert coordinator.connection_available
    assert writes == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
