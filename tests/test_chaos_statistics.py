"""Chaos with the recorder: hourly statistics after Home Assistant was down (short parameters).

`scripts/chaos` runs it with the long ones (CHAOS_FULL=1) next to tests/test_chaos.py.
"""

from __future__ import annotations

from collections.abc import Generator
import logging
import os
from typing import Any

from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
import pytest

from chaos import mqtt, statistics
from chaos.harness import UPSTREAM_LOGGER_NAME
from chaos.report import FULL_ENV, format_table, save

from .conftest import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, SUBSCRIPTION_ID

FULL = os.environ.get(FULL_ENV) == "1"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> Generator[None]:
    """A real recorder (set up before Home Assistant starts) and the integration."""
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


async def test_statistics_after_ha_was_down(
    hass: HomeAssistant, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Six hours of queued readings land in their hours, for every meter."""
    setup = mqtt.MqttSetup(
        hass, mosquitto, MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID, SUBSCRIPTION_ID, FULL
    )
    result = await statistics.ha_down_6h(setup)
    errors = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and not record.name.startswith(UPSTREAM_LOGGER_NAME)
    ]
    result.errors_logged = len(errors)
    for record in errors[:5]:
        result.notes.append(f"ERROR {record.name}: {record.getMessage()[:200]}")
    result.check_targets()
    save(result)
    print("\n" + format_table([result]))  # noqa: T201  (shown with -s, and by scripts/chaos)
    assert result.passed, format_table([result])
