"""Power signs decided by each DER's own counters, through a running entry: logged once, shown in
diagnostics, kept across restarts, and overridden per DER type in the options."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from tests.helpers.novacore import der_number, send, setup_fast
from tests.helpers.site import SITE_ID, TS, Novacore

MINUTE = 60_000


def _meter(minute: int, watts: float, imported: float) -> dict[str, Any]:
    return {
        "type": "meter",
        "der_id": "der-meter",
        "W": watts,
        "total_import_Wh": imported,
        "total_export_Wh": 500.0,
        "timestamp": TS + minute * MINUTE,
    }


async def _import_on_an_inverted_wire(
    hass: HomeAssistant, novacore: Novacore, entry: Any, minutes: range
) -> None:
    """The meter imports 1 kW (its import counter climbs) while the wire says -1000 W."""
    for minute in minutes:
        await send(hass, novacore, entry, _meter(minute, -1000.0, 1000.0 + 16.0 * minute))


async def test_counters_decide_the_sign(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """Until decided the documented sign applies; once the counters agree, the shown power turns,
    one info line says why, and the decision is stored for the next start."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(hass, novacore, entry, _meter(0, -1000.0, 1000.0))
    assert der_number(hass, "der-meter", "power") == -1000  # as documented: exporting
    await _import_on_an_inverted_wire(hass, novacore, entry, range(1, 6))
    assert coordinator.signs.factor("der-meter", "meter") == -1
    assert der_number(hass, "der-meter", "power") == 1000  # importing, as the counter says
    decided = [r for r in caplog.records if "opposite of Sourceful" in r.getMessage()]
    assert [r.levelno for r in decided] == [logging.INFO]
    signs = coordinator.diagnostics()["signs"]["der-meter"]
    assert signs["status"] == "decided"
    assert signs["source"] == "evidence"
    assert signs["convention"] == "inverted"

    # After a restart the decision holds from the first reading on, without new evidence.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await novacore.server.wait_for_streams(SITE_ID, 1)
    coordinator = entry.runtime_data
    assert coordinator.signs.status("der-meter", "meter").value == "decided"
    await send(hass, novacore, entry, _meter(30, -400.0, 1200.0))
    assert der_number(hass, "der-meter", "power") == 400
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_fix_the_sign_per_type(hass: HomeAssistant, novacore: Novacore) -> None:
    """The user's choice wins over the evidence, which the diagnostics still show."""
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, _meter(0, -1000.0, 1000.0))
    await _import_on_an_inverted_wire(hass, novacore, entry, range(1, 6))
    assert der_number(hass, "der-meter", "power") == 1000

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["signs", "energy_dashboard"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "signs"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "signs"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "pv": "automatic",
            "battery": "inverted",
            "meter": "documented",
            "ev_charger": "automatic",
            "inverter": "automatic",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["signs"]["meter"] == "documented"
    await novacore.server.wait_for_streams(SITE_ID, 1)
    await send(hass, novacore, entry, _meter(10, -1000.0, 1160.0))
    assert der_number(hass, "der-meter", "power") == -1000  # as documented, by the user's choice
    signs = entry.runtime_data.diagnostics()["signs"]["der-meter"]
    assert signs["source"] == "user"
    assert signs["override_contradicts_evidence"] is True
    await send(
        hass,
        novacore,
        entry,
        {"type": "battery", "der_id": "der-bat", "W": 500, "timestamp": TS},
    )
    assert der_number(hass, "der-bat", "power") == 500  # inverted: +W is discharging
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_type_word_that_names_another_type_keeps_the_decision(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """A reading found by its DER id is read as that DER's type whatever its type word says: it
    neither wipes the sign decision nor shows the power with the documented sign again."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(hass, novacore, entry, _meter(0, -1000.0, 1000.0))
    await _import_on_an_inverted_wire(hass, novacore, entry, range(1, 6))
    assert der_number(hass, "der-meter", "power") == 1000
    for minute, word in ((6, "battery"), (7, "heat_pump"), (8, "meter")):
        await send(hass, novacore, entry, {**_meter(minute, -900.0, 1100.0 + minute), "type": word})
        assert der_number(hass, "der-meter", "power") == 900, word
        assert coordinator.signs.status("der-meter", "meter").value == "decided", word
    signs = coordinator.diagnostics()["signs"]
    assert signs["der-meter"]["convention"] == "inverted"
    assert signs["der-meter"]["type"] == "meter"
    assert await hass.config_entries.async_unload(entry.entry_id)
