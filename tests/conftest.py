"""Fixtures: a real Home Assistant (pytest-homeassistant-custom-component) and real peers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
import logging
import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from simulator.novacore_server import NovacoreServer

SITE_ID = "sit-abc123"
SITE_NAME = "Home"

DEVICES: list[dict[str, Any]] = [
    {
        "id": "dev-inv",
        "name": "Sungrow Inverter",
        "type": "inverter",
        "state": "active",
        "hardware_id": "SN12345",
        "ders": [
            {"id": "der-pv", "name": "pv-array", "type": "solar"},
            {"id": "der-bat", "name": "battery_1", "type": "battery"},
        ],
    },
    {
        "id": "dev-meter",
        "name": "Kamstrup Meter",
        "type": "meter",
        "state": "active",
        "hardware_id": "KM-77",
        "ders": [{"id": "der-meter", "name": "grid-meter", "type": "meter"}],
    },
]


def environment_without_coverage() -> dict[str, str]:
    """Return this process's environment minus pytest-cov's, for the programs tests start.

    Those programs (Home Assistant processes of the demo and the benchmark) run from other
    folders, where coverage would not find this project's settings and would record data that
    cannot be combined with the suite's.
    """
    return {key: value for key, value in os.environ.items() if not key.startswith("COV_CORE_")}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load the integration from custom_components/."""


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


@pytest.fixture(autouse=True)
def deprecated_use_reports() -> Generator[DeprecatedUseReports]:
    """Fail any test during which Home Assistant reports a deprecated use by this integration.

    Autouse fixtures are set up first and torn down last, so the check also covers the set-up and
    the teardown (unload, stop) of the Home Assistant instance. A test that provokes a report on
    purpose empties `reports` after checking it.
    """
    collector = DeprecatedUseReports()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
    if collector.reports:
        pytest.fail(
            "Home Assistant reported a deprecated use by this integration:\n"
            + "\n".join(collector.reports),
            pytrace=False,
        )


@dataclass
class Novacore:
    """A running Novacore-compatible server with one identity and one site."""

    server: NovacoreServer
    key: Ed25519PrivateKey
    identity: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def private_key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def private_key_raw_b64(self) -> str:
        return base64.b64encode(self.key.private_bytes_raw()).decode()

    async def push(self, data: Any, **kwargs: Any) -> None:
        await self.server.push(SITE_ID, data, **kwargs)


@pytest.fixture
async def novacore(socket_enabled: None) -> AsyncGenerator[Novacore]:
    """Start a Novacore-compatible server on loopback."""
    server = NovacoreServer(keepalive_interval=0)
    await server.start()
    key = Ed25519PrivateKey.generate()
    identity = server.add_identity(base64.b64encode(key.public_key().public_bytes_raw()).decode())
    server.add_site(SITE_ID, SITE_NAME, DEVICES)
    try:
        yield Novacore(server, key, identity)
    finally:
        await server.stop()


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02
) -> Any:
    """Wait until predicate() is truthy, letting the event loop run.

    The timeout only guards against a hang (a busy machine is slow, not wrong): what a test
    proves is the condition, never how soon it held.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if result := predicate():
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


CUSTOMER_ID = "cust-4711"
SUBSCRIPTION_ID = "sub-1"
MQTT_USERNAME = "ha-user"
MQTT_PASSWORD = "s3cret-mqtt-pass"


@pytest.fixture
def mosquitto(socket_enabled: None, tmp_path: Any) -> Generator[Any]:
    """Start a real mosquitto with TLS, a password file, an ACL and persistence."""
    from homeassistant.util.ssl import client_context

    from simulator.broker import Mosquitto

    broker = Mosquitto(tmp_path / "broker")
    broker.add_user(MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID)
    broker.start()
    # Home Assistant's verifying client context trusts the test CA, as a real one trusts Ainsite's.
    client_context().load_verify_locations(cafile=str(broker.ca_path))
    try:
        yield broker
    finally:
        broker.stop()
