"""Run the integration end to end with no account anywhere: `python -m simulator.demo`.

Starts a Novacore server fed by the site model, a mosquitto broker fed by the Ainsite publisher,
and a real Home Assistant; onboards it through its own API, adds both sources through the
integration's config flow over REST, sends both a past day of readings the way live data comes
(the backfill), adds each entry to the energy dashboard through its options flow (Configure ->
Energy dashboard -> Submit, over REST), and keeps everything running until Ctrl-C or SIGTERM.
The rule: everything started is stopped on the way out, and a start-up wait that times out stops
the demo saying what was missing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterable
import contextlib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
import importlib.util
import json
import logging
import os
from pathlib import Path
import secrets
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .ainsite_publisher import BACKFILL_INTERVAL, DEFAULT_METERS, PublisherStats, run_publisher
from .broker import Mosquitto
from .cli import DEFAULT_STATE_FILE, DEMO_PASSWORD, DEMO_USERNAME, REPO_ROOT, demo_parser
from .flows import ainsite_answers, novacore_answers
from .homeassistant import HassError, HassWebSocket, HomeAssistantProcess
from .model import SiteModel, run_site
from .novacore_server import NovacoreServer, private_key_pem
from .processes import port_is_free
from .wait import WaitTimeoutError, poll
from .wire import DOCUMENTED

_LOGGER = logging.getLogger("simulator.demo")

INTEGRATION_DIR = REPO_ROOT / "custom_components" / "energy_telemetry"
DOMAIN = "energy_telemetry"

DEMO_NAME = "Demo"
SITE_ID = "sit-demo"
SITE_NAME = "Demo Home"
CUSTOMER_ID = "cust-demo"
SUBSCRIPTION_ID = "sub-demo"
MQTT_USERNAME = "ainsite-demo"
BACKFILL_HOURS = 24
"""The past hours both sources send at start-up, a reading every 15 minutes."""
BACKFILL_TIMEOUT = 180.0
"""Seconds to wait for the integration to import the backfilled hours as statistics."""
ENTITIES_TIMEOUT = 60.0
"""Seconds to wait for the integration's sensors to show values."""

# Home Assistant integrations the demo configures, on top of those Home Assistant always loads.
CONFIGURED_INTEGRATIONS = ("api", "config", "energy", "history", "logbook", "recorder", "search")
# Config entries the onboarding's core-config step creates by itself, in the background, at any
# moment after it; they need the internet. The demo removes each one when it appears.
ONBOARDING_EXTRAS = ("google_translate", "met", "radio_browser", "shopping_list")


class DemoError(Exception):
    """The demo could not start; the message says why."""


# --------------------------------------------------------------------------- helpers


def local_time_zone() -> str:
    """Return the IANA name of this machine's time zone, or UTC."""
    if (name := os.environ.get("TZ", "").lstrip(":")) and "/" in name:
        return name
    with contextlib.suppress(OSError):
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            return target.split("/zoneinfo/", 1)[1]
    return "UTC"


def integration_requirements(domains: Iterable[str]) -> list[str]:
    """Return the pip requirements of Home Assistant integrations and their dependencies."""
    spec = importlib.util.find_spec("homeassistant")
    if spec is None or not spec.submodule_search_locations:
        raise DemoError("Home Assistant is not installed in this Python")
    components = Path(next(iter(spec.submodule_search_locations))) / "components"
    seen: set[str] = set()
    requirements: set[str] = set()
    stack = list(domains)
    while stack:
        domain = stack.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest_path = components / domain / "manifest.json"
        if not manifest_path.is_file():
            continue
        manifest = json.loads(manifest_path.read_text())
        requirements.update(manifest.get("requirements", []))
        stack.extend(manifest.get("dependencies", []))
    return sorted(requirements)


def loaded_integrations() -> set[str]:
    """Return the Home Assistant integrations a demo instance sets up."""
    from homeassistant import bootstrap  # noqa: PLC0415 - heavy, and only for this

    return {
        *bootstrap.CORE_INTEGRATIONS,
        *bootstrap.DEFAULT_INTEGRATIONS,
        *bootstrap.FRONTEND_INTEGRATIONS,
        "logger",
        "network",
        "system_log",
        *CONFIGURED_INTEGRATIONS,
    }


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)  # noqa: T201


