"""Chaos scenarios, short: real peers on loopback, faults injected, Home Assistant measured.

`scripts/chaos` runs the same scenarios with the long parameters (CHAOS_FULL=1) and prints the
table of results.
"""

from __future__ import annotations

import os
from typing import Any

from homeassistant.core import HomeAssistant
import pytest

from chaos import bounds, mqtt, sse, system
from chaos.report import FULL_ENV, ScenarioResult, format_table, save
from tests.helpers.brokers import Mosquitto
from tests.helpers.chaos import count_errors, mqtt_setup, sse_setup
from tests.helpers.reporting import write_lines
from tests.helpers.site import Novacore

FULL = os.environ.get(FULL_ENV) == "1"
_RESULTS: list[ScenarioResult] = []


@pytest.fixture(scope="module", autouse=True)
def print_table(request: pytest.FixtureRequest) -> Any:
    """Print the table of results when the module is done."""
    yield
    if _RESULTS:
        write_lines(request.config, format_table(_RESULTS))


def _finish(result: ScenarioResult, caplog: pytest.LogCaptureFixture) -> None:
    count_errors(result, caplog)
    _RESULTS.append(result)
    save(result)
    assert result.passed, format_table([result])


@pytest.mark.parametrize("name", list(sse.SCENARIOS))
async def test_sse(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """An SSE fault: nothing lost, nothing wrong, reconnected within the backoff cap."""
    _finish(await sse.SCENARIOS[name](sse_setup(hass, novacore, FULL)), caplog)


@pytest.mark.parametrize("name", list(mqtt.SCENARIOS))
async def test_mqtt(
    hass: HomeAssistant, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """An MQTT fault: every reading the protocol guarantees arrives; totals never go back."""
    _finish(await mqtt.SCENARIOS[name](mqtt_setup(hass, mosquitto, FULL)), caplog)


async def test_invented_ders(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream inventing DER ids and fields: limits hold, memory stays, the site keeps going."""
    _finish(await bounds.invented_ders(sse_setup(hass, novacore, FULL)), caplog)


async def test_invented_meters(
    hass: HomeAssistant, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker inventing meters and registers: limits hold, memory stays, the meters go on."""
    _finish(await bounds.invented_meters(mqtt_setup(hass, mosquitto, FULL)), caplog)


async def test_system(
    hass: HomeAssistant,
    novacore: Novacore,
    mosquitto: Mosquitto,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hours of traffic of both services with random faults: totals end equal to the source's."""
    setup = system.SystemSetup(sse_setup(hass, novacore, FULL), mqtt_setup(hass, mosquitto, FULL))
    _finish(await system.run(setup), caplog)
