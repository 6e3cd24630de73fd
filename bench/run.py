# ruff: noqa: D102, D103, D107, T201, S603, PLC0415
"""What a reading costs: the integration against Home Assistant's own MQTT sensors and a floor.

Each scenario runs in its own real Home Assistant process (one per repeat), fed through one
mosquitto (plain listener, password) or the Novacore simulator in this process:

- ainsite:  the integration reads Ainsite payloads (v1 register 2, v2 others) for M meters x R
            registers from its own MQTT session;
- baseline: the same payloads read by the built-in `mqtt` integration, one YAML `mqtt: sensor:`
            per (meter, register) with a value template picking its register out of the JSON;
- novacore: the integration reads full PV / battery / meter readings over SSE;
- floor:    a trivial integration (bench/floor_component) writing as many states from a loop
            inside Home Assistant: the state machine's own cost;
- stats_on / stats_off: the integration with the recorder, S meters (1,000) each reporting its
            energy total every 15 minutes of simulated time, fed fast, with the hourly
            statistics on and off (bench_no_statistics): what the statistics cost per reading.
- scale / scale_floor: one Ainsite entry with N meters (1,000) x 10 registers, N x 11 entities,
            fed by a publisher in its own process (bench/scale_publisher.py), against a floor
            (bench_scale_floor) reading the same messages into the same entities with nothing
            else: the first value of every entity, a second round, memory per entity, and the
            set-up with them all in the registry (a reload), each timed inside Home Assistant
            by a probe (bench_probe) instead of a stream of its state changes.

Every reading of the other scenarios carries a unique increasing number (its sequence number
+ 10,000,000) in one value, so each `state_changed` seen on the websocket is matched to the moment
the reading was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import gc
import json
import math
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cli import SCENARIOS, build_parser  # noqa: E402
from bench.ha import (  # noqa: E402
    bench_process,
    copy_template,
    cpu_seconds,
    make_template,
    memory_kib,
    reset_peak,
    thread_cpu_seconds,
)
from bench.scale import ProbeEvents, PublisherProcess, PySpy, py_spy_command  # noqa: E402
from custom_components.energy_telemetry.protocol.ainsite.topics import (  # noqa: E402
    subscription_filter,
)
from simulator.ainsite_publisher import MqttPublisher, format_timestamp  # noqa: E402
from simulator.broker import Mosquitto  # noqa: E402
from simulator.flows import ainsite_answers, novacore_answers  # noqa: E402
from simulator.homeassistant import HomeAssistantProcess  # noqa: E402
from simulator.wait import WaitTimeoutError, poll, wait_for  # noqa: E402

SEQ_BASE = 10_000_000
STATS_SCENARIOS = ("stats_on", "stats_off")
SCALE_SCENARIOS = ("scale", "scale_floor")
STATS_INTERVAL = timedelta(minutes=15)
STATS_FLUSH_WAIT = 6.0
"""Seconds for the integration's statistics flush (5 s after the first changed hour) to run."""
REGISTERS = ("2", "7", "12", "13", "14", "15", "16", "17", "18", "19")
SUBSCRIPTION = "sub-1"
MQTT_USER = "bench"
MQTT_PASSWORD = "bench-mqtt-password"  # noqa: S105
SITE_ID = "sit-bench"
MQTT_RAMP = (250, 500, 1000, 2000, 4000)
NOVACORE_RAMP = (50, 100, 200, 400)
NOVACORE_FIELDS_PER_METER = 14
VERBOSE = bool(os.environ.get("BENCH_VERBOSE"))