# --------------------------------------------------------------------------- the demo


@dataclass
class DemoOptions:
    """Command-line options."""

    port: int = 8123
    novacore_port: int = 0
    mqtt_port: int = 0
    speed: float = 720.0
    config_dir: Path | None = None
    keep_config: bool = False
    headless: bool = False
    state_file: Path = DEFAULT_STATE_FILE
    startup_timeout: float = 300.0
    backfill: bool = True
    simulators_only: bool = False
    wire: str = DOCUMENTED


@dataclass
class Demo:
    """Everything the demo starts, and how to stop it."""

    options: DemoOptions
    config_dir: Path = field(init=False)
    own_config_dir: bool = field(init=False, default=False)
    run_dir: Path = field(init=False)
    novacore: NovacoreServer | None = None
    mosquitto: Mosquitto | None = None
    hass: HomeAssistantProcess | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    mqtt_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    model: SiteModel | None = None
    token: str | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)
    """The config entry id of each source ("novacore", "ainsite")."""
    energy_dashboard: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """What each entry's energy dashboard step added, by role (grid, solar, battery, device)."""
    backfill_end: datetime | None = None
    """Where the past day the demo sends at start-up ends (a 15-minute boundary)."""
    backfill_gate: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the Ainsite entry's session is subscribed: the publisher sends the past day."""
    publisher_stats: PublisherStats = field(default_factory=PublisherStats)
    state_written: bool = False

    @property
    def base_url(self) -> str:
        """Return Home Assistant's URL."""
        return f"http://127.0.0.1:{self.options.port}"

    # ------------------------------------------------------------ start

    async def start(self) -> None:
        """Start everything; raise DemoError on failure (stop() cleans up)."""
        options = self.options
        self.run_dir = Path(tempfile.mkdtemp(prefix="energy-telemetry-demo-run-"))
        if options.simulators_only:
            await self._start_novacore()
            self._start_mosquitto()
            self._start_publisher()
            return
        self._prepare_config_dir()
        if not port_is_free(options.port):
            raise DemoError(
                f"port {options.port} is in use (another Home Assistant?): pick one with --port"
            )
        if options.backfill:
            now = time.time()
            self.backfill_end = datetime.fromtimestamp(now - now % BACKFILL_INTERVAL, UTC)
        await self._start_novacore()
        self._start_mosquitto()
        hass = await self._start_hass()
        await hass.onboard(DEMO_NAME, DEMO_USERNAME, DEMO_PASSWORD)
        _say(f"onboarded: user {DEMO_USERNAME!r}")
        self.token = await hass.long_lived_token("Energy Telemetry demo", 30)
        ws = await hass.websocket()
        await self._remove_onboarding_extras(hass, ws)
        await self._set_core_config(ws)
        await self._add_novacore(hass)
        if options.backfill:
            await self._backfill_novacore()
        await self._add_ainsite(hass)
        self._start_publisher()
        _say("waiting for the integration's sensors")
        await self._find_entities(ws)
        if options.backfill:
            # A live reading of every meter came through: the entry's session is
            # subscribed, and the past day goes the same way.
            self.backfill_gate.set()
            await self._wait_for_backfill(ws)
        # The dashboard takes the statistics as they are: the past day's are there now.
        for source in ("novacore", "ainsite"):
            await self._add_to_energy_dashboard(hass, source)

    def _prepare_config_dir(self) -> None:
        requested = self.options.config_dir
        if requested is None:
            self.config_dir = Path(tempfile.mkdtemp(prefix="energy-telemetry-demo-"))
            self.own_config_dir = True
        else:
            self.config_dir = requested.resolve()
            if (self.config_dir / ".storage").exists():
                raise DemoError(
                    f"{self.config_dir} already holds a Home Assistant configuration: "
                    "the demo needs a new or empty directory"
                )
            self.config_dir.mkdir(parents=True, exist_ok=True)

    async def _start_novacore(self) -> None:
        server = NovacoreServer(wire=self.options.wire)
        try:
            await server.start("127.0.0.1", self.options.novacore_port)
        except OSError as err:
            raise DemoError(f"Novacore server: cannot listen: {err}") from err
        self.novacore = server
        public_key = base64.b64encode(self.key.public_key().public_bytes_raw()).decode()
        identity = server.add_identity(public_key, "idn-demo")
        start = None
        if self.backfill_end is not None:  # the model starts a day ago; the backfill runs it
            start = (self.backfill_end - timedelta(hours=BACKFILL_HOURS)).astimezone()
        self.model = SiteModel(SITE_ID, SITE_NAME, speed=self.options.speed, start=start)
        server.add_site(SITE_ID, SITE_NAME, self.model.devices(), identities=[identity])
        if start is None:
            self._start_site()
        _say(
            f"Novacore server at {server.url} (site {SITE_ID}: PV, battery, inverter, 3-phase"
            f" meter, EV charger; {self.options.wire} wire)"
        )

    def _start_site(self) -> None:
        """Send the site's live readings, stamped with the real clock, every second."""
        assert self.novacore is not None
        assert self.model is not None
        self.tasks.append(
            asyncio.create_task(run_site(self.novacore, self.model), name="novacore-site")
        )

    async def _backfill_novacore(self) -> None:
        """Send the site's past day through the integration's stream, in order, then go live.

        The model started a day ago; it runs through that day in 15-minute steps and each
        reading carries its simulated (past) time. The integration handles them as any other
        readings: the sensors end at the newest, and its statistics file each reading's energy
        under the hour it was measured in. Live readings (real time) follow.
        """
        server, model, end = self.novacore, self.model, self.backfill_end
        assert server is not None
        assert model is not None
        assert end is not None
        try:
            await server.wait_for_streams(SITE_ID, timeout=60)
        except WaitTimeoutError as err:
            raise DemoError(
                f"the integration did not open the Novacore stream ({err}):\n{self._log_tail()}"
            ) from None
        count = 0
        for readings in model.past_readings(end.astimezone(), BACKFILL_INTERVAL):
            for reading in readings:
                await server.push(SITE_ID, reading)
                count += 1
        self._start_site()
        _say(
            f"sent the Novacore site's past {BACKFILL_HOURS} hours through its stream"
            f" ({count} readings with past timestamps), then live readings"
        )

    def _start_mosquitto(self) -> None:
        """A broker with the demo's account (its customer's topics), no TLS, on 127.0.0.1."""
        broker = Mosquitto(self.run_dir / "mosquitto", tls=False, plain_port=self.options.mqtt_port)
        broker.add_user(MQTT_USERNAME, self.mqtt_password, CUSTOMER_ID)
        self.mosquitto = broker
        try:
            broker.start()
        except (FileNotFoundError, RuntimeError, TimeoutError) as err:
            raise DemoError(f"mosquitto: {err} (scripts/demo installs it)") from None
        self.options.mqtt_port = broker.plain_port
        _say(f"mosquitto on 127.0.0.1:{broker.plain_port} (user {MQTT_USERNAME}, pid {broker.pid})")

    def _start_publisher(self) -> None:
        self.tasks.append(asyncio.create_task(self._run_publisher(), name="ainsite-publisher"))

    async def _run_publisher(self) -> None:
        # One reading per meter every 15 simulated minutes, at least once a minute for real;
        # stamped with the real clock (see simulator/ainsite_publisher.py). The past day waits
        # for the gate: the entry's session must exist to keep it.
        interval = min(900.0, max(60.0, self.options.speed * 1.25))
        backfill = self.backfill_end is not None and not self.options.simulators_only
        await run_publisher(
            "127.0.0.1",
            self.options.mqtt_port,
            MQTT_USERNAME,
            self.mqtt_password,
            CUSTOMER_ID,
            SUBSCRIPTION_ID,
            meters=DEFAULT_METERS,
            interval=interval,
            speed=self.options.speed,
            duplicate_rate=0.1,
            stats=self.publisher_stats,
            backfill_hours=BACKFILL_HOURS if backfill else 0.0,
            backfill_gate=self.backfill_gate,
        )

    def _configuration(self) -> str:
        """Return configuration.yaml after its http block."""
        lines = [
            "# Home Assistant for the Energy Telemetry demo (written by simulator/demo.py).",
            *(f"{domain}:" for domain in CONFIGURED_INTEGRATIONS),
            "logger:",
            "  default: warning",
            "  logs:",
            "    custom_components.energy_telemetry: info",
        ]
        if importlib.util.find_spec("hass_frontend") is None:
            if not self.options.headless:
                raise DemoError(
                    "the Home Assistant frontend (home-assistant-frontend) is not installed in "
                    f"{sys.prefix}: run scripts/demo, which installs it, or use --headless"
                )
            # Headless: Home Assistant insists on a frontend; serve an empty one.
            placeholder = self.run_dir / "frontend" / "hass_frontend"
            placeholder.mkdir(parents=True)
            (placeholder / "index.html").write_text(
                "<!doctype html><title>Energy Telemetry demo</title>"
                "<p>Headless demo: the frontend is not installed.</p>"
            )
            lines += ["frontend:", f"  development_repo: {placeholder.parent}"]
        return "\n".join(lines) + "\n"

    async def _start_hass(self) -> HomeAssistantProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)
        hass = HomeAssistantProcess(
            sys.executable,
            self.config_dir,
            port=self.options.port,
            output=self.run_dir / "hass.out",
            env=env,
        )
        hass.write_configuration(self._configuration())
        hass.link_integrations(INTEGRATION_DIR)
        self.hass = hass
        _say(f"Home Assistant starting (config {self.config_dir})")
        await hass.start(self.options.startup_timeout)
        _say(f"Home Assistant answers at {self.base_url} (pid {hass.pid})")
        return hass

    def _log_tail(self) -> str:
        return self.hass.log_tail() if self.hass is not None else ""

    async def _set_core_config(self, ws: HassWebSocket) -> None:
        await ws.call(
            "config/core/update",
            location_name="Energy Telemetry demo",
            latitude=59.3293,
            longitude=18.0686,
            elevation=28,
            unit_system="metric",
            currency="EUR",
            country="SE",
            language="en",
            time_zone=local_time_zone(),
        )

    async def _remove_onboarding_extras(
        self, hass: HomeAssistantProcess, ws: HassWebSocket
    ) -> None:
        """Remove the onboarding's extra entries, those there now and each one that comes later.

        The subscription lists the entries there are, then reports each new one: no extra is
        missed, however late its flow finishes.
        """

        def changed(event: Any, _: float) -> None:
            for change in event if isinstance(event, list) else []:
                entry = change.get("entry") or {}
                if (
                    change.get("type") in (None, "added")
                    and entry.get("domain") in ONBOARDING_EXTRAS
                ):
                    path = f"/api/config/config_entries/entry/{entry['entry_id']}"
                    self.tasks.append(
                        asyncio.create_task(self._remove_entry(hass, path), name="remove-extra")
                    )

        ws.on_event = changed
        await ws.call("config_entries/subscribe")

    async def _remove_entry(self, hass: HomeAssistantProcess, path: str) -> None:
        with contextlib.suppress(HassError):  # already removed
            await hass.rest("DELETE", path)

    async def _add_novacore(self, hass: HomeAssistantProcess) -> None:
        assert self.novacore is not None
        key = {"private_key": private_key_pem(self.key)}
        result = await hass.config_flow(DOMAIN, *novacore_answers(self.novacore.url, SITE_ID, key))
        self.entries["novacore"] = result["result"]["entry_id"]
        _say("added the Novacore site through the config flow")

    async def _add_ainsite(self, hass: HomeAssistantProcess) -> None:
        answers = ainsite_answers(
            self.options.mqtt_port,
            MQTT_USERNAME,
            self.mqtt_password,
            CUSTOMER_ID,
            SUBSCRIPTION_ID,
            tls=False,
        )
        result = await hass.config_flow(DOMAIN, *answers)
        self.entries["ainsite"] = result["result"]["entry_id"]
        _say("added the Ainsite subscription through the config flow")

    async def _find_entities(self, ws: HassWebSocket) -> None:
        """Find the demo's main entities in the entity registry (self.entities), with values."""
        assert self.model is not None
        model = self.model
        wanted = {
            "pv_power": f"{SITE_ID}_{model.pv_der_id}_power",
            "pv_energy": f"{SITE_ID}_{model.pv_der_id}_energy_produced",
            "battery_power": f"{SITE_ID}_{model.battery_der_id}_power",
            "battery_soc": f"{SITE_ID}_{model.battery_der_id}_state_of_charge",
            "battery_charged": f"{SITE_ID}_{model.battery_der_id}_energy_charged",
            "battery_discharged": f"{SITE_ID}_{model.battery_der_id}_energy_discharged",
            "grid_power": f"{SITE_ID}_{model.meter_der_id}_power",
            "grid_imported": f"{SITE_ID}_{model.meter_der_id}_energy_imported",
            "grid_exported": f"{SITE_ID}_{model.meter_der_id}_energy_exported",
            "ev_power": f"{SITE_ID}_{model.charger_der_id}_power",
            "ev_charged": f"{SITE_ID}_{model.charger_der_id}_energy_charged",
        }
        missing: list[str] = sorted(wanted)

        async def found() -> bool:
            registry = await ws.call("config/entity_registry/list")
            mine = [entry for entry in registry if entry.get("platform") == DOMAIN]
            by_unique_id = {entry["unique_id"]: entry["entity_id"] for entry in mine}
            entities: dict[str, Any] = {
                name: by_unique_id[unique_id]
                for name, unique_id in wanted.items()
                if unique_id in by_unique_id
            }
            ainsite = sorted(
                entry["entity_id"]
                for entry in mine
                if entry.get("translation_key") == "energy_total"
            )
            states = {state["entity_id"]: state for state in await ws.call("get_states")}
            ids = [*entities.values(), *ainsite]
            missing[:] = sorted(set(wanted) - set(entities))
            if len(ainsite) < len(DEFAULT_METERS):
                missing.append(f"{len(DEFAULT_METERS) - len(ainsite)} Ainsite meters")
            missing.extend(
                f"a value of {entity_id}"
                for entity_id in ids
                if states.get(entity_id, {}).get("state") in (None, "unknown", "unavailable")
            )
            if missing:
                return False
            entities["ainsite_meters"] = ainsite
            self.entities = entities
            return True

        try:
            await poll(found, timeout=ENTITIES_TIMEOUT, what=lambda: missing)
        except WaitTimeoutError as err:
            raise DemoError(f"the integration's sensors: {err}\n{self._log_tail()}") from None

    async def _wait_for_backfill(self, ws: HassWebSocket) -> None:
        """Wait until the integration has imported the past day as hourly statistics.

        Both sources sent their past day as readings (the Novacore site through its stream,
        the Ainsite meters through the broker); the integration's statistics importer files
        them under their hours, as it does with late or queued live readings. Its statistics
        are those the recorder lists with the integration as their source, one per energy
        counter. The demo runs on without them (the dashboard fills later), saying which are
        missing.
        """
        assert self.backfill_end is not None
        first = self.backfill_end - timedelta(hours=BACKFILL_HOURS)
        counters = len(TOTALS) + 1 + len(self.entities["ainsite_meters"])  # + the EV charger
        short: list[str] = [f"{counters} statistics of {DOMAIN}"]
        ids: list[str] = []

        async def filed() -> bool:
            listed = await ws.call("recorder/list_statistic_ids", statistic_type="sum")
            ids[:] = sorted(item["statistic_id"] for item in listed if item.get("source") == DOMAIN)
            if len(ids) < counters:
                short[:] = [f"{counters - len(ids)} more statistics of {DOMAIN} (listed: {ids})"]
                return False
            rows = await ws.call(
                "recorder/statistics_during_period",
                start_time=first.isoformat(),
                statistic_ids=ids,
                period="hour",
                types=["sum"],
            )
            # The first hour holds the first reading; every hour after it is closed.
            short[:] = [item for item in ids if len(rows.get(item, [])) < BACKFILL_HOURS - 1]
            return not short

        try:
            await poll(filed, timeout=BACKFILL_TIMEOUT, what=lambda: f"the past hours of {short}")
        except WaitTimeoutError as err:
            _say(f"{err} (the dashboard fills later)")
            return
        _say(
            f"the integration's {len(ids)} statistics have the past {BACKFILL_HOURS} hours: it"
            " filed the backfilled readings under their hours"
        )

    async def _add_to_energy_dashboard(self, hass: HomeAssistantProcess, source: str) -> None:
        """Configure -> Energy dashboard -> Submit with what the form offers, as a user does.

        The integration's own step builds the dashboard's sources for the running release; the
        demo takes its preset as it comes (for the two Ainsite meters: individual devices).
        """
        results = await hass.options_flow(
            self.entries[source], {"next_step_id": "energy_dashboard"}, None
        )
        *_, form, done = results
        if done.get("reason") != "energy_dashboard_saved":
            raise DemoError(
                f"the energy dashboard step of the {source} entry ended with {done}:\n"
                f"{self._log_tail()}"
            )
        added = ticked(form)
        self.energy_dashboard[source] = added
        _say(
            f"{SOURCE_NAMES[source]}: Configure -> Energy dashboard -> Submit added "
            + "; ".join(f"{role}: {', '.join(names)}" for role, names in added.items())
        )

    # ------------------------------------------------------------ ready

    def ready_info(self) -> dict[str, Any]:
        """Return what a user or a test needs to reach the running demo."""
        assert self.novacore is not None
        mosquitto_pid = self.mosquitto.pid if self.mosquitto else None
        if self.options.simulators_only:
            return {
                "ready": True,
                "novacore_url": self.novacore.url,
                "novacore_port": self.novacore.port,
                "private_key": private_key_pem(self.key),
                "site_id": SITE_ID,
                "mqtt_host": "127.0.0.1",
                "mqtt_port": self.options.mqtt_port,
                "mqtt_tls": False,
                "mqtt_username": MQTT_USERNAME,
                "mqtt_password": self.mqtt_password,
                "customer_id": CUSTOMER_ID,
                "subscription_id": SUBSCRIPTION_ID,
                "speed": self.options.speed,
                "pid": os.getpid(),
                "mosquitto_pid": mosquitto_pid,
            }
        return {
            "ready": True,
            "url": self.base_url,
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
            "token": self.token,
            "ha_port": self.options.port,
            "novacore_url": self.novacore.url,
            "novacore_port": self.novacore.port,
            "mqtt_port": self.options.mqtt_port,
            "mqtt_username": MQTT_USERNAME,
            "site_id": SITE_ID,
            "customer_id": CUSTOMER_ID,
            "subscription_id": SUBSCRIPTION_ID,
            "speed": self.options.speed,
            "config_dir": str(self.config_dir),
            "pid": os.getpid(),
            "ha_pid": self.hass.pid if self.hass else None,
            "mosquitto_pid": mosquitto_pid,
            "entities": self.entities,
            "energy_dashboard": self.energy_dashboard,
            "backfill_start": None
            if self.backfill_end is None
            else (self.backfill_end - timedelta(hours=BACKFILL_HOURS)).isoformat(),
            "backfill_end": None if self.backfill_end is None else self.backfill_end.isoformat(),
        }

    def write_state(self, info: dict[str, Any]) -> None:
        """Write the ready info where scripts/screenshot looks for it."""
        path = self.options.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info, indent=2) + "\n")
        path.chmod(0o600)
        self.state_written = True

    def failures(self) -> list[str]:
        """Return what stopped running that should not have (empty while all is well)."""
        found = []
        if self.hass is not None and not self.hass.running:
            found.append(f"Home Assistant exited unexpectedly:\n{self._log_tail()}")
        if self.mosquitto is not None and not self.mosquitto.running:
            found.append(f"mosquitto exited unexpectedly:\n{self.mosquitto.log_text()[-3000:]}")
        found.extend(
            f"{task.get_name()} failed: {task.exception()!r}"
            for task in self.tasks
            if task.done() and not task.cancelled() and task.exception() is not None
        )
        return found

    # ------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Stop everything that was started, in reverse order; remove temporary files."""
        if self.hass is not None:
            _say("stopping Home Assistant")
            await self.hass.stop(timeout=60)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.mosquitto is not None:
            await asyncio.to_thread(self.mosquitto.stop, 10)
        if self.novacore is not None:
            await self.novacore.stop()
        if self.state_written:
            with contextlib.suppress(OSError, ValueError):
                path = self.options.state_file
                if json.loads(path.read_text()).get("pid") == os.getpid():
                    path.unlink()
        with contextlib.suppress(AttributeError):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if getattr(self, "own_config_dir", False) and not self.options.simulators_only:
            if self.options.keep_config:
                _say(f"kept the configuration in {self.config_dir}")
            else:
                shutil.rmtree(self.config_dir, ignore_errors=True)


