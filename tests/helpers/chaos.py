"""Chaos scenarios against the test site and customer, and the errors their Home Assistant logged."""

from __future__ import annotations

import logging

from homeassistant.core import HomeAssistant
import pytest

from chaos import mqtt, sse
from chaos.harness import UPSTREAM_LOGGER_NAME
from chaos.report import ScenarioResult
from tests.helpers.brokers import Mosquitto
from tests.helpers.site import (
    CUSTOMER_ID,
    DEVICES,
    MQTT_PASSWORD,
    MQTT_USERNAME,
    SITE_ID,
    SITE_NAME,
    SUBSCRIPTION_ID,
    Novacore,
)


def count_errors(result: ScenarioResult, caplog: pytest.LogCaptureFixture) -> None:
    """Count the error lines into the result, and note the first five; then check its targets.

    The upstream publisher stands for the service, outside Home Assistant: its errors are not
    Home Assistant's.
    """
    errors = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and not record.name.startswith(UPSTREAM_LOGGER_NAME)
    ]
    result.errors_logged = len(errors)
    for record in errors[:5]:
        result.notes.append(f"ERROR {record.name}: {record.getMessage()[:200]}")
    result.check_targets()


def sse_setup(hass: HomeAssistant, novacore: Novacore, full: bool) -> sse.SseSetup:
    """Return the set-up of an SSE scenario against the test site's server."""
    return sse.SseSetup(
        hass, novacore.server, SITE_ID, SITE_NAME, DEVICES, novacore.private_key_pem, full
    )


def mqtt_setup(hass: HomeAssistant, broker: Mosquitto, full: bool) -> mqtt.MqttSetup:
    """Return the set-up of an MQTT scenario against the test customer's broker."""
    return mqtt.MqttSetup(
        hass, broker, MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID, SUBSCRIPTION_ID, full
    )
