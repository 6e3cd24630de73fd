"""Chaos scenarios, short: real peers on loopback, faults injected, Home Assistant measured.

`scripts/chaos` runs the same scenarios with the long parameters (CHAOS_FULL=1) and prints the
table of results.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from homeassistant.core import HomeAssistant
import pytest

from chaos import mqtt, sse, system
from chaos.harness import UPSTREAM_LOGGER_NAME
from chaos.report import FULL_ENV, ScenarioResult, format_table, save

from .conftest import (
    CUSTOMER_ID,
    DEVICES,
    MQTT_PASSWORD,
    MQTT_USERNAME,
    SITE_ID,
    SITE_NAME,
    SUBSCRIPTION_ID,
    Novacore,
)

FULL = os.environ.get(FULL_ENV) == "1"
_RESULTS: list[ScenarioResult] = []


@pytest.fixture(scope="module", autouse=True)
def print_table(request: pytest.FixtureRequest) -> Any:
    """Print the table of results when the module is done."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if _RESULTS and reporter is not None:
        reporter.write_line("")
        reporter.write_line(format_table(_RESULTS))


def _finish(result: ScenarioResult, caplog: pytest.LogCaptureFixture) -> None:
    # The upstream publisher stands for the service, outside Home Assistant: its errors are not HA's.
    errors = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and not record.name.startswith(UPSTREAM_LOGGER_NAME)
    ]
    result.errors_logged = len(errors)
    for record in errors[:5]:
        result.notes.append(f"ERROR {record.name}: {record.getMessage()[:200]}")
    result.check_targets()
    _RESULTS.append(result)
    save(result)
    assert result.passed, format_table([result])


@pytest.mark.parametrize("name", list(sse.SCENARIOS))
async def test_sse(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """An SSE fault: nothing lost, nothing wrong, reconnected within the backoff cap."""
    setup = sse.SseSetup(
        hass, novacore.server, SITE_ID, SITE_NAME, DEVICES, novacore.private_key_pem, FULL
    )
    _finish(await sse.SCENARIOS[name](setup), caplog)


@pytest.mark.parametrize("name", list(mqtt.SCENARIOS))
async def test_mqtt(
    hass: HomeAssistant, mosquitto: Any, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """An MQTT fault: every reading the protocol guarantees arrives; totals never go back."""
    setup = mqtt.MqttSetup(
        hass, mosquitto, MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID, SUBSCRIPTION_ID, FULL
    )
    _finish(await mqtt.SCENARIOS[name](setup), caplog)


async def test_system(
    hass: HomeAssistant,
    novacore: Novacore,
    mosquitto: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hours of traffic of both services with random faults: totals end equal to the source's."""
    setup = system.SystemSetup(
        sse.SseSetup(
            hass, novacore.server, SITE_ID, SITE_NAME, DEVICES, novacore.private_key_pem, FULL
        ),
        mqtt.MqttSetup(
            hass, mosquitto, MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID, SUBSCRIPTION_ID, FULL
        ),
    )
    _finish(await system.run(setup), caplog)
