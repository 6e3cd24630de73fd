"""The command lines of scripts/demo and scripts/screenshot, with the standard library only.

Those scripts answer --help from here with any python3, before they prepare a virtual
environment; simulator/demo.py and simulator/screenshot.py parse their arguments with the same
parsers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE_FILE = REPO_ROOT / ".demo" / "state.json"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - the documented login of a loopback-only demo


def demo_parser(prog: str = "scripts/demo") -> argparse.ArgumentParser:
    """Return the parser of scripts/demo (python -m simulator.demo)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run Home Assistant with the Energy Telemetry integration against simulated "
            "Sourceful Novacore (REST + SSE) and Ainsite (MQTT) services: no account needed. "
            f"Log in as {DEMO_USERNAME} / {DEMO_PASSWORD}. Stop with Ctrl-C."
        ),
        epilog=(
            "The first run creates .demo/venv and installs Home Assistant into it (a few "
            "minutes), and mosquitto with apt-get when it is missing."
        ),
    )
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant port (8123)")
    parser.add_argument(
        "--novacore-port", type=int, default=0, help="Novacore server port (default: a free one)"
    )
    parser.add_argument(
        "--mqtt-port", type=int, default=0, help="mosquitto port (default: a free one)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=720.0,
        help="simulated seconds per real second (720: a simulated day in 2 minutes); readings"
        " are stamped with the real clock, so each real hour holds that many hours of energy",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="Home Assistant configuration directory, new or empty (default: a new temporary "
        "one, deleted on exit); a directory given here is never deleted",
    )
    parser.add_argument(
        "--keep-config", action="store_true", help="keep the temporary configuration directory"
    )
    parser.add_argument(
        "--headless",
        "--no-wait",
        dest="headless",
        action="store_true",
        help="for scripts and tests: print one JSON line (URLs, token, ports, pids) on stdout "
        "when ready; runs without the frontend if it is not installed",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=DEFAULT_STATE_FILE,
        help="where to write the ready info for scripts/screenshot (.demo/state.json)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for Home Assistant to start (300)",
    )
    parser.add_argument(
        "--no-backfill",
        dest="backfill",
        action="store_false",
        help="do not send a past day of readings at start-up (they give the energy dashboard"
        " its past hours, filed by the integration's statistics)",
    )
    parser.add_argument(
        "--simulators-only",
        action="store_true",
        help="run only the Novacore server and the MQTT broker with the Ainsite publisher, and "
        "print what to enter in your own Home Assistant's config flow",
    )
    parser.add_argument(
        "--wire",
        choices=("documented", "legacy"),
        default="documented",
        help="what the Novacore server sends: 'documented' (Sourceful's API docs, the default) or"
        " 'legacy' (type 'solar', battery and meter signs inverted, RFC 3339 timestamps, the"
        " {type, device_sn, spec, state} shape, mppts arrays)",
    )
    parser.add_argument("--print-requirements", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="log the simulators' debug")
    return parser


def screenshot_parser(prog: str = "scripts/screenshot") -> argparse.ArgumentParser:
    """Return the parser of scripts/screenshot (python -m simulator.screenshot)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Screenshot the running demo (scripts/demo) in headless Chromium: "
        "docs/device.png (the PV device), docs/energy.png (the energy dashboard) and "
        "docs/energy-hours.png (the energy dashboard over the past day, which the demo sent "
        "in one burst at start-up).",
        epilog="Start the demo first (scripts/demo, which creates .demo/venv); Chromium is "
        "installed with apt-get when it is missing.",
    )
    parser.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--chromium", help="the Chromium binary (default: found on PATH)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument(
        "--wait", type=float, default=0.0, help="seconds to let the demo run before the shots"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds to let a page finish drawing"
    )
    return parser


PARSERS = {"demo": demo_parser, "screenshot": screenshot_parser}

if __name__ == "__main__":  # python3 -m simulator.cli demo --help
    PARSERS[sys.argv[1]]().parse_args(sys.argv[2:])