SOURCE_NAMES = {"novacore": "the Novacore site", "ainsite": "the Ainsite subscription"}
TOTALS = ("pv_energy", "battery_charged", "battery_discharged", "grid_imported", "grid_exported")
"""The Novacore site's energy totals in `Demo.entities` (the EV charger's is "ev_charged")."""


def ticked(form: dict[str, Any]) -> dict[str, list[str]]:
    """Return what a form of multi-select lists has ticked at first: labels, by list name."""
    found: dict[str, list[str]] = {}
    for item in form.get("data_schema") or []:
        config = item.get("selector", {}).get("select", {})
        labels = {
            option["value"]: option["label"]
            for option in config.get("options", [])
            if isinstance(option, dict)
        }
        if chosen := [labels.get(value, value) for value in item.get("default") or []]:
            found[item["name"]] = chosen
    return found


# --------------------------------------------------------------------------- main


def parse_args(
    argv: list[str] | None = None, prog: str = "scripts/demo"
) -> tuple[argparse.Namespace, DemoOptions]:
    """Parse the command line."""
    parser = demo_parser(prog)
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    # Each option is the command-line option of the same name (simulator/cli.py).
    options = DemoOptions(
        **{option.name: getattr(args, option.name) for option in fields(DemoOptions)}
    )
    return args, options


