"""The house's own consumption of a Novacore site, by the energy dashboard's formula.

home = grid import - grid export + PV production + battery discharge - battery charge; an EV
charger is part of the house, an inverter's output is not added again.
"""

from __future__ import annotations

from datetime import timedelta
import time
from typing import Any

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from tests.helpers.entities import number, record_states, state
from tests.helpers.novacore import reload_fast, send, setup_fast
from tests.helpers.recorder import changes, flush, hour, hourly, metadata_of
from tests.helpers.site import READINGS, SITE_ID, TS, Novacore

POWER = "sensor.home_home_power"
ENERGY = "sensor.home_home_energy"
PV, BATTERY, METER = READINGS["pv"], READINGS["battery"], READINGS["meter"]


@pytest.fixture
def before_home_assistant(recorder_first: None) -> None:
    """A real recorder, for the hour-true statistic."""


def home_wh(entry: Any) -> float | None:
    """Return the house's energy total in Wh, as the coordinator holds it."""
    group = entry.runtime_data.home.group
    value = group.points["home_energy"].value
    return None if value is None else float(value)


async def readings(hass: HomeAssistant, novacore: Novacore, entry: Any, *events: Any) -> None:
    for event in events:
        await send(hass, novacore, entry, event)


async def test_power_is_the_sum_of_the_terms_and_only_while_all_are_fresh(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    assert coordinator.home.terms == ["der-bat", "der-meter", "der-pv"]  # listed: no inverter, EV
    await readings(hass, novacore, entry, PV, BATTERY)
    assert state(hass, POWER) == STATE_UNAVAILABLE  # the meter has not reported: never a part-sum
    await readings(hass, novacore, entry, METER)
    # grid 850 imported + PV 2500 produced - battery 3000 charging (its wire's +3000)
    assert number(hass, POWER) == 350
    await readings(
        hass,
        novacore,
        entry,
        READINGS["ev_charger"],  # part of the house: already in what the grid and PV supply
        READINGS["inverter"],  # its AC output holds the PV and the battery: not added again
        {**METER, "W": 1850, "timestamp": TS + 1},
    )
    assert number(hass, POWER) == 1350

    # The PV goes stale: no power for the house until it reports again.
    coordinator.data["der-pv"].last_seen = time.monotonic() - 3600
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done()
    assert state(hass, POWER) == STATE_UNAVAILABLE
    await readings(hass, novacore, entry, {**PV, "W": -1000, "timestamp": TS + 2})
    assert number(hass, POWER) == 1850 + 1000 - 3000
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_energy_follows_the_counters_net_growth_and_never_goes_down(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    entry = await setup_fast(hass, novacore)
    shown: list[float] = []
    record_states(hass, ENERGY, shown)
    await readings(hass, novacore, entry, PV, BATTERY, METER)
    assert home_wh(entry) == 0.0  # the counters' first values are where the house starts

    # Exported energy shows before the PV production that made it: no drop, a deficit.
    await readings(
        hass,
        novacore,
        entry,
        {**METER, "total_import_Wh": 42100, "total_export_Wh": 31300, "timestamp": TS + 1},
    )
    assert home_wh(entry) == 0.0
    assert entry.runtime_data.home.growth.balance == -200.0
    await readings(
        hass, novacore, entry, {**PV, "total_generation_Wh": 150500, "timestamp": TS + 1}
    )
    assert home_wh(entry) == 300.0  # 100 imported - 300 exported + 500 produced
    await readings(
        hass,
        novacore,
        entry,
        {**BATTERY, "total_charge_Wh": 85100, "timestamp": TS + 1},  # 100 into the battery
        {**METER, "total_import_Wh": 42250, "total_export_Wh": 31300, "timestamp": TS + 2},
    )
    assert home_wh(entry) == 350.0
    # An EV charger's and an inverter's counters do not count.
    await readings(hass, novacore, entry, {**READINGS["ev_charger"], "total_charge_Wh": 1_260_000})
    assert home_wh(entry) == 350.0
    assert shown == sorted(shown)
    assert shown[-1] == 0.35  # kWh
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_energy_continues_across_a_restart(hass: HomeAssistant, novacore: Novacore) -> None:
    """What the counters counted while the entry was down counts for the house too."""
    entry = await setup_fast(hass, novacore)
    await readings(hass, novacore, entry, PV, BATTERY, METER)
    await readings(
        hass, novacore, entry, {**PV, "total_generation_Wh": 151000, "timestamp": TS + 1}
    )
    assert home_wh(entry) == 1000.0
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    await reload_fast(hass, novacore, entry)
    assert home_wh(entry) == 1000.0  # restored
    await readings(
        hass,
        novacore,
        entry,
        {**BATTERY, "timestamp": TS + 2},
        {**METER, "total_import_Wh": 42000, "total_export_Wh": 31400, "timestamp": TS + 2},
    )
    assert home_wh(entry) == 1000.0  # 400 exported while down: a deficit, never a drop
    await readings(
        hass, novacore, entry, {**PV, "total_generation_Wh": 152000, "timestamp": TS + 2}
    )
    assert home_wh(entry) == 1600.0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_energy_is_filed_in_the_hours_it_was_measured(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    entry = await setup_fast(hass, novacore)
    start = hour(0).timestamp() * 1000
    await readings(
        hass,
        novacore,
        entry,
        {**PV, "timestamp": start},
        {**BATTERY, "timestamp": start},
        {**METER, "timestamp": start},
    )
    for quarter in range(1, 9):  # 500 Wh produced every quarter of an hour, for two hours
        event = {**PV, "total_generation_Wh": 150000 + 500 * quarter}
        await readings(hass, novacore, entry, {**event, "timestamp": start + quarter * 900_000})
    assert home_wh(entry) == 4000.0
    await flush(hass, entry)
    statistic = f"energy_telemetry:{SITE_ID.replace('-', '_')}_home_energy"
    assert changes(await hourly(hass, statistic)) == {hour(0): 2000.0, hour(1): 2000.0}
    metadata = await metadata_of(hass, statistic)
    assert metadata[statistic][1]["unit_of_measurement"] == "Wh"
    assert await hass.config_entries.async_unload(entry.entry_id)
