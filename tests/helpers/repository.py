"""The repository's paths and the environment of the programs tests start from it.

Needs neither the test harness nor a conftest.py: the tests that run real Home Assistant
processes import it when CI runs them with --noconftest.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = REPO_ROOT / "custom_components" / "energy_telemetry"


def environment_without_coverage() -> dict[str, str]:
    """Return this process's environment minus pytest-cov's, for the programs tests start.

    Those programs (Home Assistant processes of the demo and the benchmark) run from other
    folders, where coverage would not find this project's settings and would record data that
    cannot be combined with the suite's.
    """
    return {key: value for key, value in os.environ.items() if not key.startswith("COV_CORE_")}
