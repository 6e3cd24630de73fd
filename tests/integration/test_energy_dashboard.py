"""The energy dashboard in one step: Configure -> Energy dashboard -> Submit, on every release.

Through the real options flow, with a real recorder, Home Assistant's energy manager and its own
energy validator.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from homeassistant.components.energy.data import async_get_manager
from homeassistant.components.energy.validate import async_validate
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.recorder import get_instance
from homeassistant.setup import async_setup_component
import pytest

from custom_components.energy_telemetry.compat import energy_keys, energy_unified_grid
from simulator.ainsite_publisher import payload_v1
from tests.helpers.ainsite import at, setup_ainsite, topic
from tests.helpers.flows import open_options_step
from tests.helpers.novacore import send, setup_fast
from tests.helpers.recorder import Hold, compile_short_term, importer_of
from tests.helpers.site import READINGS, SITE_ID, Novacore
from tests.helpers.waiting import wait_for

PREFIX = f"energy_telemetry:{SITE_ID.replace('-', '_')}"
IMPORTED = f"{PREFIX}_der_meter_energy_imported"
EXPORTED = f"{PREFIX}_der_meter_energy_exported"
PRODUCED = f"{PREFIX}_der_pv_energy_produced"
CHARGED = f"{PREFIX}_der_bat_energy_charged"
DISCHARGED = f"{PREFIX}_der_bat_energy_discharged"
EV_CHARGED = f"{PREFIX}_der_evc_energy_charged"


@pytest.fixture
def before_home_assistant(recorder_first: None) -> None:
    """A real recorder: the dashboard's energy comes from the hour-true statistics."""


@pytest.fixture
async def energy(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "energy", {})


async def site(hass: HomeAssistant, novacore: Novacore) -> Any:
    """The test site, every DER reporting twice a minute ago (statistics need recent readings)."""
    entry = await setup_fast(hass, novacore)
    now = time.time() * 1000
    for offset in (-60_000, -30_000):
        for kind in ("pv", "battery", "meter", "ev_charger", "inverter"):
            reading = {**READINGS[kind], "timestamp": now + offset}
            for field in ("total_generation_Wh", "total_charge_Wh", "total_import_Wh"):
                if field in reading and offset > -60_000:
                    reading[field] += 10
            if kind == "battery":
                reading["capacity_kWh"] = 10.0
            await send(hass, novacore, entry, reading)
    return entry


async def open_step(hass: HomeAssistant, entry: Any) -> dict[str, Any]:
    """Configure -> Energy dashboard, as a user does."""
    return await open_options_step(hass, entry, "energy_dashboard")


def defaults(result: dict[str, Any]) -> dict[str, Any]:
    """Return what the form holds before the user changes anything."""
    return {str(key): key.default() for key in result["data_schema"].schema}


async def preferences(hass: HomeAssistant) -> dict[str, Any]:
    manager = await async_get_manager(hass)
    assert manager.data is not None
    return dict(manager.data)


async def no_issues(hass: HomeAssistant) -> None:
    """Home Assistant's own energy validator reports nothing (once the power sensors have their
    first statistics, which the recorder makes every 5 minutes)."""
    await compile_short_term(hass)
    validation = (await async_validate(hass)).as_dict()
    assert all(not issues for issues in validation["energy_sources"]), validation
    assert all(not issues for issues in validation["device_consumption"]), validation


