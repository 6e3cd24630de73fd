"""Ainsite QoS 1 messages are acknowledged only once applied: none is lost around restarts."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.energy_telemetry.protocol.ainsite import AinsiteConnection
from simulator.ainsite_publisher import payload_v1
from tests.helpers.ainsite import ENERGY, at, setup_ainsite, topic
from tests.helpers.entities import record_states
from tests.helpers.site import CUSTOMER_ID, MQTT_PASSWORD, MQTT_USERNAME, SUBSCRIPTION_ID
from tests.helpers.waiting import wait_for

COUNT = 300


def _shown(values: list[float]) -> list[float]:
    """The values an entity went through; a restored value repeats the last one, not counted."""
    return [value for value, _ in itertools.groupby(values)]


async def test_restarts_under_load_show_every_reading(hass: HomeAssistant, mosquitto: Any) -> None:
    """Two restarts 0.3 s apart while readings stream in: every reading is shown, once, in order.

    Readings queued in the client when it stops are applied before the entities go, or, not yet
    acknowledged, come again in the next connection of the persistent session.
    """
    entry = await setup_ainsite(hass, mosquitto)
    values: list[float] = []
    record_states(hass, ENERGY, values)
    await mosquitto.apublish(topic("mtr-1"), payload_v1(1.0, at(1)))
    await wait_for(lambda: values == [1.0])

    messages = [(topic("mtr-1"), payload_v1(float(n), at(n))) for n in range(2, COUNT + 1)]
    publishing = asyncio.create_task(mosquitto.apublish_many(messages))
    await wait_for(lambda: len(values) >= 20)
    for pause in (0.3, 0.0):
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await asyncio.sleep(pause)
    await publishing

    await wait_for(lambda: values and values[-1] == float(COUNT), timeout=60)
    assert _shown(values) == [float(n) for n in range(1, COUNT + 1)]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_message_acknowledged_only_once_handled(hass: HomeAssistant, mosquitto: Any) -> None:
    """A QoS 1 message is acknowledged only after it was handled.

    The handler stops the broker while it handles the first message (as if Home Assistant went
    down right then): no PUBACK can have left, so the broker keeps the message in the persistent
    session and delivers it again when the same client comes back.
    """
    received: list[bytes] = []

    def on_message(_topic: str, payload: bytes) -> None:
        received.append(payload)
        if len(received) == 1:
            mosquitto.stop()  # SIGTERM: the broker saves the session, message still unacknowledged

    connection = AinsiteConnection(
        "127.0.0.1",
        mosquitto.tls_port,
        MQTT_USERNAME,
        MQTT_PASSWORD,
        "ha-test-ack-after-handling",
        CUSTOMER_ID,
        SUBSCRIPTION_ID,
        mosquitto.client_tls_context(),
        on_message=on_message,
        on_connected=lambda: None,
        on_disconnected=lambda _error: None,
        backoff_initial=0.05,
        backoff_max=0.2,
    )
    task = asyncio.create_task(connection.run())
    await wait_for(lambda: connection.connected)
    await mosquitto.apublish(topic("mtr-1"), payload_v1(5.0, at(5)))
    await wait_for(lambda: received and not mosquitto.running)
    mosquitto.start()
    await wait_for(lambda: len(received) == 2)
    assert received[1] == received[0]
    await connection.close()
    assert task.done()
