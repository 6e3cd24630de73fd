"""The fuzz campaign, short: generated and mutated inputs of both services through running entries.

`scripts/chaos --fuzz N [--seed S]` runs the same campaign with N inputs; the suite runs
SHORT_COUNT of them with a fixed seed.
"""

from __future__ import annotations

import os

from homeassistant.core import HomeAssistant
import pytest

from chaos import fuzz
from chaos.options import FUZZ_ENV, SEED_ENV
from chaos.report import format_table, save
from tests.helpers.brokers import Mosquitto
from tests.helpers.reporting import write_lines
from tests.helpers.site import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, SUBSCRIPTION_ID


async def test_fuzz_campaign(
    hass: HomeAssistant, mosquitto: Mosquitto, request: pytest.FixtureRequest
) -> None:
    """Nothing raised, no wrong state, no total backwards, the right signs decided."""
    setup = fuzz.FuzzSetup(
        hass,
        mosquitto,
        MQTT_USERNAME,
        MQTT_PASSWORD,
        CUSTOMER_ID,
        SUBSCRIPTION_ID,
        count=int(os.environ.get(FUZZ_ENV) or fuzz.SHORT_COUNT),
        seed=int(os.environ.get(SEED_ENV) or fuzz.SHORT_SEED),
    )
    result = await fuzz.run(setup)
    save(result)
    write_lines(request.config, format_table([result]))
    assert result.passed, format_table([result])
