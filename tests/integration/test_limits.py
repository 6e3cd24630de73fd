"""Bounded by design: what a peer sends beyond an entry's limits is dropped, said once, counted.

Each limit: one warning naming it, a counter in diagnostics, a repair issue; what the entry
already has keeps working; the issue goes with the entry's unload.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest

from custom_components.energy_telemetry.ainsite.coordinator import (
    MAX_METERS,
    MAX_REGISTERS_PER_METER,
)
from custom_components.energy_telemetry.const import DOMAIN
from custom_components.energy_telemetry.novacore.coordinator import MAX_DERS, MAX_FIELDS_PER_DER
from simulator.ainsite_publisher import payload_v1, payload_v2
from tests.helpers.ainsite import at, setup_ainsite, topic
from tests.helpers.novacore import send, setup_fast
from tests.helpers.site import SITE_ID, TS, Novacore
from tests.helpers.waiting import wait_for


def _issue(hass: HomeAssistant, kind: str, entry: Any) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


def _warnings(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    text = f"the {kind.replace('_', ' ')} of"
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


def test_the_limits_are_well_above_any_real_site() -> None:
    assert (MAX_METERS, MAX_REGISTERS_PER_METER) == (5_000, 50)
    assert (MAX_DERS, MAX_FIELDS_PER_DER) == (250, 200)


async def test_fields_per_der_are_capped(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A DER sending ever more fields floods neither the entity registry nor the coordinator."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    flood = {f"x{index}_W": index for index in range(MAX_FIELDS_PER_DER + 50)}
    await send(hass, novacore, entry, {"type": "gadget", "timestamp": TS, **flood})
    group = coordinator.data["gadget"]
    assert len(group.points) == MAX_FIELDS_PER_DER
    assert len(group.fields) == MAX_FIELDS_PER_DER  # nothing kept of the dropped fields
    registry = er.async_get(hass)
    gadget = [
        entity
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
        if entity.unique_id.startswith(f"{SITE_ID}_gadget_")
    ]
    assert len(gadget) == MAX_FIELDS_PER_DER
    event = {"type": "gadget", "timestamp": TS + 1, "new_W": 1, "x0_W": 7}
    await send(hass, novacore, entry, event)
    assert group.points["x0_w"].value == 7.0  # what it had keeps working
    assert coordinator.dropped_at_limit["fields_limit"] == 51
    assert len(_warnings(caplog, "fields_limit")) == 1
    issue = _issue(hass, "fields_limit", entry)
    assert issue is not None
    assert not issue.is_fixable
    assert issue.translation_key == "fields_limit"
    assert issue.translation_placeholders == {"name": entry.title, "limit": "200", "item": "gadget"}
    diagnostics = coordinator.diagnostics()["limits"]
    assert diagnostics["fields_limit"] == {"limit": 200, "dropped": 51}
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert _issue(hass, "fields_limit", entry) is None


async def test_ders_beyond_the_limit_are_dropped(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream inventing DER ids without end: the site keeps its DERs, and no more."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(
        hass, novacore, entry, {"type": "meter", "der_id": "der-meter", "W": 10, "timestamp": TS}
    )
    known = len(coordinator.data)
    coordinator.limits["ders_limit"] = known - 1 + 3  # the site's consumption is no DER
    for index in range(10):
        event = {"type": "pv", "der_id": f"der-x{index}", "W": -5, "timestamp": TS + index}
        await send(hass, novacore, entry, event)
    assert len(coordinator.data) == known + 3
    assert coordinator.dropped_at_limit["ders_limit"] == 7
    assert len(_warnings(caplog, "ders_limit")) == 1
    issue = _issue(hass, "ders_limit", entry)
    assert issue is not None
    assert issue.translation_placeholders["item"] == "der-x3"
    # What the site had keeps working.
    await send(
        hass,
        novacore,
        entry,
        {"type": "meter", "der_id": "der-meter", "W": 20, "timestamp": TS + 99},
    )
    assert coordinator.data["der-meter"].points["power"].value == 20.0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_meters_and_registers_beyond_the_limits_are_dropped(
    hass: HomeAssistant, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_ainsite(hass, mosquitto)
    coordinator = entry.runtime_data
    coordinator.limits.update(meters_limit=2, registers_limit=3)
    applied = coordinator.stats

    async def publish(messages: list[tuple[str, bytes]]) -> None:
        before = applied.accepted
        await mosquitto.apublish_many(messages)
        await wait_for(lambda: applied.accepted == before + len(messages))
        await hass.async_block_till_done()

    await publish([(topic(f"mtr-{index}"), payload_v1(1.0, at(index))) for index in range(5)])
    assert sorted(coordinator.data) == ["mtr-0", "mtr-1"]
    assert coordinator.dropped_at_limit["meters_limit"] == 3
    assert _issue(hass, "meters_limit", entry).translation_placeholders["item"] == "mtr-2"
    await publish(
        [(topic("mtr-0"), payload_v2(register, 1.0, at(10), at(20))) for register in range(10, 15)]
    )
    registers = [key for key in coordinator.data["mtr-0"].points if key != "last_reading"]
    assert sorted(registers) == ["10", "11", "2"]
    assert coordinator.dropped_at_limit["registers_limit"] == 3
    assert _issue(hass, "registers_limit", entry).translation_placeholders["item"] == "mtr-0"
    assert len(_warnings(caplog, "meters_limit")) == len(_warnings(caplog, "registers_limit")) == 1
    # What the entry had keeps working.
    await publish([(topic("mtr-1"), payload_v1(2.5, at(30)))])
    assert hass.states.get("sensor.meter_mtr_1_energy_register_2").state == "2.5"
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert _issue(hass, "meters_limit", entry) is None
    assert _issue(hass, "registers_limit", entry) is None
