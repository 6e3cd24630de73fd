"""Chaos with the recorder: hourly statistics after Home Assistant was down (short parameters).

`scripts/chaos` runs it with the long ones (CHAOS_FULL=1) next to tests/tools/test_chaos.py.
"""

from __future__ import annotations

import os

from homeassistant.core import HomeAssistant
import pytest

from chaos import statistics
from chaos.report import FULL_ENV, format_table, save
from tests.helpers.brokers import Mosquitto
from tests.helpers.chaos import count_errors, mqtt_setup

FULL = os.environ.get(FULL_ENV) == "1"


@pytest.fixture
def before_home_assistant(recorder_first: None) -> None:
    """A real recorder."""


async def test_statistics_after_ha_was_down(
    hass: HomeAssistant, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Six hours of queued readings land in their hours, for every meter."""
    result = await statistics.ha_down_6h(mqtt_setup(hass, mosquitto, FULL))
    count_errors(result, caplog)
    save(result)
    print("\n" + format_table([result]))  # noqa: T201  (shown with -s, and by scripts/chaos)
    assert result.passed, format_table([result])
