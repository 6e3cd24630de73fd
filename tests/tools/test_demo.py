"""The demo end to end: a real Home Assistant in a subprocess, fed by both simulators."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
import itertools
import json
import os
from pathlib import Path
import signal
import sys
import time
from typing import Any

import aiohttp
from homeassistant.util import slugify
import pytest

from simulator.demo import BACKFILL_HOURS, TOTALS
from simulator.homeassistant import HassWebSocket
from simulator.processes import free_port, port_is_free
from tests.helpers.repository import REPO_ROOT, environment_without_coverage

SAMPLES = 8
SAMPLE_INTERVAL = 2.0  # real seconds: 24 simulated minutes at x720
# Hang guards: a busy machine starts Home Assistant slowly (the demo allows it 300 s).
READY_TIMEOUT = 330
STATISTICS_TIMEOUT = 120  # a hang guard: the demo waits for them before it is ready
HOUR = timedelta(hours=1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _assert_cleaned_up(info: dict[str, Any], ports: dict[str, int], state_file: Path) -> None:
    deadline = time.monotonic() + 30  # a hang guard
    for pid in (info["ha_pid"], info["mosquitto_pid"], info["pid"]):
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), pid
    for port in ports.values():
        assert port_is_free(port), port
    assert not Path(info["config_dir"]).exists()
    assert not state_file.exists()


async def _get(session: aiohttp.ClientSession, info: dict[str, Any], path: str) -> Any:
    async with session.get(
        f"{info['url']}{path}", headers={"Authorization": f"Bearer {info['token']}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _states(session: aiohttp.ClientSession, info: dict[str, Any]) -> dict[str, Any]:
    return {state["entity_id"]: state for state in await _get(session, info, "/api/states")}


def _value(states: dict[str, Any], entity_id: str) -> float:
    state = states[entity_id]["state"]
    assert state not in ("unknown", "unavailable"), (entity_id, state)
    return float(state)


async def _read_ready_line(process: asyncio.subprocess.Process, log: Path) -> dict[str, Any]:
    assert process.stdout is not None
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while True:
                line = await process.stdout.readline()
                if not line:
                    pytest.fail(f"the demo exited before it was ready:\n{_text(log)}")
                with contextlib.suppress(ValueError):
                    info = json.loads(line)
                    if isinstance(info, dict) and info.get("ready"):
                        return info
    except TimeoutError:
        pytest.fail(f"the demo was not ready within {READY_TIMEOUT} s:\n{_text(log)}")


async def _check_running_demo(info: dict[str, Any]) -> None:
    entities: dict[str, Any] = info["entities"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with HassWebSocket.connect(session, info["url"], info["token"]) as ws:
            registry = await ws.call("config/entity_registry/list")
            devices = await ws.call("config/device_registry/list")
            prefs = await ws.call("energy/get_prefs")

        # The integration's devices: the DERs of the Novacore site and the Ainsite meters.
        mine = {
            entry["entity_id"]: entry
            for entry in registry
            if entry["platform"] == "energy_telemetry"
        }
        identifiers = {
            identifier
            for device in devices
            for domain, identifier in device["identifiers"]
            if domain == "energy_telemetry"
        }
        for part in ("der-demo-pv", "der-demo-bat", "der-demo-mtr", "mtr-1001", "mtr-1002"):
            assert any(part in identifier for identifier in identifiers), (part, identifiers)
        named = [
            value
            for value in entities.values()
            for value in (value if isinstance(value, list) else [value])
        ]
        assert len(entities["ainsite_meters"]) == 2
        for entity_id in named:
            assert entity_id in mine, entity_id

        # The energy dashboard: energy from the integration's external statistics, one per
        # total (`energy_telemetry:<slugified unique id>`), so every reading counts in the
        # hour it was measured; power and state of charge from the sensors, where the running
        # release takes them.
        def statistic(entity_id: str) -> str:
            return f"energy_telemetry:{slugify(mine[entity_id]['unique_id'])}"

        stats = {name: statistic(entities[name]) for name in (*TOTALS, "ev_charged")}
        meters = [statistic(entity_id) for entity_id in entities["ainsite_meters"]]
        # Added through each entry's options flow (Configure -> Energy dashboard -> Submit),
        # its preset as it comes: the Ainsite entry's two meters as individual devices.
        added = info["energy_dashboard"]
        assert set(added) == {"novacore", "ainsite"}, added
        assert {role: len(names) for role, names in added["novacore"].items()} == {
            "grid": 1,
            "solar": 1,
            "battery": 1,
            "device": 1,
        }, added
        assert list(added["ainsite"]) == ["device"], added
        assert len(added["ainsite"]["device"]) == len(meters), added
        _check_energy_prefs(prefs, entities, stats, meters)
        allowed = set(mine) | set(stats.values()) | set(meters)
        for part in (*prefs["energy_sources"], *prefs["device_consumption"]):
            for key, value in part.items():
                if key.startswith("stat_") and isinstance(value, str):
                    assert value in allowed, (key, value)
        async with HassWebSocket.connect(session, info["url"], info["token"]) as ws:
            validation = await ws.call("energy/validate")
            for part in validation.values():
                for issues in part:
                    for issue in issues:
                        # A sensor's own statistics (power) appear at the recorder's first
                        # 5-minute compile; the integration's statistics must be fine now.
                        assert issue["type"] == "statistics_not_defined", validation
                        for affected, _ in issue["affected_entities"]:
                            assert affected in mine, validation
            # The past day both sources sent at start-up (a burst of readings with past
            # timestamps) is in the statistics, each hour of it.
            await _check_backfilled_hours(ws, info, [*stats.values(), *meters], meters)

        # Live values over a few simulated hours.
        samples: list[dict[str, Any]] = []
        for index in range(SAMPLES):
            if index:
                await asyncio.sleep(SAMPLE_INTERVAL)
            samples.append(await _states(session, info))

    power = [entities[name] for name in ("pv_power", "battery_power", "grid_power")]
    totals = [entities[name] for name in TOTALS] + list(entities["ainsite_meters"])
    for states in samples:
        for entity_id in power + totals:
            _value(states, entity_id)
        # Home Assistant's signs: solar is positive while producing.
        assert _value(states, entities["pv_power"]) >= 0
        energy = states[entities["grid_imported"]]["attributes"]
        assert energy["device_class"] == "energy"
        assert energy["state_class"] == "total_increasing"

    # Values move: the grid's at any hour; the battery's unless it sits empty or full (which
    # depends on the simulated hour the demo starts at), and then it is idle.
    grid = entities["grid_power"]
    assert len({states[grid]["state"] for states in samples}) > 1, grid
    soc = {_value(states, entities["battery_soc"]) for states in samples}
    if len(soc) == 1:
        assert soc.pop() in (10.0, 100.0), "the battery's charge stands still mid-way"
        assert {_value(states, entities["battery_power"]) for states in samples} == {0.0}
    # Totals never go backwards, and energy flows.
    for entity_id in totals:
        series = [_value(states, entity_id) for states in samples]
        assert series == sorted(series), (entity_id, series)
    for entity_id in entities["ainsite_meters"]:
        assert _value(samples[-1], entity_id) > _value(samples[0], entity_id), entity_id
    # The site's meter imports or exports, depending on the simulated hour: one of them grows.
    through_meter = [
        _value(states, entities["grid_imported"]) + _value(states, entities["grid_exported"])
        for states in samples
    ]
    assert through_meter[-1] > through_meter[0], through_meter

    # The battery: charging (negative power in Home Assistant) fills it, discharging empties it.
    checked = 0
    for before, after in itertools.pairwise(samples):
        charged = _value(after, entities["battery_charged"]) - _value(
            before, entities["battery_charged"]
        )
        discharged = _value(after, entities["battery_discharged"]) - _value(
            before, entities["battery_discharged"]
        )
        soc_change = _value(after, entities["battery_soc"]) - _value(
            before, entities["battery_soc"]
        )
        battery_power = _value(after, entities["battery_power"])
        if charged > 0.01 and discharged == 0:
            assert soc_change >= 0, (charged, soc_change)
            checked += 1
        elif discharged > 0.01 and charged == 0:
            assert soc_change <= 0, (discharged, soc_change)
            checked += 1
        if abs(soc_change) > 0.5 and abs(battery_power) > 100:
            # Power is instantaneous; SoC moved over the whole interval: mostly the same way.
            same_reading = abs(
                _seconds(after[entities["battery_power"]])
                - _seconds(after[entities["battery_soc"]])
            )
            if same_reading < 0.5 and charged * discharged == 0:
                assert (battery_power < 0) == (soc_change > 0), (battery_power, soc_change)
    if not checked:  # idle all along: only as an empty or full battery may be
        assert {_value(states, entities["battery_soc"]) for states in samples} <= {10.0, 100.0}
        assert {_value(states, entities["battery_power"]) for states in samples} == {0.0}


def _schema_keys(schema: Any) -> set[str]:
    """Return the keys a voluptuous or probatio schema (possibly inside an All) accepts."""
    inner = getattr(schema, "schema", None)
    if isinstance(inner, dict):
        return {str(key) for key in inner}
    keys: set[str] = set()
    for validator in getattr(schema, "validators", ()):
        keys |= _schema_keys(validator)
    return keys


def energy_schema_keys(name: str) -> set[str]:
    """Return the keys the installed release's energy preferences accept in a part."""
    from homeassistant.components.energy import data

    return _schema_keys(getattr(data, name, None))


