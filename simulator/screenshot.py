"""Screenshots of a running demo in headless Chromium: `python -m simulator.screenshot`.

Reads the demo's ready info (.demo/state.json), logs in as the demo user through Home
Assistant's login flow, hands the tokens to the frontend, and drives Chromium over the DevTools
protocol to capture the PV device page, the energy dashboard (today), and the energy dashboard
over the past day: the hours of the readings the demo sent in one burst at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
from datetime import datetime
import json
from pathlib import Path
import shutil
import sys
import tempfile
import time
from typing import Any

import aiohttp

from .cli import screenshot_parser
from .demo import DOMAIN
from .homeassistant import HassWebSocket
from .processes import Child
from .wait import WaitTimeoutError, poll, wait_for

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Chromium as a root process in a container with no network beyond loopback wants."""
SCREENSHOT_FLAGS = (
    "--headless",
    *CHROMIUM_FLAGS,
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)

# Text of the page, shadow roots included (Home Assistant's frontend is web components).
_PAGE_TEXT_JS = """
(() => {
  const parts = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) parts.push(child.textContent);
      else walk(child);
    }
  };
  walk(document);
  return parts.join(" ").replace(/\\s+/g, " ");
})()
"""
# Whether any chart canvas is drawn (echarts or chart.js, inside shadow roots).
_CHARTS_JS = """
(() => {
  let count = 0;
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) {
      if (child.tagName === "CANVAS" && child.width > 50) count++;
      walk(child);
    }
  };
  walk(document);
  return count;
})()
"""


# Show the energy dashboard from START to END (epoch ms): the frontend keeps its period in an
# energy collection on the websocket connection ("_energy_dashboard" from 2025.x, "_energy"
# before). Returns false when this frontend has none (the dashboard then shows today).
_SET_PERIOD_JS = """
(() => {
  const root = document.querySelector("home-assistant");
  const connection = root && root.hass && root.hass.connection;
  if (!connection) return false;
  const collection = connection._energy_dashboard || connection._energy;
  if (!collection || typeof collection.setPeriod !== "function") return false;
  collection.setPeriod(new Date(START), new Date(END));
  collection.refresh();
  return true;
})()
"""


def _say(message: str) -> None:
    print(f"[screenshot] {message}", file=sys.stderr, flush=True)  # noqa: T201


def find_chromium(explicit: str | None) -> str:
    """Return the Chromium binary."""
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    raise SystemExit("Chromium is not installed (apt-get install chromium)")


class DevTools:
    """A DevTools protocol session with one page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Wrap the page's websocket."""
        self._ws = ws
        self._id = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a method and return its result."""
        self._id += 1
        message_id = self._id
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json()
            if message.get("id") != message_id:
                continue
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def navigate(self, url: str, timeout: float = 60.0) -> None:
        """Open a URL and wait until the document has loaded."""
        await self.send("Page.navigate", url=url)

        async def loaded() -> bool:
            return bool(await self.evaluate("document.readyState") == "complete")

        await poll(loaded, timeout=timeout, what=f"{url} loaded", interval=0.2)

    async def wait_for_text(self, needles: list[str], timeout: float = 60.0) -> str:
        """Wait until the page shows every needle; return the page text."""
        text = ""

        async def shown() -> str | None:
            nonlocal text
            text = await self.evaluate(_PAGE_TEXT_JS) or ""
            return text if all(needle in text for needle in needles) else None

        return await poll(
            shown,
            timeout=timeout,
            what=lambda: (
                f"{[n for n in needles if n not in text]} on the page; it shows: {text[:600]}"
            ),
            interval=0.5,
        )

    async def wait_for_chart(self, timeout: float = 60.0) -> None:
        """Wait until the page has drawn a chart."""

        async def drawn() -> bool:
            return bool(await self.evaluate(_CHARTS_JS))

        await poll(drawn, timeout=timeout, what="a chart drawn on the page", interval=0.5)

    async def screenshot(self, path: Path) -> None:
        """Save a PNG of the viewport."""
        result = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))
        _say(f"saved {path}")


async def login(session: aiohttp.ClientSession, url: str, username: str, password: str) -> Any:
    """Log in through Home Assistant's login flow, as the login page does; return the tokens."""
    client_id = f"{url}/"
    async with session.post(
        f"{url}/auth/login_flow",
        json={
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{url}/?auth_callback=1",
        },
    ) as resp:
        flow = await resp.json()
    async with session.post(
        f"{url}/auth/login_flow/{flow['flow_id']}",
        json={"client_id": client_id, "username": username, "password": password},
    ) as resp:
        result = await resp.json()
    if result.get("type") != "create_entry":
        raise SystemExit(f"login as {username} failed: {result}")
    async with session.post(
        f"{url}/auth/token",
        data={"grant_type": "authorization_code", "code": result["result"], "client_id": client_id},
    ) as resp:
        tokens = await resp.json()
    return {
        **tokens,
        "hassUrl": url,
        "clientId": client_id,
        "expires": int(time.time() * 1000) + int(tokens["expires_in"]) * 1000,
    }


