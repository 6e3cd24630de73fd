"""Devices follow the sources: DERs that join get their listed name, those that leave are removed,
and a user may delete a device that no longer reports (it comes back if it reports again)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component

from custom_components.energy_telemetry.compat import entry_device
from custom_components.energy_telemetry.const import DOMAIN
from simulator.ainsite_publisher import payload_v1
from tests.helpers.ainsite import setup_ainsite, topic
from tests.helpers.entities import number
from tests.helpers.novacore import send, setup_fast
from tests.helpers.site import DEVICES, SITE_ID, TS, Novacore
from tests.helpers.waiting import wait_for

INVERTER_ONLY = [copy.deepcopy(DEVICES[0])]
INVERTER_ONLY[0]["ders"] = [{"id": "der-pv", "name": "pv-array", "type": "solar"}]


def _device(hass: HomeAssistant, key: str) -> dr.DeviceEntry | None:
    entry_id = hass.config_entries.async_entries(DOMAIN)[0].entry_id
    return entry_device(dr.async_get(hass), (DOMAIN, key), entry_id)


def _entity(hass: HomeAssistant, unique_id: str) -> str | None:
    return er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id)


async def _readings(hass: HomeAssistant, novacore: Novacore, entry: Any) -> None:
    for der, payload in (
        ("der-pv", {"type": "pv", "W": -100}),
        ("der-bat", {"type": "battery", "W": 10}),
        ("der-meter", {"type": "meter", "W": 5}),
    ):
        await send(hass, novacore, entry, {**payload, "der_id": der, "timestamp": TS})


async def _reconnect(novacore: Novacore, entry: Any) -> None:
    """End the stream; the integration reconnects and reads the device list again."""
    coordinator = entry.runtime_data
    reads = coordinator.devices.reads
    await novacore.server.cut_streams(SITE_ID)
    await wait_for(lambda: coordinator.devices.reads > reads)


async def test_ders_that_leave_the_site_are_removed(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """A reconnect reads the list again; a DER and a device that left go, with their entities."""
    entry = await setup_fast(hass, novacore)
    entry.runtime_data.devices.min_interval = 0
    await _readings(hass, novacore, entry)
    assert _entity(hass, f"{SITE_ID}_der-bat_power")
    signs = entry.runtime_data.signs
    assert {"der-pv", "der-bat", "der-meter"} <= set(signs.diagnostics())
    novacore.server.set_devices(SITE_ID, INVERTER_ONLY)
    await _reconnect(novacore, entry)
    await hass.async_block_till_done()
    # What was known of the DERs' signs goes with them; the stored evidence too.
    assert set(signs.diagnostics()) == {"der-pv"}
    assert set(signs.as_dict()["ders"]) <= {"der-pv"}
    assert _device(hass, f"{SITE_ID}_der-bat") is None
    assert _device(hass, f"{SITE_ID}_dev-meter") is None
    assert _device(hass, f"{SITE_ID}_der-meter") is None
    assert _entity(hass, f"{SITE_ID}_der-bat_power") is None
    assert _entity(hass, f"{SITE_ID}_der-meter_power") is None
    assert _device(hass, f"{SITE_ID}_dev-evc") is None
    assert _device(hass, f"{SITE_ID}_der-pv") is not None
    assert _entity(hass, f"{SITE_ID}_der-pv_power") is not None
    # The DERs that reported and the physical devices that left: battery, meter, EV charger.
    assert entry.runtime_data.devices.devices_removed == 4
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_empty_list_removes_nothing(hass: HomeAssistant, novacore: Novacore) -> None:
    """A list that suddenly comes back empty is taken as a glitch."""
    entry = await setup_fast(hass, novacore)
    entry.runtime_data.devices.min_interval = 0
    await _readings(hass, novacore, entry)
    novacore.server.set_devices(SITE_ID, [])
    await _reconnect(novacore, entry)
    assert _device(hass, f"{SITE_ID}_der-bat") is not None
    assert entry.runtime_data.devices.devices_removed == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_removal_is_remembered_across_a_restart(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """A device that left while Home Assistant was down is removed at the next start."""
    entry = await setup_fast(hass, novacore)
    await _readings(hass, novacore, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    novacore.server.set_devices(SITE_ID, INVERTER_ONLY)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _device(hass, f"{SITE_ID}_der-bat") is None
    assert _device(hass, f"{SITE_ID}_der-pv") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_der_that_joins_gets_its_name(hass: HomeAssistant, novacore: Novacore) -> None:
    """Readings of a DER the list does not know yet make the integration read the list again."""
    novacore.server.set_devices(SITE_ID, INVERTER_ONLY)
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    coordinator.devices.min_interval = 0
    # Without a DER id: first a device named after the type.
    await send(hass, novacore, entry, {"type": "battery", "W": 10, "timestamp": TS})
    assert _entity(hass, f"{SITE_ID}_battery_power")
    # With a DER id the list does not know yet.
    await send(
        hass,
        novacore,
        entry,
        {"type": "meter", "der_id": "der-meter", "W": 5, "timestamp": TS},
    )
    assert _device(hass, f"{SITE_ID}_der-meter").name == "Meter der-meter"
    await wait_for(lambda: not coordinator.devices.pending)

    novacore.server.set_devices(SITE_ID, DEVICES)
    await _reconnect(novacore, entry)
    await hass.async_block_till_done()
    meter = _device(hass, f"{SITE_ID}_der-meter")
    assert meter is not None
    assert meter.name == "grid-meter"
    assert meter.via_device_id == _device(hass, f"{SITE_ID}_dev-meter").id
    await send(hass, novacore, entry, {"type": "battery", "W": 20, "timestamp": TS + 1000})
    await hass.async_block_till_done()
    assert _device(hass, f"{SITE_ID}_battery") is None  # replaced by the listed DER
    assert _entity(hass, f"{SITE_ID}_battery_power") is None
    assert number(hass, "sensor.battery_1_power") == -20
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_list_is_read_at_most_once_a_minute(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    reads = coordinator.devices.reads
    for _ in range(3):
        connects = novacore.server.stream_connects
        await novacore.server.cut_streams(SITE_ID)
        await wait_for(lambda c=connects: novacore.server.stream_connects > c)
    assert coordinator.devices.reads == reads
    assert coordinator.devices.pending  # one read waits for its minute
    assert await hass.config_entries.async_unload(entry.entry_id)


async def _remove(hass: HomeAssistant, hass_ws_client: Any, entry: Any, device: Any) -> bool:
    assert await async_setup_component(hass, "config", {})
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "config/device_registry/remove_config_entry",
            "config_entry_id": entry.entry_id,
            "device_id": device.id,
        }
    )
    response = await client.receive_json()
    return bool(response["success"])


async def test_user_removes_a_novacore_device_that_stopped(
    hass: HomeAssistant, novacore: Novacore, hass_ws_client: Any
) -> None:
    """Listed or reporting devices stay; an unlisted one that stopped may go."""
    novacore.server.set_devices(SITE_ID, INVERTER_ONLY)
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, {"type": "battery", "W": 10, "timestamp": TS})
    listed = _device(hass, f"{SITE_ID}_dev-inv")
    reporting = _device(hass, f"{SITE_ID}_battery")
    assert not await _remove(hass, hass_ws_client, entry, listed)
    assert not await _remove(hass, hass_ws_client, entry, reporting)
    entry.runtime_data.data["battery"].stale = True  # as the watchdog marks a silent DER
    assert await _remove(hass, hass_ws_client, entry, reporting)
    assert _device(hass, f"{SITE_ID}_battery") is None
    assert "battery" not in entry.runtime_data.signs.diagnostics()
    await send(hass, novacore, entry, {"type": "battery", "W": 11, "timestamp": TS + 1000})
    await hass.async_block_till_done()
    assert _device(hass, f"{SITE_ID}_battery") is not None  # it reports again: back
    assert number(hass, "sensor.battery_power") == -11
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_user_removes_an_ainsite_meter_that_stopped(
    hass: HomeAssistant, mosquitto: Any, hass_ws_client: Any
) -> None:
    """A meter restored at start-up that has not reported may go, and comes back when it does."""
    entry = await setup_ainsite(hass, mosquitto)
    await mosquitto.apublish(
        topic("mtr-1"), payload_v1(1.0, datetime(2026, 11, 21, 12, tzinfo=UTC))
    )
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_1_energy_register_2"))
    meter = _device(hass, f"ainsite_{entry.data['customer_id']}_mtr-1")
    assert meter is not None
    assert not await _remove(hass, hass_ws_client, entry, meter)  # it reports

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connected)
    assert await _remove(hass, hass_ws_client, entry, meter)  # silent since the start
    await hass.async_block_till_done()
    assert _device(hass, meter.identifiers.copy().pop()[1]) is None
    assert hass.states.get("sensor.meter_mtr_1_energy_register_2") is None

    await mosquitto.apublish(
        topic("mtr-1"), payload_v1(2.0, datetime(2026, 11, 21, 13, tzinfo=UTC))
    )
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_1_energy_register_2"))
    assert number(hass, "sensor.meter_mtr_1_energy_register_2") == 2.0
    assert _device(hass, meter.identifiers.copy().pop()[1]) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
