"""Fixtures of every layer: the guard against deprecated use, the integration loaded into a real
Home Assistant (pytest-homeassistant-custom-component; the protocol layer opts out) and real peers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from homeassistant.util.ssl import client_context
import pytest

from tests.helpers.brokers import Mosquitto
from tests.helpers.deprecation import DeprecatedUseReports
from tests.helpers.site import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, Novacore

if TYPE_CHECKING:
    from homeassistant.components.recorder import Recorder


@pytest.fixture
def before_home_assistant() -> None:
    """What must be set up before Home Assistant starts: nothing, unless a module overrides it."""


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    before_home_assistant: None, enable_custom_integrations: None
) -> None:
    """Load the integration from custom_components/ into Home Assistant."""


@pytest.fixture
def recorder_first(recorder_mock: Recorder) -> Generator[None]:
    """A real recorder, for a module whose `before_home_assistant` asks for it (the recorder
    must be set up before Home Assistant starts).

    The harness logs every SQL statement at info level; that only slows these tests down.
    """
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


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


@pytest.fixture
async def novacore(socket_enabled: None) -> AsyncGenerator[Novacore]:
    """Start a Novacore-compatible server on loopback with the test site."""
    novacore = await Novacore.start()
    try:
        yield novacore
    finally:
        await novacore.server.stop()


@pytest.fixture
def mosquitto(socket_enabled: None, tmp_path: Path) -> Generator[Mosquitto]:
    """Start a real mosquitto with TLS, a password file, an ACL and persistence."""
    broker = Mosquitto(tmp_path / "broker")
    broker.add_user(MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID)
    broker.start()
    # Home Assistant's verifying client context trusts the test CA, as a real one trusts Ainsite's.
    client_context().load_verify_locations(cafile=str(broker.ca_path))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """An HTTP session of the test's own, as a library user or a client of the simulator has."""
    async with aiohttp.ClientSession() as http:
        yield http
