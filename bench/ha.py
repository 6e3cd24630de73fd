# ruff: noqa: S603, ASYNC110, ASYNC220
"""A real Home Assistant process for the benchmark: start, onboard, REST, websocket, CPU, memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "energy_telemetry"
FLOOR = ROOT / "bench" / "floor_component" / "bench_floor"
NO_STATISTICS = ROOT / "bench" / "floor_component" / "bench_no_statistics"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BASE_CONFIG = """\
homeassistant:
  name: bench
  time_zone: UTC
  unit_system: metric
  latitude: 59.3
  longitude: 18.0
  elevation: 0
  currency: SEK
  country: SE
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
logger:
  default: warning
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process's main thread (its event loop)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int, key: str) -> int:
    """Return VmRSS or VmHWM of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class HomeAssistantProcess:
    """`python -m homeassistant -c <dir> --skip-pip` with the integration and the floor linked in."""

    def __init__(self, python: str, config_dir: Path, extra_yaml: str = "") -> None:
        """Prepare the config dir (copied from the onboarded template by the caller)."""
        # An absolute path: Home Assistant runs from its configuration directory, where a
        # relative one (.venv/bin/python) names nothing.
        self.python = str(Path(python).absolute()) if os.sep in python else python
        self.config_dir = config_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_id = 0
        self._ws_waiters: dict[int, asyncio.Future[Any]] = {}
        self._ws_task: asyncio.Task[None] | None = None
        self.on_event: Callable[[dict[str, Any], float], None] | None = None
        (config_dir / "configuration.yaml").write_text(
            BASE_CONFIG.format(port=self.port) + extra_yaml
        )
        # Home Assistant 2026.11 moves the YAML http: settings into .storage/http at the first
        # start and ignores the YAML afterwards: a copy of the template would listen on the
        # template's port. Without the stored settings, this config's YAML is migrated anew.
        (config_dir / ".storage" / "http").unlink(missing_ok=True)
        custom = config_dir / "custom_components"
        custom.mkdir(exist_ok=True)
        for target in (INTEGRATION, FLOOR, NO_STATISTICS):
            link = custom / target.name
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)
        token_file = config_dir / "bench_token"
        if token_file.exists():
            self.token = token_file.read_text().strip()

    @property
    def pid(self) -> int:
        """Return the process id."""
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 120.0) -> None:
        """Start Home Assistant and wait until its API answers."""
        env = dict(os.environ)
        extra = os.environ.get("BENCH_EXTRA_PYTHONPATH")
        if extra:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, env.get("PYTHONPATH")]))
        log = (self.config_dir / "stdout.log").open("wb")
        self.process = subprocess.Popen(
            [self.python, "-m", "homeassistant", "-c", str(self.config_dir), "--skip-pip"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.config_dir,
        )
        log.close()
        self.session = aiohttp.ClientSession()
        await self.wait_running(timeout)

    async def wait_running(self, timeout: float = 120.0) -> None:
        """Wait until Home Assistant reports RUNNING (before onboarding: until it answers).

        Until it runs, Home Assistant has not installed its SIGTERM handler: stopping it then
        kills it without the final write of its storage (the onboarded user, the token).
        """
        assert self.process is not None
        assert self.session is not None
        deadline = time.monotonic() + timeout
        path = "/api/config" if self.token else "/api/onboarding"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Home Assistant exited; see {self.config_dir}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with self.session.get(self.url + path, headers=self._headers()) as resp:
                    if resp.status == 200:
                        body = await resp.json()
                        if not self.token or body.get("state") == "RUNNING":
                            return
            if time.monotonic() > deadline:
                raise TimeoutError("Home Assistant did not start")
            await asyncio.sleep(0.2)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def onboard(self) -> None:
        """Create the owner through the onboarding API and keep a long-lived token."""
        assert self.session is not None
        client_id = self.url + "/"
        async with self.session.post(
            self.url + "/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Bench",
                "username": "bench",
                "password": "bench-password",
                "language": "en",
            },
        ) as resp:
            resp.raise_for_status()
            code = (await resp.json())["auth_code"]
        async with self.session.post(
            self.url + "/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
        ) as resp:
            resp.raise_for_status()
            self.token = (await resp.json())["access_token"]
        await self.connect_ws(subscribe=False)
        result = await self.ws_call(
            {"type": "auth/long_lived_access_token", "client_name": "bench", "lifespan": 3650}
        )
        self.token = str(result)
        (self.config_dir / "bench_token").write_text(self.token)
        for step in ("core_config", "analytics"):
            async with self.session.post(
                f"{self.url}/api/onboarding/{step}", headers=self._headers(), json={}
            ) as resp:
                await resp.read()

    # --- REST ---------------------------------------------------------------------------------

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Call the REST API and return the decoded answer."""
        assert self.session is not None
        async with self.session.request(
            method, self.url + path, headers=self._headers(), json=body
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {text}")
            return json.loads(text) if text else None

    async def config_flow(
        self,
        handler: str,
        *steps: dict[str, Any],
        sections: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Run a config flow over REST with the given answers; return the last result.

        `sections` answers the collapsible sections of a form, for the releases whose form has
        them (MQTT's broker step has "other_settings" since 2026.11).
        """
        result: dict[str, Any] = await self.rest(
            "POST", "/api/config/config_entries/flow", {"handler": handler}
        )
        for step in steps:
            answer = dict(step)
            for field in result.get("data_schema") or []:
                if field.get("type") == "expandable" and field["name"] in (sections or {}):
                    answer.setdefault(field["name"], (sections or {})[field["name"]])
            result = await self.rest(
                "POST", f"/api/config/config_entries/flow/{result['flow_id']}", answer
            )
        if result.get("type") != "create_entry":
            raise RuntimeError(f"config flow {handler} did not create an entry: {result}")
        return result

    async def sensor_count(self) -> int:
        """Return how many sensor states exist."""
        states = await self.rest("GET", "/api/states")
        return sum(1 for state in states if state["entity_id"].startswith("sensor."))

    # --- websocket ----------------------------------------------------------------------------

    async def connect_ws(self, subscribe: bool = True) -> None:
        """Connect, authenticate, enable coalescing and subscribe to state_changed."""
        assert self.session is not None
        self.ws = await self.session.ws_connect(
            self.url + "/api/websocket", max_msg_size=0, heartbeat=None
        )
        await self.ws.receive_json()
        await self.ws.send_json({"type": "auth", "access_token": self.token})
        answer = await self.ws.receive_json()
        if answer.get("type") != "auth_ok":
            raise RuntimeError(f"websocket auth failed: {answer}")
        self._ws_task = asyncio.create_task(self._ws_reader())
        await self.ws_call({"type": "supported_features", "features": {"coalesce_messages": 1}})
        if subscribe:
            await self.ws_call({"type": "subscribe_events", "event_type": "state_changed"})

    async def ws_call(self, message: dict[str, Any]) -> Any:
        """Send a command and wait for its result."""
        assert self.ws is not None
        self._ws_id += 1
        message = {**message, "id": self._ws_id}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ws_waiters[self._ws_id] = future
        await self.ws.send_json(message)
        return await asyncio.wait_for(future, 60)

    async def call_service(self, domain: str, service: str, data: dict[str, Any]) -> None:
        """Call a service through the websocket."""
        await self.ws_call(
            {"type": "call_service", "domain": domain, "service": service, "service_data": data}
        )

    async def _ws_reader(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            now = time.monotonic()
            data = json.loads(msg.data)
            for item in data if isinstance(data, list) else [data]:
                kind = item.get("type")
                if kind == "event":
                    if self.on_event is not None:
                        self.on_event(item["event"], now)
                elif kind == "result":
                    future = self._ws_waiters.pop(item["id"], None)
                    if future is not None and not future.done():
                        if item.get("success"):
                            future.set_result(item.get("result"))
                        else:
                            future.set_exception(RuntimeError(str(item.get("error"))))

    # --- stop ---------------------------------------------------------------------------------

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop Home Assistant (SIGTERM, then SIGKILL) and close the clients."""
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_task
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if process.poll() is None:
                process.kill()
                process.wait()


async def make_template(python: str, directory: Path) -> Path:
    """Start Home Assistant once, onboard it, stop it: a config dir to copy per scenario."""
    template = directory / "template"
    template.mkdir(parents=True)
    ha = HomeAssistantProcess(python, template, "onboarding:\n")
    try:
        await ha.start()
        await ha.onboard()
        await ha.wait_running()  # now with the token: /api/config says RUNNING
    finally:
        await ha.stop()
    if not (template / ".storage" / "auth").is_file():
        raise RuntimeError(f"Home Assistant did not save the onboarded user; see {template}")
    for leftover in ("home-assistant.log", "home-assistant.log.1", "stdout.log"):
        with contextlib.suppress(FileNotFoundError):
            (template / leftover).unlink()
    return template


def copy_template(template: Path, target: Path) -> Path:
    """Copy the onboarded template to a scenario's own config dir."""
    shutil.copytree(template, target, symlinks=True)
    return target


def default_python() -> str:
    """Return the interpreter that runs Home Assistant: this one."""
    return sys.executable
