"""Home Assistant's reports of a deprecated use by this integration, as the suite's guard sees them."""

from __future__ import annotations

import logging

DOMAIN = "energy_telemetry"
_REPORT_MARKERS = (
    "Detected that custom integration",
    "report it to the author",
    "create a bug report",
    "deprecated",
)


def is_deprecated_use_report(record: logging.LogRecord) -> bool:
    """Return True for Home Assistant's report of a deprecated use by this integration.

    Home Assistant reports a custom integration's use of a deprecated or wrong API in a log line
    (its frame helper: "Detected that custom integration 'energy_telemetry' ...", entity and
    registry helpers: "... please report it to the author of the 'energy_telemetry' custom
    integration"), not by raising: only the log shows it.
    """
    if not record.name.startswith("homeassistant") or record.levelno < logging.WARNING:
        return False
    message = record.getMessage()
    return DOMAIN in message and any(marker in message for marker in _REPORT_MARKERS)


class DeprecatedUseReports(logging.Handler):
    """Collects Home Assistant's reports of deprecated use by this integration during a test."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if is_deprecated_use_report(record):
            self.reports.append(record.getMessage())