def grid_meters(prefs: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """Return (import, export) of every grid connection, in either form of the preferences."""
    found: list[tuple[str | None, str | None]] = []
    for source in prefs["energy_sources"]:
        if source["type"] != "grid":
            continue
        if "flow_from" in source:
            exports = [flow["stat_energy_to"] for flow in source["flow_to"]]
            for index, flow in enumerate(source["flow_from"]):
                found.append(
                    (flow["stat_energy_from"], exports[index] if index < len(exports) else None)
                )
        else:
            found.append((source["stat_energy_from"], source["stat_energy_to"]))
    return found


async def test_a_novacore_site_in_one_step(
    hass: HomeAssistant, novacore: Novacore, energy: None
) -> None:
    entry = await site(hass, novacore)
    coordinator = entry.runtime_data
    options = dict(entry.options)
    result = await open_step(hass, entry)
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "energy_dashboard"
    assert defaults(result) == {
        "grid": ["der-meter"],
        "solar": ["der-pv"],
        "battery": ["der-bat"],
        "device": ["der-evc"],  # the EV charger; the inverter is not offered
    }
    assert result["description_placeholders"] == {"present": "-", "waiting": "-"}

    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "energy_dashboard_saved"
    assert result["description_placeholders"] == {
        "added": "grid-meter, pv-array, battery_1, garage-charger"
    }
    await hass.async_block_till_done()
    assert entry.options == options  # nothing of the entry changed, and it did not reload
    assert entry.runtime_data is coordinator

    prefs = await preferences(hass)
    assert grid_meters(prefs) == [(IMPORTED, EXPORTED)]
    solar = next(source for source in prefs["energy_sources"] if source["type"] == "solar")
    battery = next(source for source in prefs["energy_sources"] if source["type"] == "battery")
    assert solar["stat_energy_from"] == PRODUCED
    assert (battery["stat_energy_from"], battery["stat_energy_to"]) == (DISCHARGED, CHARGED)
    assert prefs["device_consumption"][0]["stat_consumption"] == EV_CHARGED
    # Power, state of charge and capacity where this release takes them.
    if "stat_rate" in energy_keys("SOLAR_SOURCE_SCHEMA"):
        assert solar["stat_rate"] == "sensor.pv_array_power"
    if energy_keys("BATTERY_SOURCE_SCHEMA") & {"stat_rate", "power_config"}:
        assert battery["stat_rate"] == "sensor.battery_1_power"
    if "stat_soc" in energy_keys("BATTERY_SOURCE_SCHEMA"):
        assert battery["stat_soc"] == "sensor.battery_1_battery"
    if "capacity" in energy_keys("BATTERY_SOURCE_SCHEMA"):
        assert battery["capacity"] == 10.0
    if energy_unified_grid():
        grid = next(source for source in prefs["energy_sources"] if source["type"] == "grid")
        assert grid["stat_rate"] == "sensor.grid_meter_power"
    await no_issues(hass)

    # Run twice, it changes nothing.
    result = await open_step(hass, entry)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "energy_dashboard_complete"
    assert await preferences(hass) == prefs
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_what_the_user_set_stays_and_nothing_is_added_twice(
    hass: HomeAssistant, novacore: Novacore, energy: None
) -> None:
    entry = await site(hass, novacore)
    await wait_for(lambda: hass.states.get("sensor.battery_1_energy_charged") is not None)
    manager = await async_get_manager(hass)
    own_solar = {"type": "solar", "stat_energy_from": "sensor.other_pv_energy"}
    own_battery = {  # the battery's own sensors, not the statistics: it is in the dashboard
        "type": "battery",
        "stat_energy_from": "sensor.battery_1_energy_discharged",
        "stat_energy_to": "sensor.battery_1_energy_charged",
    }
    await manager.async_update(
        {"energy_sources": [own_solar, own_battery], "device_consumption": []}
    )
    result = await open_step(hass, entry)
    assert result["description_placeholders"]["present"] == "battery_1"
    assert "battery" not in defaults(result)
    # The user leaves the solar out.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid": ["der-meter"], "solar": [], "device": ["der-evc"]}
    )
    assert result["reason"] == "energy_dashboard_saved"
    prefs = await preferences(hass)
    assert own_solar in prefs["energy_sources"]
    assert own_battery in prefs["energy_sources"]
    assert [source["type"] for source in prefs["energy_sources"]].count("battery") == 1
    assert PRODUCED not in str(prefs)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ainsite_meters_as_grid_or_devices(
    hass: HomeAssistant, mosquitto: Any, energy: None
) -> None:
    entry = await setup_ainsite(hass, mosquitto)
    accepted = entry.runtime_data.stats

    async def publish(meter: str, value: float, second: float) -> None:
        before = accepted.accepted
        await mosquitto.apublish(topic(meter), payload_v1(value, at(second)))
        await wait_for(lambda: accepted.accepted > before)
        await hass.async_block_till_done()

    await publish("mtr-1", 10.0, 1)
    await publish("mtr-1", 10.5, 2)
    # One meter, no grid consumption yet: the home's utility meter.
    result = await open_step(hass, entry)
    assert defaults(result) == {"grid": ["mtr-1/2"], "device": []}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid": ["mtr-1/2"], "device": ["mtr-1/2"]}
    )
    assert result["errors"] == {"base": "chosen_twice"}
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["reason"] == "energy_dashboard_saved"
    statistic = "energy_telemetry:cust_4711_mtr_1_2"
    assert grid_meters(await preferences(hass)) == [(statistic, None)]

    # A second meter, with the grid already there: an individual device.
    await publish("mtr-2", 5.0, 3)
    await publish("mtr-2", 5.5, 4)
    result = await open_step(hass, entry)
    assert result["type"] is FlowResultType.FORM, result
    assert result["description_placeholders"]["present"] == "Meter mtr-1 (2)"
    assert defaults(result) == {"grid": [], "device": ["mtr-2/2"]}
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    prefs = await preferences(hass)
    assert (
        prefs["device_consumption"][-1]["stat_consumption"] == "energy_telemetry:cust_4711_mtr_2_2"
    )
    await no_issues(hass)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_without_the_energy_dashboard(hass: HomeAssistant, novacore: Novacore) -> None:
    entry = await site(hass, novacore)
    result = await open_step(hass, entry)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_energy_dashboard"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_what_the_step_says_when_it_has_nothing_to_add(
    hass: HomeAssistant, novacore: Novacore, energy: None
) -> None:
    entry = await setup_fast(hass, novacore)
    result = await open_step(hass, entry)
    assert result["reason"] == "energy_dashboard_nothing"  # no energy counter has reported yet
    for kind in ("pv", "battery", "meter", "ev_charger"):
        await send(hass, novacore, entry, {**READINGS[kind], "timestamp": time.time() * 1000})
    # The recorder is busy: the statistics cannot be confirmed in time.
    importer = importer_of(entry)
    await wait_for(lambda: all(feed.series.seeded for feed in importer.feeds.values()))
    importer.stored_wait = 0.5
    gate = threading.Event()
    get_instance(hass).queue_task(Hold(gate))
    try:
        result = await open_step(hass, entry)
    finally:
        gate.set()
    assert result["reason"] == "energy_dashboard_waiting"
    assert result["description_placeholders"]["waiting"] == (
        "battery_1, garage-charger, grid-meter, pv-array"
    )
    # With the recorder back, nothing ticked adds nothing.
    importer.stored_wait = 10.0
    result = await open_step(hass, entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"grid": [], "solar": [], "battery": [], "device": []}
    )
    assert result["reason"] == "energy_dashboard_unchanged"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_preferences_the_release_refuses(
    hass: HomeAssistant, novacore: Novacore, energy: None
) -> None:
    """Preferences that do not validate (here the user's own, with a meter twice) are not
    written; the step says why."""
    entry = await site(hass, novacore)
    meter = "sensor.someone_elses_meter"
    if energy_unified_grid():
        grid = {"type": "grid", "stat_energy_from": meter, "cost_adjustment_day": 0.0}
        broken = [grid, dict(grid)]
    else:
        flow = {
            "stat_energy_from": meter,
            "stat_cost": None,
            "entity_energy_price": None,
            "number_energy_price": None,
        }
        broken = [
            {"type": "grid", "flow_from": [flow, flow], "flow_to": [], "cost_adjustment_day": 0.0}
        ]
    manager = await async_get_manager(hass)
    await manager.async_update({"energy_sources": broken, "device_consumption": []})
    before = await preferences(hass)
    result = await open_step(hass, entry)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["reason"] == "energy_dashboard_refused"
    assert meter in result["description_placeholders"]["error"]
    assert await preferences(hass) == before
    assert await hass.config_entries.async_unload(entry.entry_id)
