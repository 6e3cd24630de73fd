"""The benchmark's switch: `bench_no_statistics:` in YAML turns Energy Telemetry's statistics off.

Set up at start, before the benchmark adds its config entries: the same readings then run with
and without the hourly statistics, and the difference is what the statistics cost.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

DOMAIN = "bench_no_statistics"
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Switch the statistics of Energy Telemetry off for this process."""
    from custom_components.energy_telemetry import statistics  # noqa: PLC0415

    statistics.ENABLED = False
    return True