async def run(options: DemoOptions, ready: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
    """Start the demo, call ready(info), run until SIGINT/SIGTERM, stop; return an exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    demo = Demo(options)
    code = 0
    try:
        starting = asyncio.create_task(demo.start())
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting in done:
            starting.result()
            info = demo.ready_info()
            if not options.simulators_only:
                demo.write_state(info)
            await ready(info)
            if options.simulators_only:
                _say("the Novacore server and the MQTT broker listen on 127.0.0.1 only")
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1)
                for failure in demo.failures():
                    _say(failure)
                    code = 1
                    stop.set()
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, DemoError):
                await starting
            _say("interrupted during startup")
            code = 130
        stopping.cancel()
    except (DemoError, HassError, WaitTimeoutError) as err:
        _say(f"error: {err}")
        code = 1
    except Exception:
        _LOGGER.exception("The demo failed")
        code = 1
    finally:
        await demo.stop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return code


def main(argv: list[str] | None = None, prog: str = "scripts/demo") -> int:
    """Run the demo from the command line."""
    args, options = parse_args(argv, prog)
    if args.print_requirements:
        for requirement in integration_requirements(loaded_integrations()):
            print(requirement)  # noqa: T201
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def ready(info: dict[str, Any]) -> None:
        if options.headless:
            print(json.dumps(info), flush=True)  # noqa: T201
            return
        if options.simulators_only:
            print(  # noqa: T201
                "\n".join(
                    [
                        "",
                        "  Simulators running. In Home Assistant: Settings > Devices & services >",
                        "  Add integration > Energy Telemetry, then",
                        "",
                        "  Novacore:  API URL      " + info["novacore_url"],
                        f"             site         {SITE_ID}",
                        "             private key:",
                        *(f"    {line}" for line in info["private_key"].splitlines()),
                        f"  Ainsite:   host 127.0.0.1, port {info['mqtt_port']}, TLS off",
                        f"             username {MQTT_USERNAME}, password {info['mqtt_password']}",
                        f"             customer id {CUSTOMER_ID}, subscription id {SUBSCRIPTION_ID}",
                        "",
                        "  Press Ctrl-C to stop.",
                        "",
                    ]
                ),
                flush=True,
            )
            return
        entities = info["entities"]
        print(  # noqa: T201
            "\n".join(
                [
                    "",
                    "  Energy Telemetry demo is running",
                    "",
                    f"  Home Assistant:   {info['url']}  (also http://localhost:{options.port})",
                    f"  Login:            {DEMO_USERNAME} / {DEMO_PASSWORD}",
                    f"  Energy dashboard: {info['url']}/energy",
                    f"  Devices:          {info['url']}/config/integrations/integration/{DOMAIN}",
                    f"  Novacore server:  {info['novacore_url']}  (site {SITE_ID})",
                    f"  MQTT broker:      127.0.0.1:{info['mqtt_port']}  (customer {CUSTOMER_ID})",
                    f"  Simulated time:   x{options.speed:g}",
                    f"  PV power sensor:  {entities['pv_power']}",
                    f"  Config directory: {info['config_dir']}",
                    "",
                    "  Press Ctrl-C to stop everything.",
                    "",
                ]
            ),
            flush=True,
        )

    return asyncio.run(run(options, ready))


if __name__ == "__main__":
    sys.exit(main())