def _power_of(part: dict[str, Any]) -> str | None:
    """Return a part's power sensor, in either form (Home Assistant resolves power_config)."""
    return part.get("stat_rate") or part.get("power_config", {}).get("stat_rate")


def _check_energy_prefs(
    prefs: dict[str, Any], entities: dict[str, Any], stats: dict[str, str], meters: list[str]
) -> None:
    """The dashboard's sources: energy from the statistics, power and SoC where taken."""
    grids = [source for source in prefs["energy_sources"] if source["type"] == "grid"]
    if "flow_from" in grids[0]:  # Home Assistant before the unified grid source
        assert len(grids) == 1
        imports = [flow["stat_energy_from"] for flow in grids[0]["flow_from"]]
        exports = [flow["stat_energy_to"] for flow in grids[0]["flow_to"]]
    else:
        imports = [grid["stat_energy_from"] for grid in grids]
        exports = [grid["stat_energy_to"] for grid in grids if grid["stat_energy_to"]]
    # The site's meter is the grid connection.
    assert imports == [stats["grid_imported"]]
    assert exports == [stats["grid_exported"]]
    sources = {s["type"]: s for s in prefs["energy_sources"] if s["type"] != "grid"}
    assert set(sources) == {"solar", "battery"}, prefs
    solar, battery = sources["solar"], sources["battery"]
    assert solar["stat_energy_from"] == stats["pv_energy"]
    assert battery["stat_energy_from"] == stats["battery_discharged"]
    assert battery["stat_energy_to"] == stats["battery_charged"]
    # The EV charger's charging, then each Ainsite meter: individual devices.
    devices = prefs["device_consumption"]
    assert [device["stat_consumption"] for device in devices] == [stats["ev_charged"], *meters]

    battery_keys = energy_schema_keys("BATTERY_SOURCE_SCHEMA")
    if "stat_soc" in battery_keys:
        assert battery["stat_soc"] == entities["battery_soc"]
    else:
        assert "stat_soc" not in battery
    if "capacity" in battery_keys:
        assert battery["capacity"] > 0, battery
    if "stat_rate" in energy_schema_keys("SOLAR_SOURCE_SCHEMA"):
        assert solar["stat_rate"] == entities["pv_power"]
    else:
        assert "stat_rate" not in solar
    # Standard power sensors (the integration's signs are the dashboard's).
    if "stat_rate" in battery_keys:
        assert _power_of(battery) == entities["battery_power"]
    else:
        assert _power_of(battery) is None
    (grid,) = grids
    grid_keys = energy_schema_keys("GRID_SOURCE_SCHEMA")
    if "flow_from" not in grid and "stat_rate" in grid_keys:
        assert _power_of(grid) == entities["grid_power"]
    elif "flow_from" in grid and "power" in grid_keys:
        (option,) = grid["power"]
        assert _power_of(option) == entities["grid_power"]
    else:
        assert "power" not in grid
        assert _power_of(grid) is None
    ev, *others = devices
    if "stat_rate" in energy_schema_keys("DEVICE_CONSUMPTION_SCHEMA"):
        assert ev["stat_rate"] == entities["ev_power"]
    else:
        assert "stat_rate" not in ev
    assert all("stat_rate" not in other for other in others)


