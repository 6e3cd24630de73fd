"""Fuzzed and generated payloads of both services through running entries: no exception, every
state what the last applied reading says."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import json
import logging
import math
import random
from typing import Any
import warnings

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest

from chaos.fuzz_inputs import generated_readings, valid_v1
from custom_components.energy_telemetry.const import DOMAIN
from simulator.wire import device_sn_of, to_legacy
from tests.helpers.ainsite import setup_ainsite, topic
from tests.helpers.fuzz import ainsite_inputs, encode, novacore_inputs
from tests.helpers.novacore import send, setup_fast, setup_novacore
from tests.helpers.reporting import tried_report
from tests.helpers.site import DEVICES, SITE_ID, Novacore
from tests.helpers.waiting import wait_for

TRIED: Counter[str] = Counter()


report_tried = tried_report(TRIED)


_EXPECTED: dict[str, dict[str, tuple[str, Callable[[float], float]]]] = {
    # The public contract, written out: wire field -> (entity key, Home Assistant's value).
    "pv": {
        "W": ("power", lambda v: 0.0 - v),
        "mppt1_V": ("mppt1_voltage", float),
        "mppt1_A": ("mppt1_current", lambda v: 0.0 - v),
        "mppt1_W": ("mppt1_power", lambda v: 0.0 - v),
        "mppt2_A": ("mppt2_current", lambda v: 0.0 - v),
        "lower_limit_W": ("curtailment_limit", lambda v: 0.0 - v),
        "rated_power_W": ("rated_power", float),
        "installed_power_W": ("installed_power", float),
    },
    "battery": {
        "W": ("power", lambda v: 0.0 - v),
        "A": ("current", lambda v: 0.0 - v),
        "V": ("voltage", float),
        "SoC_nom_fract": ("state_of_charge", lambda v: v * 100.0),
        "upper_limit_W": ("charge_limit", float),
        "lower_limit_W": ("discharge_limit", lambda v: 0.0 - v),
        "capacity_kWh": ("capacity", float),
        "min_soc_fract": ("min_state_of_charge", lambda v: v * 100.0),
    },
    "meter": {
        "W": ("power", float),
        "Hz": ("frequency", float),
        "L1_V": ("l1_voltage", float),
        "L1_A": ("l1_current", float),
        "L1_W": ("l1_power", float),
        "L3_W": ("l3_power", float),
    },
    "inverter": {
        "W": ("power", lambda v: 0.0 - v),
        "VA": ("apparent_power", float),
        "VAR": ("reactive_power", float),
        "dc_W": ("dc_power", lambda v: 0.0 - v),
        "dc_A": ("dc_current", lambda v: 0.0 - v),
        "L2_W": ("l2_power", lambda v: 0.0 - v),
        "heatsink_C": ("heatsink_temperature", float),
        "rated_power_VA": ("rated_apparent_power", float),
        "phases": ("phases", float),
    },
    "v2x_charger": {
        "W": ("power", float),
        "A": ("current", float),
        "dc_W": ("dc_power", float),
        "vehicle_soc_fract": ("vehicle_state_of_charge", lambda v: v * 100.0),
        "max_charge_power_W": ("max_charge_power", float),
        "capacity_Wh": ("vehicle_capacity", lambda v: v / 1000.0),
        "L1_A": ("l1_current", float),
    },
}
_STATUS = {"charging": "charging", "unavailable": "not_ready", "sleeping": "sleeping"}


async def test_fuzzed_payloads_through_the_integration(
    hass: HomeAssistant, mosquitto: Any, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Fuzzed MQTT payloads and SSE events reach the real handlers: states stay numeric."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mqtt_samples = [ainsite_inputs.example() for _ in range(150)]
        sse_samples = [novacore_inputs.example() for _ in range(150)]
    mqtt_samples.append(encode(valid_v1(5.0, "2024-11-21T12:00:00Z")))
    # Without a timestamp: a fuzzed meter reading with a later one cannot make it look stale.
    sse_samples.append(json.dumps({"type": "meter", "der_id": "der-meter", "W": 7}))
    TRIED["integration (mqtt + sse)"] += len(mqtt_samples) + len(sse_samples)

    mqtt_entry = await setup_ainsite(hass, mosquitto)
    nova_entry = await setup_novacore(hass, novacore)
    await mosquitto.apublish_many([(topic("mtr-fuzz"), payload) for payload in mqtt_samples])
    for sample in sse_samples:
        await novacore.server.push(SITE_ID, sample)
    coordinator = mqtt_entry.runtime_data
    await wait_for(
        lambda: (
            coordinator.stats.accepted + sum(coordinator.stats.rejected.values())
            >= len(mqtt_samples)
        ),
        120,  # a hang guard
    )
    await wait_for(lambda: hass.states.get("sensor.grid_meter_power") is not None, 120)
    await hass.async_block_till_done()
    for state in hass.states.async_all("sensor"):
        attributes = state.attributes
        if (
            state.state in ("unknown", "unavailable")
            or attributes.get("device_class") == "timestamp"
        ):
            continue
        if attributes.get("device_class") == "enum":
            assert state.state in attributes["options"], (state.entity_id, state.state)
        elif "unit_of_measurement" in attributes or "state_class" in attributes:
            assert math.isfinite(float(state.state)), (state.entity_id, state.state)
        else:  # text (an EV charger's protocol)
            assert 0 < len(state.state) <= 255
    for state in hass.states.async_all("binary_sensor"):
        assert state.state in ("on", "off", "unknown", "unavailable"), state
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    assert await hass.config_entries.async_unload(nova_entry.entry_id)


async def test_generated_readings_give_the_right_states(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Generated readings of every DER type, flat or in the data-models' shape, through a
    running entry: every entity shows what the last applied reading of its DER says."""
    entry = await setup_fast(hass, novacore)
    samples = generated_readings(150, random.Random(7))
    TRIED["integration (generated DER readings)"] += len(samples)
    expected: dict[tuple[str, str, str], Any] = {}
    last: dict[str, int] = {}
    for index, reading in enumerate(samples):
        kind, der = reading["type"], reading["der_id"]
        # Mostly newer and newer; every fifth one older than the DER's last: it must change nothing.
        reading["timestamp"] = 1_709_740_800_000 + (index if index % 5 else index - 50) * 1000
        # Types whose documented wire is also the legacy one's signs may go nested.
        if kind in ("pv", "inverter", "v2x_charger") and index % 2:
            data = to_legacy(reading, device_sn_of(DEVICES, der))
        else:
            data = reading
        await send(hass, novacore, entry, data)
        if reading["timestamp"] <= last.get(der, 0):
            continue  # older than the last applied one: dropped, nothing changes
        last[der] = reading["timestamp"]
        for field, raw in reading.items():
            if field in _EXPECTED[kind]:
                key, convert = _EXPECTED[kind][field]
                expected[(der, "sensor", key)] = str(convert(raw))
        if kind == "v2x_charger":
            expected[(der, "sensor", "charge_limit")] = str(float(reading["upper_limit_W"][2]))
            expected[(der, "sensor", "status")] = _STATUS[reading["status"]]
            plug = "on" if reading["plug_connected"] else "off"
            expected[(der, "binary_sensor", "plug_connected")] = plug
    registry = er.async_get(hass)
    assert len(expected) > 35  # most of the 41 entities the fields above feed
    for (der, domain, key), state in expected.items():
        entity_id = registry.async_get_entity_id(domain, DOMAIN, f"{SITE_ID}_{der}_{key}")
        assert entity_id is not None, (der, key)
        shown = hass.states.get(entity_id)
        assert shown is not None
        if domain == "sensor" and state not in _STATUS.values():
            # Home Assistant writes a float with up to 15 significant digits.
            assert math.isclose(float(shown.state), float(state), rel_tol=1e-14, abs_tol=1e-300), (
                der,
                key,
                shown.state,
                state,
            )
        else:
            assert shown.state == state, (der, key)
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        or (r.name.startswith("custom_components.") and r.levelno >= logging.WARNING)
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)