@dataclass
class Settings:
    """What one run measures."""

    n: int = 3000
    """Readings in the CPU phase (the Novacore scenario's: novacore_n)."""
    repeat: int = 3
    """Home Assistant processes per scenario; the table shows medians."""
    meters: int = 100
    registers: int = 10
    """Meters x registers: the MQTT scenarios' entities and one cycle of readings."""
    entities: int = 1000
    """Entities of the floor and (about) of the Novacore site."""
    rate: float = 500.0
    novacore_rate: float = 100.0
    """Readings per second in the CPU phase."""
    ramp_seconds: float = 1.5
    idle_seconds: float = 2.0
    settle_seconds: float = 1.0
    """Seconds of each ramp step; of the idle CPU measurement; to settle before memory."""
    wait_for_saves: bool = True
    """Let the registries' delayed save pass before measuring (it pauses Home Assistant)."""
    mqtt_ramp: tuple[int, ...] = MQTT_RAMP
    novacore_ramp: tuple[int, ...] = NOVACORE_RAMP
    scenarios: tuple[str, ...] = SCENARIOS
    stats_meters: int = 1000
    stats_cycles: int = 8
    """Readings per meter in the statistics CPU phase (8: two simulated hours)."""
    stats_rate: float = 1000.0
    stats_warmup: bool = True
    scale_meters: int = 1000
    """Meters of the scale scenarios (each with all REGISTERS: N x 11 entities)."""
    scale_recorder: bool = False
    """Run the scale scenarios with the recorder (the other scenarios but stats_* run without)."""
    profile: tuple[str, ...] = ()
    """Scale scenarios sampled with py-spy, phase by phase, into profile_dir."""
    profile_dir: Path | None = None

    @property
    def novacore_n(self) -> int:
        return max(30, self.n // 5)


# --- matching state changes to readings --------------------------------------------------------


class Tracker:
    """Send times of readings and the moments their state changes were seen."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self.writes = 0
        self.max_seen = -1

    def on_event(self, event: dict[str, Any], now: float) -> None:
        data = event["data"]
        if not data["entity_id"].startswith("sensor."):
            return
        new_state = data.get("new_state")
        if new_state is None:
            return
        state = new_state["state"]
        if state in ("unavailable", "unknown"):
            return
        self.writes += 1
        try:
            value = abs(float(state))
        except ValueError:
            return
        if SEQ_BASE <= value < 2 * SEQ_BASE:
            seq = round(value) - SEQ_BASE
            if seq not in self.seen:
                self.seen[seq] = now
                self.max_seen = max(seq, self.max_seen)

    async def wait_seen(self, first: int, count: int, timeout: float, what: str) -> None:
        """Wait until readings first..first+count-1 were all seen; raise saying which were not."""
        pending = set(range(first, first + count))

        def all_seen() -> bool:
            pending.difference_update(self.seen.keys())
            return not pending

        await wait_for(
            all_seen,
            timeout=timeout,
            what=lambda: f"{what}: {len(pending)} of {count} readings, e.g. {sorted(pending)[:5]}",
            interval=0.01,
        )

    async def count_seen(self, first: int, count: int, timeout: float) -> bool:
        """As wait_seen, for a measurement: whether all came; those that did not count as lost."""
        try:
            await self.wait_seen(first, count, timeout, "measured")
        except WaitTimeoutError:
            return False
        return True


async def paced(count: int, rate: float, emit: Callable[[int], Awaitable[None] | None]) -> float:
    """Call emit(i) for i < count at `rate` per second; return the start time."""
    start = time.monotonic()
    index = 0
    while index < count:
        due = min(count, int((time.monotonic() - start) * rate) + 1)
        while index < due:
            result = emit(index)
            if result is not None:
                await result
            index += 1
        await asyncio.sleep(0.002)
    return start


# --- scenarios ---------------------------------------------------------------------------------


class Scenario:
    """One source feeding one Home Assistant process."""

    name = ""
    ramp: tuple[int, ...] = ()

    def __init__(self, settings: Settings, env: Environment, tag: str) -> None:
        self.settings = settings
        self.env = env
        self.tag = tag
        self.ha: HomeAssistantProcess
        self.tracker = Tracker()
        self.next_seq = 0

    def cpu_phase(self) -> tuple[float, int]:
        """Readings per second, and how many, in the CPU phase."""
        return self.settings.rate, self.settings.n

    def take(self, count: int) -> int:
        """Reserve the next `count` sequence numbers; return the first."""
        first = self.next_seq
        self.next_seq += count
        return first

    def extra_yaml(self) -> str:
        return ""

    def prepare(self, config_dir: Path) -> None:
        """Write files the configuration needs before Home Assistant starts."""

    async def start(self) -> None:
        """Start Home Assistant; have every state change reach the tracker."""
        await self.ha.start()
        ws = await self.ha.websocket()
        ws.on_event = self.tracker.on_event
        await ws.call("subscribe_events", event_type="state_changed")

    async def setup(self) -> None:
        """Create the config entries."""

    async def create_entities(self) -> None:
        """Make the scenario's entities exist (with a value)."""
        raise NotImplementedError

    async def drive(self, first: int, count: int, rate: float) -> None:
        """Send readings first..first+count-1 at rate per second, recording send times."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the scenario holds in this process."""


class MqttScenario(Scenario):
    """Ainsite payloads published to the shared broker."""

    ramp = MQTT_RAMP

    def __init__(self, settings: Settings, env: Environment, tag: str) -> None:
        super().__init__(settings, env, tag)
        self.customer = f"cust-{tag}"
        self.base_time = datetime.now(UTC) - timedelta(days=3)
        self.per_cycle = settings.meters * settings.registers

    def topic(self, meter: int) -> str:
        return f"meters/outbound/{self.customer}/{SUBSCRIPTION}/mtr-{meter}"

    def message(self, seq: int) -> tuple[str, bytes]:
        registers = self.settings.registers
        cycle, within = divmod(seq, self.per_cycle)
        meter, index = divmod(within, registers)
        register = REGISTERS[index]
        end = self.base_time + timedelta(minutes=cycle + 1)
        value = SEQ_BASE + seq
        if register == "2":
            body: dict[str, Any] = {
                "smarteo_payload_schema_version": 1,
                "data_timestamp_utc": format_timestamp(end),
                "system_timestamp_utc": format_timestamp(end + timedelta(seconds=1)),
                "register_id": 2,
                "meter_reading": float(value),
            }
        else:
            body = {
                "smarteo_payload_schema_version": 2,
                "measurement_start_timestamp_utc": format_timestamp(end - timedelta(minutes=1)),
                "measurement_end_timestamp_utc": format_timestamp(end),
                "register_id": int(register),
                "value": float(value),
            }
        return self.topic(meter), json.dumps(body).encode()

    async def drive(self, first: int, count: int, rate: float) -> None:
        messages = [self.message(first + index) for index in range(count)]
        sent = self.tracker.sent
        put = self.env.publisher.put

        def emit(index: int) -> None:
            sent[first + index] = time.monotonic()
            put((messages[index],))

        if rate <= 0:
            for index in range(count):
                emit(index)
            return
        await paced(count, rate, emit)

    async def create_entities(self) -> None:
        first = self.take(self.per_cycle)
        await self.drive(first, self.per_cycle, 2000)
        await self.tracker.wait_seen(first, self.per_cycle, 60, f"{self.name} warm-up")

    async def add_ainsite(self) -> dict[str, Any]:
        """Add the integration's subscription; once its persistent session subscribed, return.

        The answer is the flow's result, with the entry.

        The config flow's own check subscribes too, as a clean session that is gone at once:
        readings sent before the entry's session subscribed would be lost.
        """
        since = self.env.broker.log_size()
        answers = ainsite_answers(
            self.env.broker.plain_port,
            MQTT_USER,
            MQTT_PASSWORD,
            self.customer,
            SUBSCRIPTION,
            tls=False,
        )
        entry = await self.ha.config_flow("energy_telemetry", *answers)
        topic_filter = subscription_filter(self.customer, SUBSCRIPTION)
        await self.env.broker.await_subscribed(topic_filter, persistent=True, since=since)
        return entry


class AinsiteScenario(MqttScenario):
    """The integration's own MQTT session."""

    name = "ainsite"

    async def setup(self) -> None:
        await self.add_ainsite()


class BaselineScenario(MqttScenario):
    """Home Assistant's MQTT integration with hand-written YAML sensors."""

    name = "baseline"

    def extra_yaml(self) -> str:
        return "mqtt: !include bench_mqtt.yaml\n"

    def prepare(self, config_dir: Path) -> None:
        (config_dir / "bench_mqtt.yaml").write_text("sensor: []\n")

    async def setup(self) -> None:
        broker = self.env.broker
        await self.ha.config_flow(
            "mqtt",
            {
                "broker": "127.0.0.1",
                "port": broker.plain_port,
                "username": MQTT_USER,
                "password": MQTT_PASSWORD,
            },
            sections={"other_settings": {"set_client_cert": False, "set_ca_cert": "off"}},
        )

    def sensors_yaml(self) -> str:
        lines = ["sensor:"]
        for meter in range(self.settings.meters):
            for register in REGISTERS[: self.settings.registers]:
                key = "meter_reading" if register == "2" else "value"
                lines += [
                    f'  - name: "Meter {meter} register {register}"',
                    f"    unique_id: bench_{self.customer}_{meter}_{register}",
                    f'    state_topic: "{self.topic(meter)}"',
                    "    value_template: >-",
                    (
                        f"      {{% if value_json.register_id == {register} %}}"
                        f"{{{{ value_json.{key} }}}}"
                        "{% elif this.state in ('unknown', 'unavailable') %}None"
                        "{% else %}{{ this.state }}{% endif %}"
                    ),
                ]
                if register == "2":
                    lines += [
                        "    device_class: energy",
                        "    state_class: total_increasing",
                        "    unit_of_measurement: kWh",
                    ]
                else:
                    lines.append("    state_class: measurement")
        return "\n".join(lines) + "\n"

    async def create_entities(self) -> None:
        (self.ha.config_dir / "bench_mqtt.yaml").write_text(self.sensors_yaml())
        since = self.env.broker.log_size()
        before = await self.ha.sensor_count()
        await self.ha.call_service("mqtt", "reload", {})
        await _wait_sensors(self.ha, before + self.per_cycle, "baseline: the YAML sensors")
        # The MQTT client batches its subscriptions: readings go once the broker has them all.
        for meter in range(self.settings.meters):
            await self.env.broker.await_subscribed(self.topic(meter), since=since)
        await super().create_entities()


class NovacoreScenario(Scenario):
    """The integration reading a site's SSE stream from the simulator in this process."""

    name = "novacore"
    ramp = NOVACORE_RAMP

    def __init__(self, settings: Settings, env: Environment, tag: str) -> None:
        super().__init__(settings, env, tag)
        from simulator.model import SiteModel
        from simulator.novacore_server import NovacoreServer

        self.server = NovacoreServer(keepalive_interval=15)
        self.model = SiteModel(SITE_ID, "Bench Home", speed=1.0, seed=7)
        self.base_ms = int(time.time() * 1000) - 86_400_000

    def cpu_phase(self) -> tuple[float, int]:
        return self.settings.novacore_rate, self.settings.novacore_n

    async def setup(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        await self.server.start()
        key = Ed25519PrivateKey.generate()
        identity = self.server.add_identity(
            base64.b64encode(key.public_key().public_bytes_raw()).decode()
        )
        self.server.add_site(SITE_ID, "Bench Home", self.model.devices())
        token = self.server.issue_token(identity)
        answers = novacore_answers(self.server.url, SITE_ID, {"token": token})
        await self.ha.config_flow("energy_telemetry", *answers)
        await self.server.wait_for_streams(SITE_ID, 1, 60)

    def frames(self, first: int, count: int) -> list[str]:
        frames: list[str] = []
        readings: list[dict[str, Any]] = []
        for index in range(count):
            seq = first + index
            kind = seq % 3
            if kind == 0 or not readings:
                readings = self.model.step(2.0)
            reading = dict(readings[kind])
            value = float(SEQ_BASE + seq)
            reading["W"] = -value if reading["type"] == "pv" else value
            reading["timestamp"] = self.base_ms + seq
            frames.append(json.dumps(reading, separators=(",", ":")))
        return frames

    async def drive(self, first: int, count: int, rate: float) -> None:
        frames = self.frames(first, count)
        sent = self.tracker.sent
        push = self.server.push

        async def emit(index: int) -> None:
            sent[first + index] = time.monotonic()
            await push(SITE_ID, frames[index])

        await paced(count, rate, emit)

    async def create_entities(self) -> None:
        """The site's three DERs, and extra meters up to the entity count, each one numbered.

        A DER's entities come with its first reading, all at once: once every DER's numbered
        power was seen, every entity exists.
        """
        first = self.next_seq
        frames = self.frames(first, 3)
        extra = max(0, math.ceil((self.settings.entities - 35) / NOVACORE_FIELDS_PER_METER))
        meter = json.loads(frames[2])
        for number in range(extra):
            reading = dict(meter)
            reading["der_id"] = f"der-bench-x{number}"
            reading["W"] = float(SEQ_BASE + first + 3 + number)
            frames.append(json.dumps(reading))
        for index, frame in enumerate(frames):
            self.tracker.sent[first + index] = time.monotonic()
            await self.server.push(SITE_ID, frame)
        self.next_seq += len(frames)
        await self.tracker.wait_seen(first, len(frames), 60, "novacore warm-up")

    async def close(self) -> None:
        await self.server.stop()


class ScaleScenario(MqttScenario):
    """N meters x 10 registers through one Ainsite entry, from a publisher in its own process.

    Nothing streams state changes to the bench: the probe (bench_probe) counts the entry's
    entities inside Home Assistant and says when the last one got there.
    """

    name = "scale"

    def __init__(self, settings: Settings, env: Environment, tag: str) -> None:
        super().__init__(settings, env, tag)
        self.meters = settings.scale_meters
        self.entities = self.meters * (len(REGISTERS) + 1)
        """Per meter: a sensor per register and its last reading."""
        self.entry_id = ""
        self.probe = ProbeEvents()
        self.publisher: PublisherProcess | None = None
        self.profiles: list[Path] = []

    def extra_yaml(self) -> str:
        return "bench_probe:\n" + ("recorder:\n" if self.settings.scale_recorder else "")

    async def start(self) -> None:
        await self.ha.start()
        ws = await self.ha.websocket()
        ws.on_event = self.probe.on_event

    async def setup(self) -> None:
        entry = await self.add_ainsite()
        self.entry_id = entry["result"]["entry_id"]

    async def start_publisher(self) -> None:
        broker = self.env.broker
        self.publisher = PublisherProcess(
            port=broker.plain_port,
            username=broker.admin_username,
            password=broker.admin_password,
            customer=self.customer,
            subscription=SUBSCRIPTION,
            meters=self.meters,
            registers=REGISTERS,
            log_path=self.env.workdir / f"{self.tag}-publisher.log",
        )
        await self.publisher.start()

    async def watch(self, name: str, mode: str) -> None:
        """Have the probe count this entry's entities (see bench_probe for the modes)."""
        await self.ha.call(
            "bench_probe/watch",
            name=name,
            entry_id=self.entry_id,
            mode=mode,
            target=self.entities,
        )

    async def round(self, number: int, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Publish round `number`; return the publisher's answer and the probe's `done`."""
        assert self.publisher is not None
        timeout = 120 + self.entities * 0.05
        answer = await self.publisher.publish_round(number, timeout)
        done = await self.probe.wait_done(f"round{number}", self.entities, timeout, what)
        return answer, done

    @contextlib.asynccontextmanager
    async def profiled(self, phase: str) -> AsyncIterator[None]:
        """Sample Home Assistant with py-spy during the block, if this scenario is profiled."""
        directory = self.settings.profile_dir
        if self.name not in self.settings.profile or directory is None:
            yield
            return
        spy = PySpy(self.ha.pid, directory / f"{self.tag}-{phase}.collapsed.txt")
        await spy.start()
        try:
            yield
        finally:
            summary = await spy.stop()
            self.profiles += [spy.output, summary]

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()


class ScaleFloorScenario(ScaleScenario):
    """The same messages read by bench_scale_floor: the same entities, nothing else."""

    name = "scale_floor"

    async def setup(self) -> None:
        broker = self.env.broker
        since = broker.log_size()
        topic_filter = subscription_filter(self.customer, SUBSCRIPTION)
        entry = await self.ha.config_flow(
            "bench_scale_floor",
            {
                "host": "127.0.0.1",
                "port": broker.plain_port,
                "username": MQTT_USER,
                "password": MQTT_PASSWORD,
                "topic": topic_filter,
                "client_id": f"bench-floor-{self.tag}",
            },
        )
        self.entry_id = entry["result"]["entry_id"]
        await broker.await_subscribed(topic_filter, persistent=True, since=since)


class StatsScenario(MqttScenario):
    """Energy totals of many meters every 15 simulated minutes, with the recorder running."""

    name = "stats_on"

    def __init__(self, settings: Settings, env: Environment, tag: str) -> None:
        super().__init__(settings, env, tag)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.base_time = now - timedelta(days=3)
        self.per_cycle = settings.stats_meters

    def cpu_phase(self) -> tuple[float, int]:
        return self.settings.stats_rate, self.settings.stats_cycles * self.per_cycle

    def extra_yaml(self) -> str:
        return "recorder:\n"

    def message(self, seq: int) -> tuple[str, bytes]:
        cycle, meter = divmod(seq, self.per_cycle)
        moment = self.base_time + cycle * STATS_INTERVAL
        body = {
            "smarteo_payload_schema_version": 1,
            "data_timestamp_utc": format_timestamp(moment),
            "system_timestamp_utc": format_timestamp(moment + timedelta(seconds=1)),
            "register_id": 2,
            "meter_reading": float(SEQ_BASE + seq),
        }
        return self.topic(meter), json.dumps(body).encode()

    async def setup(self) -> None:
        await self.add_ainsite()

    async def rows_right(self, cycles: int, timeout: float = 120) -> bool:
        """Whether the hourly rows come right (polled: an import may still be on its way)."""
        try:
            await poll(
                lambda: self.check_rows(cycles),
                timeout=timeout,
                what="the hourly rows of meter 0",
            )
        except WaitTimeoutError as err:
            print(f"bench:   {self.name}: {err}", file=sys.stderr)
            return False
        return True

    async def check_rows(self, cycles: int) -> bool:
        """Check meter 0's hourly rows: 4 readings per hour, each `meters` kWh above the last."""
        listed = await self.ha.call("recorder/list_statistic_ids")
        ours = {
            item["statistic_id"]: item
            for item in listed
            if item.get("source") == "energy_telemetry"
        }
        if len(ours) != self.per_cycle:
            return False
        first = next(
            (sid for sid, item in ours.items() if item.get("name", "").startswith("Meter mtr-0 ")),
            None,
        )
        if first is None or ours[first].get("statistics_unit_of_measurement") != "kWh":
            return False
        answer = await self.ha.call(
            "recorder/statistics_during_period",
            start_time=(self.base_time - timedelta(hours=1)).isoformat(),
            statistic_ids=[first],
            period="hour",
            types=["sum", "state"],
        )
        rows = answer.get(first, [])
        hours = (cycles - 1) // 4
        want = [
            (4.0 * self.per_cycle * (hour + 1), float(SEQ_BASE + 4 * self.per_cycle * (hour + 1)))
            for hour in range(hours)
        ]
        got = [(row["sum"], row["state"]) for row in rows]
        if got != want and VERBOSE:
            print(f"bench:   rows {got[:3]}... want {want[:3]}...", file=sys.stderr)
        return got == want


class StatsOffScenario(StatsScenario):
    """The same without the statistics."""

    name = "stats_off"

    def extra_yaml(self) -> str:
        return "recorder:\nbench_no_statistics:\n"


class FloorScenario(Scenario):
    """State writes from a loop inside Home Assistant."""

    name = "floor"
    ramp = MQTT_RAMP

    async def setup(self) -> None:
        await self.ha.config_flow("bench_floor")

    async def create_entities(self) -> None:
        count = self.settings.entities
        before = await self.ha.sensor_count()
        await self.ha.call_service("bench_floor", "create", {"count": count})
        await _wait_sensors(self.ha, before + count, "floor: the sensors")
        first = self.take(count)
        await self.drive(first, count, 2000)
        await self.tracker.wait_seen(first, count, 60, "floor warm-up")

    async def drive(self, first: int, count: int, rate: float) -> None:
        t0 = time.monotonic() + 0.05
        sent = self.tracker.sent
        for index in range(count):
            sent[first + index] = t0 + index / rate
        await self.ha.call_service(
            "bench_floor",
            "run",
            {"base": SEQ_BASE, "start": first, "count": count, "rate": rate, "t0": t0},
        )
        await asyncio.sleep(max(0.0, t0 + count / rate - time.monotonic()))


SCENARIO_TYPES: dict[str, type[Scenario]] = {
    "ainsite": AinsiteScenario,
    "baseline": BaselineScenario,
    "novacore": NovacoreScenario,
    "floor": FloorScenario,
    "stats_on": StatsScenario,
    "stats_off": StatsOffScenario,
    "scale": ScaleScenario,
    "scale_floor": ScaleFloorScenario,
}


async def _wait_sensors(ha: HomeAssistantProcess, want: int, what: str) -> None:
    """Wait until at least `want` sensors exist."""

    async def there() -> bool:
        return await ha.sensor_count() >= want

    await poll(there, timeout=60, what=f"{what} ({want} sensors in all)", interval=0.2)


# --- the shared environment ------------------------------------------------------------------


@dataclass
class Environment:
    """The broker, the publisher and the onboarded template, shared by every scenario."""

    workdir: Path
    python: str
    template: Path
    broker: Mosquitto
    publisher: MqttPublisher


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    """One repeat of one scenario."""

    cpu_per_1k: float = math.nan
    writes_per_reading: float = math.nan
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    lost: int = 0
    sustained: float = 0.0
    ramp: list[tuple[int, float, float, bool]] = field(default_factory=list)
    mem_per_entity_kib: float = math.nan
    entities: int = 0
    loop_cpu_per_1k: float = math.nan
    """CPU of the event loop's thread alone (statistics scenarios)."""
    rows_ok: bool | None = None
    """Whether the imported hourly rows were right (statistics scenarios)."""
    first_value_s: float = math.nan
    """Scale: from the first message of round 1 until every entity showed a value."""
    round2_s: float = math.nan
    """Scale: from the first message of round 2 until every entity showed its new value."""
    setup_s: float = math.nan
    unload_s: float = math.nan
    """Scale: the reload's set-up (setup_in_progress -> loaded) and unload, in seconds."""
    back: int = 0
    """Scale: entities the set-up brought back (a state written by the entity itself)."""
    round1_cpu_s: float = math.nan
    round2_cpu_s: float = math.nan
    reload_cpu_s: float = math.nan
    """Scale: CPU seconds of the Home Assistant process (all threads) in each phase."""
    round1_acked_s: float = math.nan
    round2_acked_s: float = math.nan
    """Scale: when the broker had acknowledged the round's last message (the sender's pace)."""
    profiles: list[Path] = field(default_factory=list)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_memory(scenario: Scenario, result: Result) -> None:
    ha = scenario.ha
    await asyncio.sleep(scenario.settings.settle_seconds)
    before = await ha.sensor_count()
    reset_peak(ha.pid)
    await asyncio.sleep(1.0)
    idle = memory_kib(ha.pid, "VmHWM")
    reset_peak(ha.pid)
    created = time.time()
    await scenario.create_entities()
    await asyncio.sleep(1.0)
    peak = memory_kib(ha.pid, "VmHWM")
    result.entities = await ha.sensor_count() - before
    if result.entities > 0:
        result.mem_per_entity_kib = (peak - idle) / result.entities
    if scenario.settings.wait_for_saves:
        await _wait_registries_saved(ha, created)


async def _wait_registries_saved(ha: HomeAssistantProcess, since: float) -> None:
    """Wait for the delayed save of the entity and device registries after new entities.

    Serialising them blocks the event loop for a while (~0.2 s with 1,000 entities), a one-off
    that would otherwise land in the latency figures. Each change delays a registry's save anew
    (10 s); a device is registered before its entities, so once the entity registry was saved
    the device registry's save (if it had one to do) has come too.
    """
    registry = ha.config_dir / ".storage" / "core.entity_registry"

    def saved() -> bool:
        with contextlib.suppress(FileNotFoundError):
            return registry.stat().st_mtime >= since
        return False

    await wait_for(saved, timeout=60, what=f"{registry} saved after the new entities")
    await asyncio.sleep(0.5)  # the write's own pause of the event loop is over


async def settle(ha: HomeAssistantProcess) -> None:
    """Collect Home Assistant's garbage and freeze its heap before a measured phase (bench_gc)."""
    await ha.call_service("bench_gc", "settle", {})


async def measure_cpu(scenario: Scenario, result: Result) -> None:
    ha = scenario.ha
    tracker = scenario.tracker
    settings = scenario.settings
    # Warm-up traffic: the first full collection after 1,000 new entities pauses Home Assistant
    # for ~0.2 s, a one-off that belongs to start-up, not to the steady state measured here.
    rate, count = scenario.cpu_phase()
    warm = min(count, settings.n)
    first = scenario.take(warm)
    await scenario.drive(first, warm, rate * 2)
    await tracker.wait_seen(first, warm, 60, f"{scenario.name} CPU warm-up")
    await asyncio.sleep(0.5)
    await settle(ha)
    idle_rate = await _idle_cpu_rate(ha, settings.idle_seconds)
    first = scenario.take(count)
    writes0 = tracker.writes
    start = time.monotonic()
    profiler = _start_profiler(scenario, count / rate + 1)
    cpu_start = cpu_seconds(ha.pid)
    await scenario.drive(first, count, rate)
    complete = await tracker.count_seen(first, count, 10 + count / rate)
    end = max((tracker.seen.get(seq, 0.0) for seq in range(first, first + count)), default=start)
    cpu_end = cpu_seconds(ha.pid)
    end = max(end, start + 1e-3) if complete else time.monotonic()
    used = cpu_end - cpu_start - idle_rate * (end - start)
    result.cpu_per_1k = used / count * 1000
    result.writes_per_reading = (tracker.writes - writes0) / count
    latencies = [
        (tracker.seen[seq] - tracker.sent[seq]) * 1000
        for seq in range(first, first + count)
        if seq in tracker.seen
    ]
    result.lost = count - len(latencies)
    if profiler is not None:
        profiler.wait()
    if VERBOSE:
        slow = [
            (seq - first, round((tracker.seen[seq] - tracker.sent[seq]) * 1000))
            for seq in range(first, first + count)
            if seq in tracker.seen and tracker.seen[seq] - tracker.sent[seq] > 0.05
        ]
        print(f"bench:   {len(slow)} readings over 50 ms: {slow[:40]}", file=sys.stderr)
    result.p50_ms = _percentile(latencies, 0.50)
    result.p99_ms = _percentile(latencies, 0.99)


def _start_profiler(scenario: Scenario, duration: float) -> subprocess.Popen[bytes] | None:
    """With BENCH_PYSPY=<dir>, sample the Home Assistant process during the CPU phase."""
    directory = os.environ.get("BENCH_PYSPY")
    if not directory:
        return None
    output = Path(directory) / f"{scenario.tag}.txt"
    return subprocess.Popen(
        py_spy_command(scenario.ha.pid, output, duration=duration),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure_ramp(scenario: Scenario, result: Result, rates: tuple[int, ...]) -> None:
    tracker = scenario.tracker
    window = scenario.settings.ramp_seconds
    for rate in rates:
        count = max(10, int(rate * window))
        first = scenario.take(count)
        start = time.monotonic() + 0.01
        samples: list[float] = []

        def lag(first: int = first, start: float = start, rate: int = rate) -> float:
            # How far the delivered readings are behind the schedule: 0 when caught up.
            delivered = max(tracker.max_seen, first - 1)
            due = start + (delivered + 1 - first) / rate
            return max(0.0, time.monotonic() - due)

        async def sample(samples: list[float] = samples) -> None:
            while True:
                samples.append(lag())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        await scenario.drive(first, count, rate)
        lag_end = lag()
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        lag_mid = samples[len(samples) // 2] if samples else 0.0
        complete = await tracker.count_seen(first, count, 10)
        ok = complete and lag_end < 1.0 and lag_end - lag_mid < 0.5
        result.ramp.append((rate, lag_mid, lag_end, ok))
        if not ok:
            break
        result.sustained = rate
        await asyncio.sleep(0.3)


async def _wait_recorder_idle(ha: HomeAssistantProcess, timeout: float = 120) -> None:
    """Wait until the recorder's queue is empty three times in a row (imports, commits done)."""
    empty = 0
    backlog: Any = None

    async def idle() -> bool:
        nonlocal empty, backlog
        backlog = (await ha.call("recorder/info")).get("backlog")
        empty = empty + 1 if backlog == 0 else 0
        return empty >= 3

    await poll(
        idle, timeout=timeout, what=lambda: f"an empty recorder queue ({backlog})", interval=0.2
    )


async def _idle_cpu_rate(ha: HomeAssistantProcess, seconds: float) -> float:
    """Return the CPU seconds per second Home Assistant uses with nothing sent to it."""
    before = cpu_seconds(ha.pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(ha.pid) - before) / seconds


async def measure_statistics(scenario: StatsScenario, result: Result) -> None:
    """CPU per reading of the readings and of the hourly rows they close, imports included."""
    ha, tracker, settings = scenario.ha, scenario.tracker, scenario.settings
    meters = scenario.per_cycle
    rate, count = scenario.cpu_phase()
    if settings.stats_warmup:
        # One more cycle, its rows imported (the first flush after a start is the largest).
        first = scenario.take(meters)
        await scenario.drive(first, meters, rate)
        await tracker.wait_seen(first, meters, 60, f"{scenario.name} warm-up cycle")
        await asyncio.sleep(STATS_FLUSH_WAIT)
    await _wait_recorder_idle(ha)
    await asyncio.sleep(settings.idle_seconds)
    idle_rate = await _idle_cpu_rate(ha, settings.idle_seconds)
    first = scenario.take(count)
    writes0 = tracker.writes
    start = time.monotonic()
    cpu_start, loop_start = cpu_seconds(ha.pid), thread_cpu_seconds(ha.pid)
    await scenario.drive(first, count, rate)
    complete = await tracker.count_seen(first, count, 30 + count / rate)
    # The rows those readings closed are imported within the window (rows_right checks them).
    await asyncio.sleep(STATS_FLUSH_WAIT)
    await _wait_recorder_idle(ha)
    cpu_end, loop_end = cpu_seconds(ha.pid), thread_cpu_seconds(ha.pid)
    elapsed = time.monotonic() - start
    result.cpu_per_1k = (cpu_end - cpu_start - idle_rate * elapsed) / count * 1000
    result.loop_cpu_per_1k = (loop_end - loop_start) / count * 1000
    result.writes_per_reading = (tracker.writes - writes0) / count
    latencies = [
        (tracker.seen[seq] - tracker.sent[seq]) * 1000
        for seq in range(first, first + count)
        if seq in tracker.seen
    ]
    result.lost = 0 if complete else count - len(latencies)
    result.p50_ms = _percentile(latencies, 0.50)
    result.p99_ms = _percentile(latencies, 0.99)
    result.sustained = math.nan
    if scenario.name == "stats_on":
        result.rows_ok = await scenario.rows_right(scenario.next_seq // meters)


def _stepper() -> Callable[[str], None]:
    """With BENCH_VERBOSE, a function that prints what was done and the seconds since the last."""
    clock = time.monotonic()

    def step(what: str) -> None:
        nonlocal clock
        now = time.monotonic()
        if VERBOSE:
            print(f"bench:   {what} {now - clock:.1f} s", file=sys.stderr, flush=True)
        clock = now

    return step


@contextlib.asynccontextmanager
async def _running(
    env: Environment, settings: Settings, name: str, repeat: int
) -> AsyncIterator[Scenario]:
    """A scenario's Home Assistant started and set up; stopped, with its log checked, after."""
    tag = f"{name}{repeat}"
    scenario = SCENARIO_TYPES[name](settings, env, tag)
    config_dir = copy_template(env.template, env.workdir / tag)
    scenario.prepare(config_dir)
    scenario.ha = bench_process(env.python, config_dir, scenario.extra_yaml())
    # The bench's own collector must not pause the clock that times Home Assistant.
    gc.collect()
    gc.disable()
    try:
        await scenario.start()
        await scenario.setup()
        yield scenario
    finally:
        await scenario.ha.stop()
        await scenario.close()
        gc.enable()
    _print_log_problems(config_dir, name)


def _print_log_problems(config_dir: Path, name: str) -> None:
    """With BENCH_VERBOSE, print how many error lines Home Assistant logged, and the first."""
    if not VERBOSE:
        return
    log = (config_dir / "home-assistant.log").read_text(errors="replace")
    problems = [line for line in log.splitlines() if "ERROR" in line or "doesn't specify" in line]
    print(f"bench:   {name}: {len(problems)} error lines {problems[:3]}", file=sys.stderr)


async def run_scenario(env: Environment, settings: Settings, name: str, repeat: int) -> Result:
    result = Result()
    step = _stepper()
    async with _running(env, settings, name, repeat) as scenario:
        step("started and set up")
        if isinstance(scenario, StatsScenario):
            ha = scenario.ha
            before = await ha.sensor_count()
            await scenario.create_entities()
            result.entities = await ha.sensor_count() - before
            if settings.wait_for_saves:
                await _wait_registries_saved(ha, time.time() - 5)
            await measure_statistics(scenario, result)
        elif isinstance(scenario, ScaleScenario):
            try:
                await measure_scale(scenario, result)
            finally:
                result.profiles = scenario.profiles
        else:
            await measure_memory(scenario, result)
            step("memory")
            await measure_cpu(scenario, result)
            step("cpu")
            rates = settings.novacore_ramp if name == "novacore" else settings.mqtt_ramp
            await measure_ramp(scenario, result, rates)
            step("ramp")
    step("stopped")
    return result


async def measure_scale(scenario: ScaleScenario, result: Result) -> None:
    """Round 1 (first values, memory), round 2, then a reload of the entry (set-up time)."""
    ha, settings = scenario.ha, scenario.settings
    step = _stepper()

    await scenario.start_publisher()
    step("publisher ready")
    created = time.time()
    await settle(ha)
    reset_peak(ha.pid)
    idle = memory_kib(ha.pid, "VmRSS")
    await scenario.watch("round1", "value")
    async with scenario.profiled("round1"):
        cpu = cpu_seconds(ha.pid)
        answer, done = await scenario.round(1, "round 1: entities showing their first value")
        result.round1_cpu_s = cpu_seconds(ha.pid) - cpu
    peak = memory_kib(ha.pid, "VmHWM")
    result.entities = done["count"]
    result.first_value_s = done["at"] - answer["first"]
    result.round1_acked_s = answer["acked"] - answer["first"]
    result.mem_per_entity_kib = (peak - idle) / result.entities
    step(f"round 1: {answer['messages']} messages, {done['count']} entities")
    if settings.wait_for_saves:
        await _wait_registries_saved(ha, created)
        step("registries saved")
    await settle(ha)
    await scenario.watch("round2", "changed")
    async with scenario.profiled("round2"):
        cpu = cpu_seconds(ha.pid)
        answer, done = await scenario.round(2, "round 2: entities showing their new value")
        result.round2_cpu_s = cpu_seconds(ha.pid) - cpu
    result.round2_s = done["at"] - answer["first"]
    result.round2_acked_s = answer["acked"] - answer["first"]
    step("round 2")
    await settle(ha)
    await scenario.watch("setup", "setup")
    async with scenario.profiled("setup"):
        cpu = cpu_seconds(ha.pid)
        await ha.rest("POST", f"/api/config/config_entries/entry/{scenario.entry_id}/reload")
        done = await scenario.probe.wait_done(
            "setup", scenario.entities, 120 + scenario.entities * 0.02, "the entry's reload"
        )
        result.reload_cpu_s = cpu_seconds(ha.pid) - cpu
    states = done["states"]
    if done.get("outcome") != "loaded":
        raise RuntimeError(f"{scenario.name}: the reload ended {done.get('outcome')}: {done}")
    result.setup_s = states["loaded"] - states["setup_in_progress"]
    unloading = states.get("unload_in_progress", done["started"])
    result.unload_s = states["not_loaded"] - unloading
    result.back = done["count"]
    step(f"reload: {result.back} of {done['registered']} registered entities back")


# --- report ------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    clean = [value for value in values if not math.isnan(value)]
    return statistics.median(clean) if clean else math.nan


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def report(settings: Settings, results: dict[str, list[Result]], elapsed: float) -> str:
    rows: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        if name in SCALE_SCENARIOS:
            continue
        cpu = _median([run.cpu_per_1k for run in runs])
        writes = _median([run.writes_per_reading for run in runs])
        rows[name] = {
            "cpu": cpu,
            "writes": writes,
            "cpu_write": cpu / writes if writes else math.nan,
            "p50": _median([run.p50_ms for run in runs]),
            "p99": _median([run.p99_ms for run in runs]),
            "lost": float(max(run.lost for run in runs)),
            "sustained": _median([run.sustained for run in runs]),
            "mem": _median([run.mem_per_entity_kib for run in runs]),
            "entities": _median([float(run.entities) for run in runs]),
            "loop": _median([run.loop_cpu_per_1k for run in runs]),
            "rows_ok": float(all(run.rows_ok is not False for run in runs)),
        }
    rate_of = {
        "novacore": settings.novacore_rate,
        "stats_on": settings.stats_rate,
        "stats_off": settings.stats_rate,
    }
    title = (
        f"Energy Telemetry bench: {settings.repeat} repeat(s), medians; "
        f"{settings.meters} meters x {settings.registers} registers; "
        f"CPU phase {settings.n} readings (novacore {settings.novacore_n}); "
        f"statistics: {settings.stats_meters} meters x {settings.stats_cycles} readings; "
        f"scale: {settings.scale_meters} meters x {len(REGISTERS)} registers; "
        f"{os.cpu_count()} CPUs; {elapsed:.0f} s"
    )
    header = (
        f"{'scenario':<9} {'CPU s/1k rd':>11} {'writes/rd':>9} {'CPU s/1k wr':>11} "
        f"{'rate/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'lost':>4} {'sustained/s':>11} "
        f"{'entities':>8} {'KiB/entity':>10}"
    )
    lines = [title, ""]
    if rows:
        lines.append(header)
    for name, row in rows.items():
        lines.append(
            f"{name:<9} {_fmt(row['cpu'], 3):>11} {_fmt(row['writes'], 2):>9} "
            f"{_fmt(row['cpu_write'], 3):>11} {rate_of.get(name, settings.rate):>6.0f} "
            f"{_fmt(row['p50'], 1):>7} {_fmt(row['p99'], 1):>7} {row['lost']:>4.0f} "
            f"{_fmt(row['sustained'], 0):>11} {row['entities']:>8.0f} {_fmt(row['mem'], 2):>10}"
        )
    if rows:
        lines.extend(
            ["", "ramp (rate: lag at mid / at end, s; + sustained, - backlog), per repeat:"]
        )
    for name, runs in results.items():
        if name in STATS_SCENARIOS or name in SCALE_SCENARIOS:
            continue
        for index, run in enumerate(runs):
            steps = " ".join(
                f"{rate}:{mid:.2f}/{end:.2f}{'+' if ok else '-'}" for rate, mid, end, ok in run.ramp
            )
            lines.append(f"  {name:<9} #{index + 1} {steps}")
    if rows:
        lines.append("")
    scale, scale_ratios = _scale_block(settings, results)
    if scale:
        lines.extend([*scale, ""])
    targets = _targets(settings, rows, scale_ratios)
    if len(targets) > 1:
        lines.extend(targets)
    return "\n".join(lines).rstrip() + "\n"


def _scale_block(
    settings: Settings, results: dict[str, list[Result]]
) -> tuple[list[str], dict[str, float]]:
    """The scale scenarios: each measure in absolute terms and as a ratio to the floor."""
    runs = {name: results[name] for name in SCALE_SCENARIOS if name in results}
    ratios: dict[str, float] = {}
    if not runs:
        return [], ratios
    entities = settings.scale_meters * (len(REGISTERS) + 1)
    recorder = "with" if settings.scale_recorder else "without"
    profiled = [name for name in runs if name in settings.profile]
    lines = [
        f"scale: {settings.scale_meters} meters x {len(REGISTERS)} registers = {entities} "
        f"entities through one entry; publisher in its own process; {recorder} the recorder; "
        f"medians of {settings.repeat}"
        + (f"; PROFILED ({', '.join(profiled)}): py-spy slows what it samples" if profiled else ""),
        f"  {'measure':<44} {'scale':>9} {'scale_floor':>12} {'scale/floor':>12}",
    ]

    def median(name: str, value: Callable[[Result], float]) -> float:
        return _median([value(run) for run in runs.get(name, [])])

    def row(label: str, value: Callable[[Result], float], digits: int = 2) -> None:
        ours, floor = median("scale", value), median("scale_floor", value)
        ratio = (
            ours / floor if floor and not math.isnan(ours) and not math.isnan(floor) else math.nan
        )
        lines.append(
            f"  {label:<44} {_fmt(ours, digits):>9} {_fmt(floor, digits):>12} {_fmt(ratio, 2):>12}"
        )
        ratios[label.split(". ", 1)[-1].rsplit(" (", 1)[0]] = ratio

    def per_back(run: Result) -> float:
        return run.setup_s / run.back * 1000 if run.back else math.nan

    row("1. first value of every entity (s)", lambda run: run.first_value_s)
    row("2. set-up, all in the registry (s)", lambda run: run.setup_s)
    row("3. memory per entity (KiB)", lambda run: run.mem_per_entity_kib)
    row("4. second round, every new value (s)", lambda run: run.round2_s)
    row("   CPU in round 1 (s)", lambda run: run.round1_cpu_s)
    row("   CPU in the reload: unload + set-up (s)", lambda run: run.reload_cpu_s)
    row("   CPU in round 2 (s)", lambda run: run.round2_cpu_s)
    row("   unload before the set-up (s)", lambda run: run.unload_s)
    row("   set-up per entity brought back (ms)", per_back, 3)
    row("   entities brought back by the set-up", lambda run: float(run.back), 0)
    row("   round 1 acknowledged by the broker (s)", lambda run: run.round1_acked_s)
    row("   round 2 acknowledged by the broker (s)", lambda run: run.round2_acked_s)
    made = {name: median(name, lambda run: float(run.entities)) for name in runs}
    lines.append(
        "  (elapsed times run from the round's first message; the broker's acknowledgements show"
        " the sender's pace; entities with a value after round 1: "
        + ", ".join(f"{name} {count:.0f}" for name, count in made.items())
        + ")"
    )
    for name, named in runs.items():
        for run in named:
            lines.extend(f"  profile ({name}): {path}" for path in run.profiles)
    return lines, ratios


SCALE_TARGETS: dict[str, float] = {
    "first value of every entity": 1.5,
    "set-up, all in the registry": 1.5,
    "memory per entity": 1.0,
}
"""The scale scenario's ratios to its floor, and the most each may be."""


def _scale_targets(scale: dict[str, float]) -> list[str]:
    lines = []
    for measure, bound in SCALE_TARGETS.items():
        value = scale.get(measure, math.nan)
        if math.isnan(value):
            continue
        verdict = "PASS" if value <= bound else "MISS"
        lines.append(f"  {verdict} scale/floor {measure} = {_fmt(value, 2)} (target <= {bound})")
    return lines


def _targets(
    settings: Settings,
    rows: dict[str, dict[str, float]],
    scale: dict[str, float] | None = None,
) -> list[str]:
    lines = ["ratios and targets:"]

    def verdict(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "MISS")

    def ratio(a: float, b: float) -> float:
        return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan

    ainsite, baseline = rows.get("ainsite"), rows.get("baseline")
    floor, novacore = rows.get("floor"), rows.get("novacore")
    if ainsite and baseline:
        value = ratio(ainsite["cpu"], baseline["cpu"])
        ok = None if math.isnan(value) else value <= 0.45
        lines.append(
            f"  {verdict(ok)} ainsite/baseline CPU per reading = {_fmt(value, 3)} (target <= 0.45)"
        )
    for name, row, bound in (("ainsite", ainsite, 1.15), ("novacore", novacore, 1.25)):
        if row and floor:
            value = ratio(row["cpu_write"], floor["cpu_write"])
            ok = None if math.isnan(value) else value <= bound
            lines.append(
                f"  {verdict(ok)} {name}/floor CPU per state write = {_fmt(value, 2)}"
                f" (target <= {bound})"
            )
    for name, row, rate in (
        ("ainsite", ainsite, settings.rate),
        ("novacore", novacore, settings.novacore_rate),
    ):
        if row:
            ok = None if math.isnan(row["p99"]) else row["p99"] < 50 and row["lost"] == 0
            lines.append(
                f"  {verdict(ok)} {name} p99 latency = {_fmt(row['p99'], 1)} ms at {rate:.0f}"
                " readings/s (target < 50 ms)"
            )
    for name, row, target in (("ainsite", ainsite, 2000), ("novacore", novacore, 200)):
        if row:
            lines.append(
                f"  {verdict(row['sustained'] >= target)} {name} sustained"
                f" {row['sustained']:.0f} readings/s (target >= {target})"
            )
    for name, row in (("ainsite", ainsite), ("novacore", novacore), ("baseline", baseline)):
        if row and floor:
            value = ratio(row["mem"], floor["mem"])
            ok = None if math.isnan(value) else value <= 1.0
            if name == "baseline":
                lines.append(f"       baseline/floor memory per entity = {_fmt(value, 2)}")
                continue
            lines.append(
                f"  {verdict(ok)} {name}/floor memory per entity = {_fmt(value, 2)}"
                " (target <= 1.00)"
            )
    if baseline and floor:
        lines.append(
            f"       baseline/floor CPU per state write = "
            f"{_fmt(ratio(baseline['cpu_write'], floor['cpu_write']), 2)}"
        )
    lines.extend(_scale_targets(scale or {}))
    stats_on, stats_off = rows.get("stats_on"), rows.get("stats_off")
    if stats_on and stats_off:
        value = ratio(stats_on["cpu"], stats_off["cpu"])
        ok = None if math.isnan(value) else value <= 1.05 and stats_on["rows_ok"] == 1.0
        lines.append(
            f"  {verdict(ok)} statistics on/off CPU per reading = {_fmt(value, 3)}"
            f" ({settings.stats_meters} meters every 15 min; target <= 1.05)"
        )
        lines.append(
            "       statistics on/off event loop CPU per reading = "
            f"{_fmt(ratio(stats_on['loop'], stats_off['loop']), 3)}; hourly rows "
            f"{'right' if stats_on['rows_ok'] == 1.0 else 'WRONG'}"
        )
    return lines


# --- main --------------------------------------------------------------------------------------


def _names(
    parser: argparse.ArgumentParser, text: str, known: tuple[str, ...], refusal: str
) -> tuple[str, ...]:
    """The comma-separated names of `text`; a name not in `known` ends the run with `refusal`."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if unknown := set(names) - set(known):
        parser.error(f"{refusal}: {', '.join(sorted(unknown))}")
    return names


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    if args.quick:
        settings = Settings(
            n=200,
            repeat=1,
            meters=5,
            registers=4,
            entities=20,
            rate=200,
            novacore_rate=50,
            ramp_seconds=0.5,
            idle_seconds=0.5,
            settle_seconds=0.3,
            wait_for_saves=False,
            mqtt_ramp=(250,),
            novacore_ramp=(50,),
            stats_meters=20,
            stats_cycles=8,
            stats_rate=200,
            stats_warmup=False,
            scale_meters=20,
        )
    if args.repeat:
        settings.repeat = args.repeat
    if args.n:
        settings.n = args.n
    if args.meters:
        settings.stats_meters = args.meters
    if args.scenarios:
        settings.scenarios = _names(parser, args.scenarios, SCENARIOS, "unknown scenarios")
    if args.scale_meters:
        settings.scale_meters = args.scale_meters
    settings.scale_recorder = args.scale_recorder
    if args.profile:
        names = _names(
            parser,
            args.profile,
            SCALE_SCENARIOS,
            f"--profile takes {','.join(SCALE_SCENARIOS)}, not",
        )
        if not_run := set(names) - set(settings.scenarios):
            parser.error(f"--profile {','.join(sorted(not_run))}: not among the scenarios run")
        settings.profile = names
        settings.profile_dir = Path(
            args.profile_dir or tempfile.mkdtemp(prefix="energy-telemetry-profile-")
        ).absolute()
        settings.profile_dir.mkdir(parents=True, exist_ok=True)
        print(f"bench: profiles go to {settings.profile_dir}", file=sys.stderr, flush=True)
    return settings


async def main_async(settings: Settings) -> str:
    started = time.monotonic()
    python = os.environ.get("BENCH_HA_PYTHON") or sys.executable
    with tempfile.TemporaryDirectory(prefix="energy-telemetry-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker")
        broker.add_user(MQTT_USER, MQTT_PASSWORD, patterns=["meters/outbound/#"])
        broker.start()
        # Non-blocking puts from the paced senders; a wide window keeps the ramps flowing.
        publisher = broker.publisher(window=1000)
        publisher.start()
        try:
            template = await make_template(python, workdir)
            env = Environment(workdir, python, template, broker, publisher)
            results: dict[str, list[Result]] = {name: [] for name in settings.scenarios}
            for repeat in range(settings.repeat):
                for name in settings.scenarios:
                    print(f"bench: {name} #{repeat + 1}", file=sys.stderr, flush=True)
                    results[name].append(await run_scenario(env, settings, name, repeat))
        finally:
            await publisher.stop()
            broker.stop()
    return report(settings, results, time.monotonic() - started)


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    print(asyncio.run(main_async(settings)))


if __name__ == "__main__":
    main()