async def pv_device_id(session: aiohttp.ClientSession, info: dict[str, Any]) -> str:
    """Return the device id of the demo's PV DER."""
    async with HassWebSocket.connect(session, info["url"], info["token"]) as ws:
        registry = await ws.call("config/entity_registry/list")
    pv_power = info["entities"]["pv_power"]
    for entry in registry:
        if entry["entity_id"] == pv_power and entry["platform"] == DOMAIN and entry["device_id"]:
            return str(entry["device_id"])
    raise SystemExit(f"no device for {pv_power}")


async def _devtools_port(profile: Path, chromium: Child) -> int:
    marker = profile / "DevToolsActivePort"

    def port() -> int | None:
        if not chromium.running:
            raise SystemExit(f"Chromium exited with {chromium.returncode}:\n{chromium.log_tail()}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        return None

    found = await wait_for(port, timeout=60, what="Chromium's DevTools port", interval=0.1)
    assert found is not None
    return found


def _start_chromium(args: argparse.Namespace, profile: Path) -> Child:
    chromium = Child(
        "Chromium",
        [
            find_chromium(args.chromium),
            *SCREENSHOT_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={args.width},{args.height}",
            "about:blank",
        ],
        profile.parent / f"{profile.name}.log",
    )
    chromium.start()
    return chromium


async def take(args: argparse.Namespace) -> None:
    """Take the screenshots."""
    try:
        info = json.loads(args.state_file.read_text())
    except OSError as err:
        raise SystemExit(
            f"no running demo ({err}): start one with `scripts/demo` in another terminal"
        ) from err
    url: str = info["url"]
    out_dir: Path = args.out_dir
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        tokens = await login(session, url, info["username"], info["password"])
        device_id = await pv_device_id(session, info)
        if args.wait > 0:
            _say(f"letting the demo run {args.wait:g} s more")
            await asyncio.sleep(args.wait)

        profile = Path(tempfile.mkdtemp(prefix="energy-telemetry-chromium-"))
        chromium = _start_chromium(args, profile)
        try:
            port = await _devtools_port(profile, chromium)
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            page = next(target for target in targets if target.get("type") == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.send("Page.enable")
                await tools.send("Runtime.enable")
                await tools.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=args.width,
                    height=args.height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                # Same origin first, then the tokens the frontend keeps in localStorage.
                await tools.navigate(f"{url}/auth/authorize")
                await tools.evaluate(
                    f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))});"
                    "localStorage.setItem('dockedSidebar', JSON.stringify('docked'));"
                )

                await tools.navigate(f"{url}/config/devices/device/{device_id}")
                await tools.wait_for_text(["pv-array", "Sensors", "Power"])
                await asyncio.sleep(args.settle)
                await tools.screenshot(out_dir / "device.png")

                await tools.navigate(f"{url}/energy")
                await tools.wait_for_text(["Energy distribution", "Solar"])
                await tools.wait_for_chart()
                await asyncio.sleep(args.settle)
                await tools.screenshot(out_dir / "energy.png")

                await _past_day_by_hour(tools, info, args, out_dir / "energy-hours.png")
        finally:
            await chromium.stop(10)
            shutil.rmtree(profile, ignore_errors=True)
            (profile.parent / f"{profile.name}.log").unlink(missing_ok=True)


async def _past_day_by_hour(
    tools: DevTools, info: dict[str, Any], args: argparse.Namespace, path: Path
) -> None:
    """Show the electricity usage per hour over the demo's backfilled day, and capture it.

    The demo sent that day as readings in one burst at start-up; the integration's statistics
    put each one's energy under the hour it was measured in.
    """
    if not info.get("backfill_start"):
        _say(f"no backfill in this demo (--no-backfill): {path.name} shows today")
        start_ms = None
    else:
        start = datetime.fromisoformat(info["backfill_start"])
        hour = 3600_000
        start_ms = int(start.timestamp() * 1000) // hour * hour
        end_ms = (int(time.time() * 1000) // hour + 1) * hour
    if start_ms is not None:
        script = _SET_PERIOD_JS.replace("START", str(start_ms)).replace("END", str(end_ms))
        if not await tools.evaluate(script):
            _say(f"this frontend has no energy period to set: {path.name} shows today")
    await tools.wait_for_text(["Electricity usage"])
    await asyncio.sleep(args.settle)
    await tools.screenshot(path)


def main(argv: list[str] | None = None) -> int:
    """Run from the command line."""
    parser = screenshot_parser()
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(take(args))
    except WaitTimeoutError as err:
        raise SystemExit(f"scripts/screenshot: {err}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
