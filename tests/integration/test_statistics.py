"""Hourly statistics at the source's timestamps: a real recorder, a real mosquitto, real entries."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import logging
import threading
from typing import Any

from homeassistant.components.recorder.statistics import (
    list_statistic_ids,
)
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from sqlalchemy import text

from custom_components.energy_telemetry import statistics as statistics_module
from custom_components.energy_telemetry.ainsite.descriptions import register_description
from custom_components.energy_telemetry.descriptions import EnergyTelemetrySensorEntityDescription
from custom_components.energy_telemetry.novacore.descriptions import novacore_description
from custom_components.energy_telemetry.statistics import statistic_kind
from simulator.ainsite_publisher import payload_v1, payload_v2
from tests.helpers.ainsite import ENERGY, setup_ainsite, topic
from tests.helpers.novacore import setup_novacore
from tests.helpers.recorder import (
    Hold as _Hold,
    changes,
    flush,
    hour,
    hourly,
    importer_of,
    metadata_of,
)
from tests.helpers.site import CUSTOMER_ID, SITE_ID, Novacore
from tests.helpers.waiting import wait_for

ENERGY_ID = f"energy_telemetry:{CUSTOMER_ID.replace('-', '_')}_mtr_1_2"
INTERVAL_ID = f"energy_telemetry:{CUSTOMER_ID.replace('-', '_')}_mtr_1_12"


@pytest.fixture
def before_home_assistant(recorder_first: None) -> None:
    """A real recorder."""


async def publish(mosquitto: Any, meter: str, messages: list[bytes]) -> None:
    await mosquitto.apublish_many([(topic(meter), payload) for payload in messages])


async def applied(entry: Any, count: int) -> None:
    """Wait until `count` messages went through the entry (accepted by the parser)."""
    await wait_for(lambda: entry.runtime_data.stats.accepted >= count)


async def _one_hour_measured(hass: HomeAssistant, mosquitto: Any) -> Any:
    """Set up the subscription and apply two readings of mtr-1, an hour apart; return the entry."""
    entry = await setup_ainsite(hass, mosquitto)
    await publish(mosquitto, "mtr-1", [payload_v1(1.0, hour(0)), payload_v1(2.0, hour(1))])
    await applied(entry, 2)
    return entry


async def test_a_burst_lands_in_the_hours_it_was_measured(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """Six hourly readings delivered at once: six hours of the right sizes, not one tall bar."""
    entry = await setup_ainsite(hass, mosquitto)
    values = [100.0, 101.0, 103.0, 106.0, 110.0, 115.0, 121.0]
    await publish(
        mosquitto, "mtr-1", [payload_v1(value, hour(n)) for n, value in enumerate(values)]
    )
    await applied(entry, len(values))
    await flush(hass, entry)
    rows = await hourly(hass, ENERGY_ID)
    assert [row["start"] for row in rows] == [hour(n) for n in range(6)]
    assert [row["sum"] for row in rows] == [1.0, 3.0, 6.0, 10.0, 15.0, 21.0]
    assert [row["state"] for row in rows] == values[1:]
    assert list(changes(rows).values()) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    # A late reading older than all the others extends the series backwards: every sum moves.
    await publish(mosquitto, "mtr-1", [payload_v1(98.0, hour(-1))])
    await applied(entry, len(values) + 1)
    # A late reading inside the burst fixes its hours (the meter read 102 at 01:30).
    await publish(mosquitto, "mtr-1", [payload_v1(102.5, hour(1.5))])
    await applied(entry, len(values) + 2)
    await flush(hass, entry)
    rows = await hourly(hass, ENERGY_ID)
    assert [row["start"] for row in rows] == [hour(n) for n in range(-1, 6)]
    assert [row["sum"] for row in rows] == [2.0, 3.0, 5.0, 8.0, 12.0, 17.0, 23.0]
    assert list(changes(rows).values()) == [2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    # A duplicate changes nothing: no import at all.
    importer = importer_of(entry)
    imports = importer.imports
    await publish(mosquitto, "mtr-1", [payload_v1(106.0, hour(3))])
    await applied(entry, len(values) + 3)
    await flush(hass, entry)
    assert importer.imports == imports
    assert await hourly(hass, ENERGY_ID) == rows
    assert entry.runtime_data.diagnostics()["statistics"]["duplicates"] == 1
    # The sensor still shows the newest reading (the late ones never moved it).
    assert hass.states.get(ENERGY).state == "121.0"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_metadata_is_accepted(
    hass: HomeAssistant, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Named after the sensor, in its unit, with a sum; no usage report from the recorder."""
    entry = await _one_hour_measured(hass, mosquitto)
    await flush(hass, entry)
    _, meta = (await metadata_of(hass, ENERGY_ID))[ENERGY_ID]
    assert meta["name"] == hass.states.get(ENERGY).name
    assert meta["name"] == "Meter mtr-1 Energy (register 2)"
    assert meta["source"] == "energy_telemetry"
    assert meta["unit_of_measurement"] == "kWh"
    assert meta["has_sum"] is True
    assert meta["mean_type"] == 0
    if "unit_class" in meta:
        assert meta["unit_class"] == "energy"
    listed = await get_instance(hass).async_add_executor_job(list_statistic_ids, hass, {ENERGY_ID})
    assert listed[0]["statistics_unit_of_measurement"] == "kWh"
    assert "Detected that custom integration" not in caplog.text
    assert "doesn't specify" not in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_meter_reset_starts_a_new_segment(hass: HomeAssistant, mosquitto: Any) -> None:
    """No negative hour: the hour of a confirmed reset adds nothing, the new meter counts on."""
    entry = await setup_ainsite(hass, mosquitto)
    readings = [(0, 1000.0), (1, 1010.0), (2, 3.0), (3, 8.0), (4, 12.0)]
    await publish(mosquitto, "mtr-1", [payload_v1(value, hour(n)) for n, value in readings])
    await applied(entry, len(readings))
    await flush(hass, entry)
    rows = await hourly(hass, ENERGY_ID)
    assert list(changes(rows).values()) == [10.0, 0.0, 5.0, 4.0]
    assert [row["state"] for row in rows] == [1010.0, 3.0, 8.0, 12.0]
    assert hass.states.get(ENERGY).state == "12.0"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_daily_reading_is_split_across_24_hours(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    entry = await setup_ainsite(hass, mosquitto)
    await publish(mosquitto, "mtr-1", [payload_v1(500.0, hour(-30)), payload_v1(548.0, hour(-6))])
    await applied(entry, 2)
    await flush(hass, entry)
    rows = await hourly(hass, ENERGY_ID)
    assert [row["start"] for row in rows] == [hour(n) for n in range(-30, -6)]
    assert set(changes(rows).values()) == {2.0}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_restart_in_the_middle_continues_the_series(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """Unload (readings queue in the persistent session), reload: the sums continue, once."""
    entry = await setup_ainsite(hass, mosquitto)
    await publish(mosquitto, "mtr-1", [payload_v1(10.0 + n, hour(n)) for n in range(4)])
    await applied(entry, 4)
    await flush(hass, entry)
    assert [row["sum"] for row in await hourly(hass, ENERGY_ID)] == [1.0, 2.0, 3.0]

    # Hour 3 is measured, then the entry goes down: its last flush hands hour 3 to the recorder,
    # and the next start must read it back (not an older row) before continuing.
    await publish(mosquitto, "mtr-1", [payload_v1(13.5, hour(3.5)), payload_v1(14.0, hour(4))])
    await applied(entry, 6)
    gate = threading.Event()
    get_instance(hass).queue_task(_Hold(gate))  # the recorder is busy: hour 3 waits in its queue
    assert await hass.config_entries.async_unload(entry.entry_id)
    # While it is down, two more hours are measured and queue up in the broker.
    await publish(mosquitto, "mtr-1", [payload_v1(16.0, hour(5)), payload_v1(20.0, hour(6))])

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    gate.set()
    await applied(entry, 2)
    await flush(hass, entry)
    rows = await hourly(hass, ENERGY_ID)
    assert [row["start"] for row in rows] == [hour(n) for n in range(6)]
    assert [row["sum"] for row in rows] == [1.0, 2.0, 3.0, 4.0, 6.0, 10.0]
    assert [row["state"] for row in rows] == [11.0, 12.0, 13.0, 14.0, 16.0, 20.0]
    # A reading older than what the recorder already held cannot move imported hours.
    await publish(mosquitto, "mtr-1", [payload_v1(11.5, hour(1.5))])
    await applied(entry, 3)
    await flush(hass, entry)
    assert await hourly(hass, ENERGY_ID) == rows
    assert entry.runtime_data.diagnostics()["statistics"]["too_old"] == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def map_register_12_to_energy_per_interval(hass: HomeAssistant, entry: Any) -> None:
    """Set the mapping as the options flow does, then reload (as the flow does on every release)."""
    hass.config_entries.async_update_entry(
        entry, options={"registers": {"12": {"kind": "energy_interval", "unit": "kWh"}}}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


async def test_interval_register(hass: HomeAssistant, mosquitto: Any) -> None:
    """Energy per interval goes into the hours each interval covers, also across a restart."""
    entry = await setup_ainsite(hass, mosquitto)
    await map_register_12_to_energy_per_interval(hass, entry)
    await wait_for(lambda: entry.state is ConfigEntryState.LOADED and entry.runtime_data.connected)
    quarters = [payload_v2(12, 0.25 * (n + 1), hour(n / 4), hour((n + 1) / 4)) for n in range(6)]
    # One interval across an hour boundary: 1.0 kWh from 01:30 to 02:30.
    quarters.append(payload_v2(12, 1.0, hour(1.5), hour(2.5)))
    await publish(mosquitto, "mtr-1", quarters)
    await applied(entry, len(quarters))
    await flush(hass, entry)
    rows = await hourly(hass, INTERVAL_ID)
    assert [row["start"] for row in rows] == [hour(0), hour(1)]
    assert [row["sum"] for row in rows] == [2.5, 5.75]  # 0.25+0.5+0.75+1, then 1.25+1.5+0.5

    # The open hour survives a restart: its intervals are kept and not counted twice.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await publish(mosquitto, "mtr-1", [payload_v2(12, 2.0, hour(2.5), hour(3))])
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await applied(entry, 1)
    await flush(hass, entry)
    rows = await hourly(hass, INTERVAL_ID)
    assert [row["sum"] for row in rows] == [2.5, 5.75, 8.25]  # the other 0.5, then 2
    metadata = await metadata_of(hass, INTERVAL_ID)
    assert metadata[INTERVAL_ID][1]["name"] == "Meter mtr-1 Register 12"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_imports_are_batched_by_a_timer(hass: HomeAssistant, mosquitto: Any) -> None:
    """Readings only mark hours; one import per series carries them when the timer fires."""
    entry = await setup_ainsite(hass, mosquitto)
    await publish(mosquitto, "mtr-1", [payload_v1(float(n), hour(n)) for n in range(3)])
    await publish(mosquitto, "mtr-2", [payload_v1(float(n), hour(n)) for n in range(3)])
    await applied(entry, 6)
    importer = importer_of(entry)
    await wait_for(lambda: len(importer.feeds) == 2)
    await wait_for(lambda: all(feed.series.seeded for feed in importer.feeds.values()))
    assert importer.imports == 0
    async_fire_time_changed(
        hass, dt_util.utcnow() + timedelta(seconds=statistics_module.FLUSH_DELAY + 1)
    )
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    assert importer.imports == 2
    assert importer.rows == 4
    assert [row["sum"] for row in await hourly(hass, ENERGY_ID)] == [1.0, 2.0]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_novacore_energy_totals(hass: HomeAssistant, novacore: Novacore) -> None:
    """A Novacore energy total gets a statistic; power and other fields do not."""
    entry = await setup_novacore(hass, novacore)
    start = hour(0).timestamp() * 1000
    for quarter in range(9):
        await novacore.push(
            {
                "type": "meter",
                "W": 500,
                "total_import_Wh": 1000.0 + 250.0 * quarter,
                "timestamp": start + quarter * 900_000,
            }
        )
    importer = importer_of(entry)
    statistic = f"energy_telemetry:{SITE_ID.replace('-', '_')}_der_meter_energy_imported"
    await wait_for(lambda: statistic in importer.feeds)
    feed = importer.feeds[statistic]
    await wait_for(lambda: feed.series.seeded and len(feed.series) == 9)
    await flush(hass, entry)
    statistic = f"energy_telemetry:{SITE_ID.replace('-', '_')}_der_meter_energy_imported"
    assert feed.statistic_id == statistic
    rows = await hourly(hass, statistic)
    assert [row["sum"] for row in rows] == [1000.0, 2000.0]
    metadata = await metadata_of(hass, statistic)
    assert metadata[statistic][1]["unit_of_measurement"] == "Wh"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_import_is_logged_and_counted(
    hass: HomeAssistant, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await _one_hour_measured(hass, mosquitto)
    importer = importer_of(entry)
    feed = next(iter(importer.feeds.values()))
    feed.statistic_id = "energy_telemetry:Not Valid"
    with caplog.at_level(logging.DEBUG, logger="custom_components.energy_telemetry"):
        await flush(hass, entry)
    assert importer.failed == 1
    assert "refused" in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_which_totals_get_a_statistic() -> None:
    energy = {"kind": "energy_meter", "unit": "Wh"}
    assert statistic_kind(register_description("2", None)) == "meter"
    assert statistic_kind(register_description("7", energy)) == "meter"
    assert statistic_kind(register_description("7", {"kind": "energy_interval"})) == "interval"
    assert statistic_kind(register_description("7", {"kind": "volume"})) is None
    assert statistic_kind(register_description("7", {"kind": "power"})) is None
    assert statistic_kind(novacore_description("battery", "total_charge_Wh")) == "meter"
    assert statistic_kind(novacore_description("battery", "W")) is None
    assert statistic_kind(novacore_description("battery", "available_charge_Wh")) is None
    assert (
        statistic_kind(
            EnergyTelemetrySensorEntityDescription(
                key="x",
                device_class=SensorDeviceClass.ENERGY,
                state_class=SensorStateClass.MEASUREMENT,
            )
        )
        is None
    )


async def test_disabled_sensors_get_no_statistic(hass: HomeAssistant, novacore: Novacore) -> None:
    """Disabled by default (an unknown total) or by the user: no statistic until enabled."""
    entry = await setup_novacore(hass, novacore)
    await novacore.push(
        {"type": "meter", "total_import_Wh": 1.0, "total_other_Wh": 5.0, "timestamp": 1e12}
    )
    await wait_for(lambda: "der-meter" in entry.runtime_data.data)
    importer = importer_of(entry)
    assert sorted(feed.point.description.key for feed in importer.feeds.values()) == [
        "energy_imported",
        "home_energy",  # the site's consumption
    ]
    registry = er.async_get(hass)
    entity_id = registry.async_get_entity_id(
        "sensor", "energy_telemetry", f"{SITE_ID}_der-meter_energy_imported"
    )
    assert entity_id is not None
    registry.async_update_entity(entity_id, disabled_by=er.RegistryEntryDisabler.USER)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID, 1)
    await novacore.push({"type": "meter", "total_import_Wh": 2.0, "timestamp": 1.5e12})
    await wait_for(lambda: "der-meter" in entry.runtime_data.data)
    importer = importer_of(entry)
    assert [feed.point.description.key for feed in importer.feeds.values()] == ["home_energy"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_feeds_ignore_what_they_cannot_place(hass: HomeAssistant, mosquitto: Any) -> None:
    entry = await setup_ainsite(hass, mosquitto)
    await map_register_12_to_energy_per_interval(hass, entry)
    await wait_for(lambda: entry.state is ConfigEntryState.LOADED and entry.runtime_data.connected)
    await publish(
        mosquitto,
        "mtr-1",
        [payload_v1(1.0, hour(0)), payload_v2(12, 1.0, hour(0), hour(1))],
    )
    await applied(entry, 2)
    importer = importer_of(entry)
    meter, interval = (importer.feeds[ENERGY_ID], importer.feeds[INTERVAL_ID])
    await wait_for(lambda: meter.series.seeded and interval.series.seeded)
    meter(hour(1), None, None)  # not a number
    interval(hour(1), None, hour(0))
    interval(2.0, None, hour(0))  # no end
    interval(2.0, hour(2).timestamp() * 1000, None)  # no start
    assert importer.without_start == 1
    assert len(meter.series) == 1
    assert len(interval.series) == 1
    # A meter whose id only differs in punctuation would share the statistic: it gets none.
    await publish(mosquitto, "mtr_1", [payload_v1(5.0, hour(0))])
    await applied(entry, 3)
    assert "mtr_1" in entry.runtime_data.data
    assert len(importer.feeds) == 2
    # A statistic is named after its sensor; without one, after the device and the key.
    meter.point.entity = None
    assert importer._metadata(meter)["name"] == "Meter mtr-1 2"
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert hass.config_entries.async_get_entry(entry.entry_id) is not None
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()


async def test_readings_held_for_the_read_back_survive_an_early_unload(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """An unload while the recorder is too busy to read the last rows back waits for them, so
    the readings held meanwhile are imported rather than lost (the broker does not send them
    again: they were applied and acknowledged)."""
    gate = threading.Event()
    get_instance(hass).queue_task(_Hold(gate))  # the recorder is busy from the start
    entry = await setup_ainsite(hass, mosquitto)
    await publish(mosquitto, "mtr-1", [payload_v1(10.0 + n, hour(n)) for n in range(4)])
    await applied(entry, 4)
    importer = importer_of(entry)
    assert not any(feed.series.seeded for feed in importer.feeds.values())
    unload = hass.async_create_task(hass.config_entries.async_unload(entry.entry_id))
    # The unload waits for the read-back, however long it takes (up to its bound).
    done, _ = await asyncio.wait([unload], timeout=2)
    assert not done
    gate.set()
    assert await unload
    await async_wait_recording_done(hass)
    assert [row["sum"] for row in await hourly(hass, ENERGY_ID)] == [1.0, 2.0, 3.0]


async def test_pending_rows_are_imported_when_home_assistant_stops(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    entry = await setup_ainsite(hass, mosquitto)
    await publish(mosquitto, "mtr-1", [payload_v1(float(n), hour(n)) for n in range(3)])
    await applied(entry, 3)
    importer = importer_of(entry)
    await wait_for(lambda: all(feed.series.seeded for feed in importer.feeds.values()))
    assert importer.imports == 0
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert importer.imports == 1
    await async_wait_recording_done(hass)
    assert [row["sum"] for row in await hourly(hass, ENERGY_ID)] == [1.0, 2.0]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_database_error_while_reading_back_is_retried(
    hass: HomeAssistant, mosquitto: Any
) -> None:
    """Nothing is imported before the last rows are known: the series waits and asks again."""
    instance = get_instance(hass)

    def rename(old: str, new: str) -> None:
        with instance.engine.connect() as connection:
            connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
            connection.commit()

    entry = await setup_ainsite(hass, mosquitto)
    await instance.async_add_executor_job(rename, "statistics_meta", "statistics_meta_gone")
    try:
        await publish(mosquitto, "mtr-1", [payload_v1(float(n), hour(n)) for n in range(3)])
        await applied(entry, 3)
        importer = importer_of(entry)
        await wait_for(lambda: importer.read_errors == 1)
        assert not any(feed.series.seeded for feed in importer.feeds.values())
    finally:
        await instance.async_add_executor_job(rename, "statistics_meta_gone", "statistics_meta")
    async_fire_time_changed(
        hass, dt_util.utcnow() + timedelta(seconds=statistics_module.RETRY_DELAY + 1)
    )
    await flush(hass, entry)
    assert [row["sum"] for row in await hourly(hass, ENERGY_ID)] == [1.0, 2.0]
    assert await hass.config_entries.async_unload(entry.entry_id)
