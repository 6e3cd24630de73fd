"""Unloading an Ainsite entry while it connects leaves no connection open.

paho connects its socket in an executor thread, which cancelling the connection attempt does not
stop. An unload that cancels an attempt must wait for that thread: otherwise the socket the thread
opens a moment later stays open (a broker connection that never closes, and a leaked task).
The test holds the thread at a gate, so the unload always comes while it is connecting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
import threading
from typing import Any

from homeassistant.core import HomeAssistant

from simulator.mqtt_peers import RefusingBroker

from .conftest import wait_for
from .test_repairs import _ainsite_entry


class GatedConnectExecutor(ThreadPoolExecutor):
    """Runs paho's socket connect only once the gate opens; everything else at once."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.gate = threading.Event()
        self.connecting = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if getattr(fn, "__name__", "") != "_client_connect":
            return super().submit(fn, *args, **kwargs)

        def gated() -> Any:
            self.connecting.set()
            self.gate.wait(30)
            return fn(*args, **kwargs)

        return super().submit(gated)


async def test_unload_while_the_socket_connects(hass: HomeAssistant, socket_enabled: None) -> None:
    loop = asyncio.get_running_loop()
    previous = loop._default_executor
    executor = GatedConnectExecutor()
    loop._default_executor = executor  # Home Assistant forbids set_default_executor
    try:
        async with RefusingBroker("refuse") as refuser:
            entry = _ainsite_entry(refuser.port)
            entry.add_to_hass(hass)
            assert await hass.config_entries.async_setup(entry.entry_id)
            await wait_for(executor.connecting.is_set)
            connection = entry.runtime_data.connection
            removal = hass.async_create_task(hass.config_entries.async_remove(entry.entry_id))
            await wait_for(lambda: connection.closing)
            for _ in range(20):  # the cancelled attempt has cleaned up what it could by now
                await asyncio.sleep(0)
            executor.gate.set()  # the thread connects only now
            assert await removal
            await hass.async_block_till_done()
            await wait_for(lambda: refuser.connections == 1)
            await wait_for(lambda: refuser.open_connections == 0)
    finally:
        executor.gate.set()
        loop._default_executor = previous
        executor.shutdown(wait=True)
