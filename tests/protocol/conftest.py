"""The protocol layer runs without a Home Assistant instance."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from tests.helpers.odd_server import OddServer


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant: the code under test does not use it."""


@pytest.fixture
async def odd(socket_enabled: None) -> AsyncGenerator[OddServer]:
    """A server answering Novacore paths with unusual shapes."""
    server = OddServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
