"""The suite's guard against deprecated use: Home Assistant's reports and deprecation warnings."""

from __future__ import annotations

import logging
import warnings

from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
from homeassistant.loader import async_get_integration
import pytest

from custom_components.energy_telemetry.const import DOMAIN
from tests.helpers.deprecation import DeprecatedUseReports, is_deprecated_use_report


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_report_lines_are_recognised() -> None:
    assert is_deprecated_use_report(
        _record(
            "homeassistant.helpers.frame",
            logging.WARNING,
            "Detected that custom integration 'energy_telemetry' has an update listener and"
            " should use it for scheduling a reload at custom_components/energy_telemetry/"
            "config_flow.py, line 1: x. This will stop working in Home Assistant 2026.12.0",
        )
    )
    assert is_deprecated_use_report(
        _record(
            "homeassistant.helpers.entity",
            logging.WARNING,
            "Entity sensor.x (<class 'x'>) is using deprecated ..., please report it to the"
            " author of the 'energy_telemetry' custom integration",
        )
    )
    # Another integration's report, our own log lines and debug lines are not ours to fail on.
    assert not is_deprecated_use_report(
        _record(
            "homeassistant.helpers.frame",
            logging.WARNING,
            "Detected that custom integration 'other' does something deprecated",
        )
    )
    assert not is_deprecated_use_report(
        _record(
            "custom_components.energy_telemetry",
            logging.WARNING,
            "energy_telemetry: connection down (deprecated words in a reason)",
        )
    )


async def test_a_real_frame_report_is_caught(
    hass: HomeAssistant, deprecated_use_reports: DeprecatedUseReports
) -> None:
    """Home Assistant's own frame helper, as a deprecated API calls it, is caught."""
    await async_get_integration(hass, DOMAIN)
    frame.report_usage(
        "calls a deprecated test API",
        breaks_in_ha_version="2099.1.0",
        integration_domain=DOMAIN,
    )
    assert len(deprecated_use_reports.reports) == 1
    assert "energy_telemetry" in deprecated_use_reports.reports[0]
    deprecated_use_reports.reports.clear()  # provoked on purpose: not a failure


def test_deprecation_warnings_from_our_code_are_errors() -> None:
    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit(
            "old API",
            DeprecationWarning,
            "sensor.py",
            1,
            module="custom_components.energy_telemetry.sensor",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.warn_explicit("old API", DeprecationWarning, "x.py", 1, module="other_package")
    assert caught
