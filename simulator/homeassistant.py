"""A real Home Assistant in a child process, for the demo and the benchmark.

Start it, onboard it, use its REST and websocket APIs, run config and options flows over REST,
stop it. The rule: the process is a Child (its own process group, stopped with it, gone when its
parent dies), and every wait on it polls for the state it needs and fails saying what it was still
missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
import contextlib
import json
import os
from pathlib import Path
import time
from typing import Any

import aiohttp

from .processes import Child, free_port
from .wait import poll

CALL_TIMEOUT = 120.0
"""Seconds a websocket command may take (a hang guard: statistics queries can be slow)."""


class HassError(Exception):
    """Home Assistant answered with an error, or stopped answering; the message says which."""


class HassWebSocket:
    """A client of Home Assistant's websocket API: commands, and events for a callback."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Wrap an authenticated connection; start() reads it."""
        self._ws = ws
        self._id = 0
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.on_event: Callable[[dict[str, Any], float], None] | None = None
        """Called with each event and the monotonic time its message arrived."""

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, base_url: str, token: str) -> HassWebSocket:
        """Connect, authenticate, and have coalesced messages (several in one frame) sent."""
        ws = await session.ws_connect(f"{base_url}/api/websocket", max_msg_size=0, heartbeat=None)
        try:
            hello = await ws.receive_json()
            if hello.get("type") != "auth_required":
                raise HassError(f"unexpected websocket greeting: {hello}")
            await ws.send_json({"type": "auth", "access_token": token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise HassError(f"websocket authentication failed: {answer}")
        except BaseException:
            await ws.close()
            raise
        client = cls(ws)
        client._reader = asyncio.create_task(client._read())
        await client.call("supported_features", features={"coalesce_messages": 1})
        return client

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, session: aiohttp.ClientSession, base_url: str, token: str
    ) -> AsyncIterator[HassWebSocket]:
        """Open a connection for the block."""
        client = await cls.open(session, base_url, token)
        try:
            yield client
        finally:
            await client.close()

    async def call(self, message_type: str, **payload: Any) -> Any:
        """Send a command and return its result (HassError when it failed)."""
        self._id += 1
        message_id = self._id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[message_id] = future
        await self._ws.send_json({"id": message_id, "type": message_type, **payload})
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                return await future
        except TimeoutError:
            raise HassError(f"{message_type}: no answer within {CALL_TIMEOUT:g} s") from None
        finally:
            self._waiters.pop(message_id, None)

    async def close(self) -> None:
        """Close the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._ws.close()

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                data = json.loads(msg.data)
                for item in data if isinstance(data, list) else [data]:
                    self._dispatch(item, now)
        finally:
            for future in self._waiters.values():
                if not future.done():
                    future.set_exception(HassError("the websocket connection closed"))

    def _dispatch(self, item: dict[str, Any], now: float) -> None:
        kind = item.get("type")
        if kind == "event":
            if self.on_event is not None:
                self.on_event(item["event"], now)
        elif kind == "result":
            future = self._waiters.get(item["id"])
            if future is None or future.done():
                return
            if item.get("success"):
                future.set_result(item.get("result"))
            else:
                future.set_exception(HassError(f"command failed: {item.get('error')}"))


class HomeAssistantProcess:
    """`python -m homeassistant -c <config_dir> --skip-pip`, on a loopback port of its own."""

    def __init__(
        self,
        python: str,
        config_dir: Path,
        *,
        port: int | None = None,
        output: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare; start() runs it. `output`: where its stdout and stderr go."""
        # An absolute path: Home Assistant runs from its configuration directory, where a
        # relative one (.venv/bin/python) names nothing.
        self.python = str(Path(python).absolute()) if os.sep in python else python
        self.config_dir = config_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = output or config_dir / "stdout.log"
        self.env = dict(os.environ if env is None else env)
        self.token = ""
        """The access token REST and websocket calls use (set by onboard(), or by the caller)."""
        self.child: Child | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: HassWebSocket | None = None

    # --- configuration ------------------------------------------------------------------------

    def write_configuration(self, yaml: str) -> None:
        """Write configuration.yaml: the http block (127.0.0.1, this port), then yaml."""
        http = f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
        (self.config_dir / "configuration.yaml").write_text(http + yaml)
        # Home Assistant 2026.11 moves the YAML http: settings into .storage/http at the first
        # start and ignores the YAML afterwards: a copied configuration would listen on the
        # port of the one it was copied from. Without the stored settings, the YAML is read.
        (self.config_dir / ".storage" / "http").unlink(missing_ok=True)

    def link_integrations(self, *directories: Path) -> None:
        """Link custom integrations into the configuration's custom_components."""
        custom = self.config_dir / "custom_components"
        custom.mkdir(exist_ok=True)
        for target in directories:
            link = custom / target.name
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)

    # --- process ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """Return the process id (once started)."""
        if self.child is None or self.child.pid is None:
            raise HassError("Home Assistant was not started")
        return self.child.pid

    @property
    def running(self) -> bool:
        """Return whether the process is alive."""
        return self.child is not None and self.child.running

    async def start(self, timeout: float = 300.0) -> None:
        """Start Home Assistant and wait until its API answers (see wait_ready)."""
        args = [self.python, "-m", "homeassistant", "-c", str(self.config_dir), "--skip-pip"]
        self.child = Child("Home Assistant", args, self.output, env=self.env, cwd=self.config_dir)
        self.child.start()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        await self.wait_ready(timeout)
        if self.token:
            await self.confirm_http_config()

    async def wait_ready(self, timeout: float = 300.0) -> None:
        """Wait until Home Assistant reports RUNNING (before onboarding: until it answers).

        Until it runs, Home Assistant has not installed its SIGTERM handler: stopping it then
        kills it without the final write of its storage (the onboarded user, the token).
        """
        path = "/api/config" if self.token else "/api/onboarding"

        async def ready() -> bool:
            if not self.running:
                raise HassError(f"Home Assistant exited during startup:\n{self.log_tail()}")
            assert self.session is not None
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with self.session.get(
                    self.url + path, headers=self._headers(), timeout=aiohttp.ClientTimeout(5)
                ) as resp:
                    if resp.status == 200:
                        body = await resp.json()
                        return not self.token or body.get("state") == "RUNNING"
            return False

        await poll(
            ready,
            timeout=timeout,
            what=lambda: (
                f"Home Assistant answering at {self.url}{path}"
                + (" with state RUNNING" if self.token else "")
                + f"; its log ends:\n{self.log_tail()}"
            ),
            interval=0.2,
        )

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of Home Assistant's log (or of its output, before it has a log)."""
        text = ""
        with contextlib.suppress(OSError):
            log = (self.config_dir / "home-assistant.log").read_text(errors="replace")
            text = "\n".join(log.splitlines()[-lines:])
        return text or (self.child.log_tail(lines) if self.child is not None else "")

    async def stop(self, timeout: float = 60.0) -> None:
        """Close the clients; stop Home Assistant (SIGTERM, then SIGKILL after timeout)."""
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.child is not None:
            await self.child.stop(timeout)

    # --- APIs ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def rest(
        self, method: str, path: str, body: Any = None, *, form: dict[str, str] | None = None
    ) -> Any:
        """Call the REST API and return the decoded answer (HassError on an error status)."""
        assert self.session is not None, "start() first"
        async with self.session.request(
            method, self.url + path, headers=self._headers(), json=body, data=form
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise HassError(f"{method} {path} answered {resp.status}: {text[:500]}")
            return json.loads(text) if text else None

    async def onboard(self, name: str, username: str, password: str) -> str:
        """Create the owner and finish onboarding; keep and return an access token."""
        client_id = f"{self.url}/"
        answer = await self.rest(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": name,
                "username": username,
                "password": password,
                "language": "en",
            },
        )
        tokens = await self.rest(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": answer["auth_code"],
                "client_id": client_id,
            },
        )
        self.token = str(tokens["access_token"])
        await self.rest("POST", "/api/onboarding/core_config")
        await self.rest("POST", "/api/onboarding/analytics")
        await self.rest(
            "POST",
            "/api/onboarding/integration",
            {"client_id": client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )
        await self.confirm_http_config()
        return self.token

    async def confirm_http_config(self) -> None:
        """Confirm the HTTP settings this process runs with, where the release asks for that.

        Home Assistant 2026.11 takes the YAML http: settings as a trial that the owner confirms
        (its frontend opens a dialog over every page until then); a trial not confirmed within 5
        minutes is undone: Home Assistant restarts on its defaults (port 8123, every interface).
        Older releases have no such trial (and no `http/config` command).
        """
        try:
            config = await self.call("http/config")
        except HassError:
            return
        if config.get("active_config_type") == "pending":
            await self.call("http/config/promote")

    async def websocket(self) -> HassWebSocket:
        """Return the websocket connection of this process, opened on first use."""
        if self.ws is None:
            assert self.session is not None, "start() first"
            self.ws = await HassWebSocket.open(self.session, self.url, self.token)
        return self.ws

    async def long_lived_token(self, client_name: str, lifespan_days: int) -> str:
        """Create a long-lived access token (the onboarded owner's)."""
        return str(
            await self.call(
                "auth/long_lived_access_token", client_name=client_name, lifespan=lifespan_days
            )
        )

    async def config_flow(
        self,
        handler: str,
        *answers: Mapping[str, Any],
        sections: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Run a config flow over REST, each answer to the previous form; return the entry.

        `sections` answers the collapsible sections of a form, for the releases whose form has
        them (MQTT's broker step has "other_settings" since 2026.11).
        """
        url = "/api/config/config_entries/flow"
        result: dict[str, Any] = await self.rest(
            "POST", url, {"handler": handler, "show_advanced_options": False}
        )
        for step in answers:
            if result.get("type") not in ("menu", "form"):
                break
            if result.get("errors"):
                raise HassError(
                    f"config flow {handler}, {result.get('step_id')}: {result['errors']}"
                )
            answer = dict(step)
            for field in result.get("data_schema") or []:
                if field.get("type") == "expandable" and field["name"] in (sections or {}):
                    answer.setdefault(field["name"], dict((sections or {})[field["name"]]))
            result = await self.rest("POST", f"{url}/{result['flow_id']}", answer)
        if result.get("type") != "create_entry":
            raise HassError(f"config flow {handler} did not create an entry: {result}")
        return result

    async def options_flow(
        self, entry_id: str, *answers: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        """Run an entry's options flow over REST, as its Configure dialog does.

        Each answer goes to the step before it: a menu's {"next_step_id": ...}, a form's
        fields; None submits a form as it is shown, every field at its default. Return every
        result in order, the menu's or form the flow opened with first (HassError when a form
        comes back with errors).
        """
        url = "/api/config/config_entries/options/flow"
        result: dict[str, Any] = await self.rest(
            "POST", url, {"handler": entry_id, "show_advanced_options": False}
        )
        results = [result]
        for answer in answers:
            if result.get("type") not in ("menu", "form"):
                break
            if result.get("errors"):
                raise HassError(f"options flow, {result.get('step_id')}: {result['errors']}")
            defaults = {
                field["name"]: field["default"]
                for field in result.get("data_schema") or []
                if "default" in field
            }
            body = defaults if answer is None else dict(answer)
            result = await self.rest("POST", f"{url}/{result['flow_id']}", body)
            results.append(result)
        if result.get("errors"):
            raise HassError(f"options flow, {result.get('step_id')}: {result['errors']}")
        return results

    async def call(self, message_type: str, **payload: Any) -> Any:
        """Send a websocket command and return its result."""
        return await (await self.websocket()).call(message_type, **payload)

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        """Call a service through the websocket."""
        await self.call("call_service", domain=domain, service=service, service_data=dict(data))

    async def sensor_count(self) -> int:
        """Return how many sensor states exist."""
        states = await self.rest("GET", "/api/states")
        return sum(1 for state in states if state["entity_id"].startswith("sensor."))
