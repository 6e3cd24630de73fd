"""Without the recorder the integration works as before: no statistics, one debug line."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.core import HomeAssistant
import pytest

from simulator.ainsite_publisher import payload_v1
from tests.helpers.ainsite import ENERGY, at, setup_ainsite, topic
from tests.helpers.waiting import wait_for


async def test_no_recorder_no_statistics(
    hass: HomeAssistant, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert "recorder" not in hass.config.components
    with caplog.at_level(logging.DEBUG, logger="custom_components.energy_telemetry"):
        entry = await setup_ainsite(hass, mosquitto)
        await mosquitto.apublish_many(
            [(topic(meter), payload_v1(1.0, at(60))) for meter in ("mtr-1", "mtr-2")]
        )
        await wait_for(lambda: entry.runtime_data.stats.accepted == 2)
    await wait_for(lambda: hass.states.get(ENERGY))
    assert hass.states.get(ENERGY).state == "1.0"
    importer = entry.runtime_data.statistics
    assert importer is not None
    assert not importer.enabled
    assert not importer.feeds
    assert caplog.text.count("the recorder is not loaded") == 1
    assert "statistics" not in entry.runtime_data.diagnostics()
    assert await hass.config_entries.async_unload(entry.entry_id)
