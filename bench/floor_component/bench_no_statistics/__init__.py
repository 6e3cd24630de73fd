"""The benchmark's switch: `bench_no_statistics:` in YAML turns Energy Telemetry's statistics off.

In this Home Assistant process no energy total of Energy Telemetry gets an hourly statistic.

Set up at start, before the benchmark adds its config entries: the same readings then run with
and without the statistics, and the difference is what the statistics cost. The integration has
no such switch; this component replaces the importer's method that starts a statistic.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

DOMAIN = "bench_no_statistics"
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Start no statistic for any point of Energy Telemetry in this process."""
    from custom_components.energy_telemetry.statistics import StatisticsImporter  # noqa: PLC0415

    def no_statistic(importer: StatisticsImporter, point: Any) -> None:
        return None

    StatisticsImporter.async_feed = no_statistic  # type: ignore[method-assign,assignment]
    return True
