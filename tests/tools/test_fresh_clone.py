"""A fresh clone: every script answers --help at once, before it prepares anything.

The clone is of this checkout's HEAD, without .venv or .demo; a script that started creating a
virtual environment or installing Home Assistant would leave one behind (and take minutes).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess

import pytest

from tests.helpers.repository import REPO_ROOT

SCRIPTS = sorted(
    path.name
    for path in (REPO_ROOT / "scripts").iterdir()
    if path.is_file() and os.access(path, os.X_OK) and not path.name.startswith("_")
)
# What a script's preparation would create in the clone.
PREPARED = (".venv", ".venv-latest", ".venv-bench-frontend", ".demo")
# Generous: answering takes well under a second; preparing takes minutes.
HELP_TIMEOUT = 30


def _git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of HEAD: the committed files only, as a new user gets them."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        head = _git("rev-parse", "HEAD")
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    target = tmp_path_factory.mktemp("fresh") / "energy_telemetry"
    _git("clone", "--quiet", "--shared", "--no-checkout", str(REPO_ROOT), str(target))
    _git("checkout", "--quiet", "--detach", head, cwd=target)
    return target


def _environment() -> dict[str, str]:
    """The caller's environment minus any activated virtual environment and coverage hooks."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH") and not key.startswith("COV_")
    }
    venv_bins = {str(REPO_ROOT / ".venv" / "bin"), str(REPO_ROOT / ".venv-latest" / "bin")}
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", os.defpath).split(os.pathsep) if entry not in venv_bins
    )
    return env


def _script(clone: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/<script> in the clone as a new user would, from a plain shell."""
    return subprocess.run(
        [str(clone / "scripts" / script), *args],
        cwd=clone,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_every_script_is_checked() -> None:
    """The scripts users run (README) are all in the list below."""
    assert {"bench", "chaos", "demo", "screenshot", "test"} <= set(SCRIPTS), SCRIPTS


@pytest.mark.timeout(HELP_TIMEOUT * 2)
@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_answers_at_once_in_a_fresh_clone(clone: Path, script: str, option: str) -> None:
    """scripts/<name> --help prints its usage and exits 0, preparing nothing."""
    assert not any((clone / name).exists() for name in PREPARED)
    result = _script(clone, script, option)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: scripts/{script}"), result.stdout
    left = [name for name in PREPARED if (clone / name).exists()]
    assert not left, f"scripts/{script} {option} prepared {left}"


def test_help_wins_wherever_it_stands(clone: Path) -> None:
    """Options before --help do not start the work either (argparse's rule)."""
    result = _script(clone, "demo", "--port", "8125", "--help")
    assert result.returncode == 0, result.stderr
    assert "--simulators-only" in result.stdout
    assert not (clone / ".demo").exists()


def test_bench_starts_home_assistant_by_an_absolute_interpreter(
    socket_enabled: None, tmp_path: Path
) -> None:
    """A relative interpreter path (.venv/bin/python) still names it from the config dir."""
    from simulator.homeassistant import HomeAssistantProcess

    config = tmp_path / "config"
    config.mkdir()
    relative = os.path.relpath(REPO_ROOT / ".venv" / "bin" / "python")
    process = HomeAssistantProcess(relative, config)
    assert Path(process.python).is_absolute()
    assert Path(process.python) == Path(relative).absolute()
    assert HomeAssistantProcess("python3", config).python == "python3"  # looked up on PATH
