"""Smoke run of the benchmark harness (scripts/bench): tiny N, every scenario, one table.

It proves the harness works end to end (real Home Assistant processes, mosquitto, the Novacore
simulator, the floor integration); it asserts no performance target.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from simulator.broker import find_mosquitto

from .conftest import environment_without_coverage

ROOT = Path(__file__).resolve().parent.parent


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
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "ratios and targets:" in out
    assert "ainsite/baseline CPU per reading" in out
    assert "sustained" in out
    assert "statistics on/off CPU per reading" in out
    assert "hourly rows right" in out
