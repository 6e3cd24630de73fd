"""The bench's scale floor: Ainsite readings from MQTT made into sensors, with nothing else.

It is what the scale scenario's integration is compared with: the same messages from the same
broker, read through the same transport as the integration's (aiomqtt's connection with the
integration's own socket registration, paho's callback on the event loop, a persistent session
at QoS 1), and the same entities (per meter: one sensor per register and one for the last
reading, on the meter's device), so both pay Home Assistant's, the broker's and the transport's
cost alike. Per message it decodes the JSON, makes a sensor the first time a
(meter, register) shows up, else writes the new value, and moves the meter's last reading on.
The sensors a turn of the event loop made are added together at its end. At set-up it brings
back every sensor the entity registry has (register 2 with its stored value, as the integration
does), in one call.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
import json
import logging
from typing import Any

import aiomqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback

from custom_components.energy_telemetry.protocol.ainsite.client import _guard_socket_registration

from .const import CONF_CLIENT_ID, CONF_TOPIC, LAST_READING, ScaleFloorData
from .sensor import FloorSensor, make_sensor

PLATFORMS = [Platform.SENSOR]
_LOGGER = logging.getLogger(__name__)


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry[ScaleFloorData]) -> bool:
    """Set up the sensors from the registry, then subscribe."""
    data = ScaleFloorData()
    entry.runtime_data = data
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    reader = Reader(hass, data)
    data.task = entry.async_create_background_task(
        hass, _async_subscribe(entry, reader), "bench_scale_floor MQTT session"
    )
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry[ScaleFloorData]) -> bool:
    """Close the session first (as the integration does), then remove the sensors."""
    task = entry.runtime_data.task
    if task is not None:
        task.cancel()
        await asyncio.wait([task])
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def _async_subscribe(entry: ConfigEntry[ScaleFloorData], reader: Reader) -> None:
    conf = entry.data
    client = aiomqtt.Client(
        conf["host"],
        conf["port"],
        username=conf["username"],
        password=conf["password"],
        identifier=conf[CONF_CLIENT_ID],
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=False,
    )
    # As the integration: its socket registration (a PUBACK is written at once, not through a
    # writer callback), and messages handled as paho decodes them, on the event loop.
    _guard_socket_registration(client)
    client._client.on_message = reader.on_message  # noqa: SLF001
    async with client:
        await client.subscribe(conf[CONF_TOPIC], qos=1)
        await asyncio.Event().wait()  # until the unload cancels the task


class Reader:
    """Applies each message to the sensors."""

    def __init__(self, hass: HomeAssistant, data: ScaleFloorData) -> None:
        """Write to data's sensors."""
        self.hass = hass
        self.data = data
        self._flush_scheduled = False

    def on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        """Paho's callback: apply one reading (an error is counted and logged once)."""
        try:
            self.apply(message.topic, message.payload)
        except Exception:
            self.data.errors += 1
            if self.data.errors == 1:
                _LOGGER.exception("bench_scale_floor: a message could not be applied")

    @callback
    def apply(self, topic: str, payload: bytes) -> None:
        """Show a reading: its register's value and the meter's last reading."""
        meter = topic.rpartition("/")[2]
        body = json.loads(payload)
        register = str(body["register_id"])
        if "meter_reading" in body:
            value = float(body["meter_reading"])
            moment = str(body["data_timestamp_utc"])
        else:
            value = float(body["value"])
            moment = str(body["measurement_end_timestamp_utc"])
        self._show(meter, register, value)
        last = self.data.sensors.get(f"{meter}_{LAST_READING}")
        # One format throughout ("...T12:00:00.000Z"): the text compares as the time does.
        if last is None or last.raw is None or moment > last.raw:
            last = self._show(meter, LAST_READING, datetime.fromisoformat(moment))
            last.raw = moment

    def _show(self, meter: str, register: str, value: float | datetime) -> FloorSensor:
        key = f"{meter}_{register}"
        data = self.data
        sensor = data.sensors.get(key)
        if sensor is None:
            sensor = data.sensors[key] = make_sensor(meter, register, data.devices)
            sensor.set_value(value)
            data.pending.append(sensor)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.hass.loop.call_soon(self._flush)
        else:
            sensor.set_value(value)
        return sensor

    @callback
    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self.data.pending = self.data.pending, []
        if pending and self.data.add is not None:
            self.data.add(pending)
