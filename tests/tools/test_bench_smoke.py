"""Smoke run of the benchmark harness (scripts/bench): tiny N, every scenario, one table.

It proves the harness works end to end (real Home Assistant processes, mosquitto, the Novacore
simulator, the floor integrations, the scale scenario's publisher process and probe); it asserts
no performance target.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from simulator.broker import find_mosquitto
from tests.helpers.repository import REPO_ROOT as ROOT, environment_without_coverage


def _frontend_path() -> str | None:
    """Return a PYTHONPATH under which hass_frontend imports, or None if it cannot."""
    extra = os.environ.get("BENCH_EXTRA_PYTHONPATH", "")
    candidates = [extra] if extra else []
    candidates += ["", str(ROOT / ".venv-bench-frontend")]
    for candidate in candidates:
        env = {**os.environ, "PYTHONPATH": candidate}
        probe = subprocess.run(
            [sys.executable, "-c", "import hass_frontend"],
            env=env,
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


# Hang guards only (no performance target): a busy machine starts Home Assistant slowly.
@pytest.mark.timeout(600)
def test_bench_quick_prints_the_table() -> None:
    try:
        find_mosquitto()
    except FileNotFoundError:
        pytest.skip("mosquitto is not installed")
    frontend = _frontend_path()
    if frontend is None:
        pytest.skip("home-assistant-frontend is not installed (scripts/bench installs it)")
    env = {
        **environment_without_coverage(),
        "BENCH_EXTRA_PYTHONPATH": frontend,
        "BENCH_HA_PYTHON": sys.executable,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "CPU s/1k rd" in out
    for name in ("ainsite", "baseline", "novacore", "floor", "stats_on", "stats_off"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), out
    # The scale block: 20 meters x 10 registers, each measure of both sides and their ratio.
    assert "scale: 20 meters x 10 registers = 220 entities through one entry" in out
    for measure in (
        "1. first value of every entity (s)",
        "2. set-up, all in the registry (s)",
        "3. memory per entity (KiB)",
        "4. second round, every new value (s)",
    ):
        line = next(line for line in out.splitlines() if measure in line)
        assert "n/a" not in line, line
    assert "entities with a value after round 1: scale 220, scale_floor 220" in out
    assert "ratios and targets:" in out
    assert "ainsite/baseline CPU per reading" in out
    assert "sustained" in out
    assert "statistics on/off CPU per reading" in out
    assert "hourly rows right" in out
