"""The benchmark's `bench_gc.settle`: collect garbage and freeze what is left, before a phase.

A full collection of Home Assistant's heap (hundreds of milliseconds with thousands of entities)
lands in a measured phase at random and swamps what the phase measures; settled first, every
scenario starts its phase from the same frozen heap and pays only for what it allocates.
"""

from __future__ import annotations

import gc

from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

DOMAIN = "bench_gc"
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service."""

    def settle(call: ServiceCall) -> None:
        gc.collect()
        gc.freeze()

    hass.services.async_register(DOMAIN, "settle", settle)
    return True
