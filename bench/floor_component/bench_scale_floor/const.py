"""Shared state of the scale floor: its sensors by key, and those waiting to be added."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeassistant.helpers.device_registry import DeviceInfo

    from .sensor import FloorSensor

DOMAIN = "bench_scale_floor"
CONF_TOPIC = "topic"
CONF_CLIENT_ID = "client_id"
LAST_READING = "last_reading"
TOTAL_REGISTER = "2"


@dataclass
class ScaleFloorData:
    """The sensors by `{meter}_{register}` (and `{meter}_last_reading`), the MQTT task."""

    sensors: dict[str, FloorSensor] = field(default_factory=dict)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    """Each meter's device, one object shared by its sensors."""
    pending: list[FloorSensor] = field(default_factory=list)
    """Sensors made for readings of this turn of the event loop, added together at its end."""
    add: Callable[[list[FloorSensor]], None] | None = None
    task: asyncio.Task[None] | None = None
    errors: int = 0
