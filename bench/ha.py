"""The benchmark's Home Assistant processes: their configuration, the onboarded template, /proc.

Each scenario runs in its own process (simulator/homeassistant.py), started from a copy of one
configuration onboarded once. The rule: what is measured comes from /proc of that process alone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
import shutil

from simulator.homeassistant import HassError, HomeAssistantProcess

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "energy_telemetry"
FLOOR = ROOT / "bench" / "floor_component" / "bench_floor"
NO_STATISTICS = ROOT / "bench" / "floor_component" / "bench_no_statistics"
SCALE_FLOOR = ROOT / "bench" / "floor_component" / "bench_scale_floor"
PROBE = ROOT / "bench" / "floor_component" / "bench_probe"
GC = ROOT / "bench" / "floor_component" / "bench_gc"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TOKEN_FILE = "bench_token"  # noqa: S105 - a file name

CONFIGURATION = """\
homeassistant:
  name: bench
  time_zone: UTC
  unit_system: metric
  latitude: 59.3
  longitude: 18.0
  elevation: 0
  currency: SEK
  country: SE
api:
bench_gc:
config:
logger:
  default: warning
"""


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


def bench_process(python: str, config_dir: Path, extra_yaml: str = "") -> HomeAssistantProcess:
    """Return a Home Assistant process for config_dir, with the integration and the floors.

    BENCH_EXTRA_PYTHONPATH (where scripts/bench installed the frontend) goes first on its path.
    """
    env = dict(os.environ)
    if extra := os.environ.get("BENCH_EXTRA_PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, env.get("PYTHONPATH")]))
    ha = HomeAssistantProcess(python, config_dir, env=env)
    ha.write_configuration(CONFIGURATION + extra_yaml)
    ha.link_integrations(INTEGRATION, FLOOR, NO_STATISTICS, SCALE_FLOOR, PROBE, GC)
    token = config_dir / TOKEN_FILE
    if token.exists():
        ha.token = token.read_text().strip()
    return ha


async def make_template(python: str, directory: Path) -> Path:
    """Start Home Assistant once, onboard it, stop it: a config dir to copy per scenario."""
    template = directory / "template"
    template.mkdir(parents=True)
    ha = bench_process(python, template, "onboarding:\n")
    try:
        await ha.start()
        await ha.onboard("Bench", "bench", "bench-password")
        ha.token = await ha.long_lived_token("bench", 3650)
        (template / TOKEN_FILE).write_text(ha.token)
        await ha.wait_ready()  # now with the token: /api/config says RUNNING
    finally:
        await ha.stop()
    if not (template / ".storage" / "auth").is_file():
        raise HassError(f"Home Assistant did not save the onboarded user; see {template}")
    for leftover in ("home-assistant.log", "home-assistant.log.1", "stdout.log"):
        with contextlib.suppress(FileNotFoundError):
            (template / leftover).unlink()
    return template


def copy_template(template: Path, target: Path) -> Path:
    """Copy the onboarded template to a scenario's own config dir."""
    shutil.copytree(template, target, symlinks=True)
    return target