async def _check_backfilled_hours(
    ws: HassWebSocket, info: dict[str, Any], ids: list[str], meters: list[str]
) -> None:
    """Each backfilled hour is a statistics row; sums and meter readings agree."""
    first = datetime.fromisoformat(info["backfill_start"])
    end = datetime.fromisoformat(info["backfill_end"])
    assert end - first == timedelta(hours=BACKFILL_HOURS)
    first_hour = first.replace(minute=0, second=0, microsecond=0)
    end_hour = end.replace(minute=0, second=0, microsecond=0)
    expected = [
        (first_hour + HOUR * index).timestamp() for index in range((end_hour - first_hour) // HOUR)
    ]
    assert len(expected) == BACKFILL_HOURS

    def hours(rows: dict[str, Any], statistic_id: str) -> list[dict[str, Any]]:
        return [row for row in rows.get(statistic_id, []) if row["start"] / 1000 < end.timestamp()]

    deadline = time.monotonic() + STATISTICS_TIMEOUT  # a hang guard
    while True:
        rows = await ws.call(
            "recorder/statistics_during_period",
            start_time=first_hour.isoformat(),
            end_time=end_hour.isoformat(),
            statistic_ids=ids,
            period="hour",
            types=["sum", "state"],
        )
        if all(len(hours(rows, item)) >= len(expected) for item in ids):
            break
        assert time.monotonic() < deadline, {item: len(hours(rows, item)) for item in ids}
        await asyncio.sleep(1)
    for statistic_id in ids:
        series = hours(rows, statistic_id)
        assert [row["start"] / 1000 for row in series] == expected, statistic_id
        for before, after in itertools.pairwise(series):
            energy = after["sum"] - before["sum"]
            assert energy >= 0, (statistic_id, before, after)
            # No reset in the demo: an hour's energy is what the meter reading moved.
            assert energy == pytest.approx(after["state"] - before["state"], abs=1e-6)
            if statistic_id in meters:  # the Ainsite meters always draw power
                assert energy > 0, (statistic_id, after)


def _seconds(state: dict[str, Any]) -> float:
    return datetime.fromisoformat(state["last_updated"]).timestamp()


@pytest.mark.timeout(600)
async def test_demo_end_to_end(socket_enabled: None, tmp_path: Path) -> None:
    """Start the demo headless, check its Home Assistant over the API, stop it cleanly."""
    ports = {"--port": free_port(), "--novacore-port": free_port(), "--mqtt-port": free_port()}
    log = tmp_path / "demo.log"
    args = [
        "-m",
        "simulator.demo",
        "--headless",
        "--speed",
        "720",
        "--state-file",
        str(tmp_path / "state.json"),
        *(item for option, port in ports.items() for item in (option, str(port))),
    ]
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=environment_without_coverage(),
        )
    info: dict[str, Any] | None = None
    try:
        info = await _read_ready_line(process, log)
        assert info["ha_port"] == ports["--port"]
        assert info["novacore_port"] == ports["--novacore-port"]
        assert info["mqtt_port"] == ports["--mqtt-port"]
        assert json.loads((tmp_path / "state.json").read_text())["token"] == info["token"]
        await _check_running_demo(info)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(90):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                pytest.fail(f"the demo did not stop on SIGINT:\n{_text(log)}")
    assert process.returncode == 0, log.read_text()

    # Nothing it started is left.
    assert info is not None
    _assert_cleaned_up(info, ports, tmp_path / "state.json")
