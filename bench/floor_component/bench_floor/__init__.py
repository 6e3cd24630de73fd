"""The benchmark's floor: sensors written from a loop inside Home Assistant, no parsing, no network.

Service `bench_floor.create` adds sensors (10 per device, like the meters of the Ainsite bench);
service `bench_floor.run` writes `count` values round-robin: value `base + start + i` at monotonic
time `t0 + i / rate` (rate 0: as fast as possible, yielding to the loop every 100 writes).
"""

from __future__ import annotations

import asyncio
import time

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, ServiceCall, callback

from .const import DOMAIN, FloorData

PLATFORMS = [Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry[FloorData]) -> bool:
    """Set up the sensor platform and the two services."""
    data = FloorData()
    entry.runtime_data = data
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    @callback
    def _create(call: ServiceCall) -> None:
        assert data.add is not None
        data.add(int(call.data["count"]))

    @callback
    def _run(call: ServiceCall) -> None:
        entry.async_create_background_task(
            hass,
            _async_write(
                data,
                int(call.data["base"]),
                int(call.data["start"]),
                int(call.data["count"]),
                float(call.data.get("rate", 0)),
                float(call.data.get("t0", time.monotonic())),
            ),
            "bench_floor writer",
        )

    hass.services.async_register(DOMAIN, "create", _create)
    hass.services.async_register(DOMAIN, "run", _run)
    return True


async def _async_write(
    data: FloorData, base: int, start: int, count: int, rate: float, t0: float
) -> None:
    entities = data.entities
    size = len(entities)
    index = 0
    while index < count:
        if rate > 0:
            due = min(count, int((time.monotonic() - t0) * rate) + 1)
        else:
            due = min(count, index + 100)
        while index < due:
            entity = entities[(start + index) % size]
            entity.set_value(float(base + start + index))
            index += 1
        await asyncio.sleep(0.002 if rate > 0 else 0)


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry[FloorData]) -> bool:
    """Unload the platform."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
