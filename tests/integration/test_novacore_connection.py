"""The Novacore stream of a running entry: cuts, silence, expired and revoked tokens, junk,
outages within and past the grace period, a DER gone silent, unload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
import json
import logging
import time

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.energy_telemetry import coordinator as coordinator_module
from custom_components.energy_telemetry.protocol import novacore as novacore_module
from tests.helpers.entities import number, state
from tests.helpers.novacore import reauth_flows, send, setup_fast, stored_entry
from tests.helpers.site import METER, PV, SITE_ID, TS, Novacore
from tests.helpers.waiting import wait_for


async def test_stream_cut_mid_event(hass: HomeAssistant, novacore: Novacore) -> None:
    """A cut mid-event leaves no half reading; the stream resumes after the last event id."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    pv = {"type": "pv", "der_id": "der-pv"}
    await send(hass, novacore, entry, {**pv, "W": -1000, "timestamp": TS}, event_id="1")
    await send(hass, novacore, entry, {**pv, "W": -2000, "timestamp": TS + 1}, event_id="2")
    # Long enough for the next push to happen while the client is away.
    coordinator.stream.backoff_initial = coordinator.stream.backoff_max = 0.4

    await server.cut_streams(SITE_ID, mid_event=True)
    assert server.open_streams(SITE_ID) == 0
    await novacore.push({**pv, "W": -3000, "timestamp": TS + 2}, event_id="3")
    assert number(hass, "sensor.pv_array_power") == 2000

    await wait_for(lambda: state(hass, "sensor.pv_array_power") == "3000.0")
    assert server.stream_connects == 2
    assert server.last_event_ids == [None, "2"]
    stats = coordinator.stream.stats
    assert stats.disconnects == 1
    assert stats.events == 3
    assert not stats.parse.rejected
    assert coordinator.stream.last_event_id == "3"
    assert set(coordinator.data) == {"der-pv", ""}  # and the site's consumption
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_half_open_connection(hass: HomeAssistant, novacore: Novacore) -> None:
    """A connection that goes silent is dropped after the read timeout and opened again."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stream = entry.runtime_data.stream
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    stream.read_timeout = 0.5
    await server.cut_streams(SITE_ID)  # the next connection uses the short read timeout
    await wait_for(lambda: server.stream_connects == 2 and stream.connected)

    server.silent = True
    await wait_for(lambda: server.stream_connects >= 4, timeout=20)  # < the 30 s grace
    assert "Timeout" in (stream.stats.last_error or "")
    assert number(hass, "sensor.grid_meter_power") == 850  # within the grace period

    server.keepalive_interval = 0.1  # a live connection is never silent for long
    server.silent = False
    await wait_for(lambda: stream.connected and server.open_streams(SITE_ID) == 1)
    await send(hass, novacore, entry, {**METER, "W": 999, "timestamp": TS + 1}, event_id="9")
    assert number(hass, "sensor.grid_meter_power") == 999
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_token_expiry_with_key(hass: HomeAssistant, novacore: Novacore) -> None:
    """With a key, an expired token mid-stream is replaced and the stream resumes."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stream = entry.runtime_data.stream
    await send(hass, novacore, entry, METER)
    verifies = server.verifies
    connects = server.stream_connects

    server.drop_streams_on_expiry = True
    server.expire_tokens()
    await wait_for(lambda: server.verifies > verifies and stream.connected)
    assert server.stream_connects == connects + 1
    await send(hass, novacore, entry, {**METER, "W": 123, "timestamp": TS + 1})
    assert number(hass, "sensor.grid_meter_power") == 123
    assert entry.state is ConfigEntryState.LOADED
    assert not reauth_flows(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_revoked_bare_token_starts_reauth(
    hass: HomeAssistant, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A bare token cannot be renewed: reauth starts and entities go unavailable after grace."""
    server = novacore.server
    entry = await setup_fast(hass, novacore, token=server.issue_token(novacore.identity))
    coordinator = entry.runtime_data
    coordinator.grace_period = 0.2
    await send(hass, novacore, entry, METER)

    server.drop_streams_on_expiry = True
    server.revoke_all_tokens()
    await wait_for(lambda: reauth_flows(hass, entry))
    await wait_for(lambda: state(hass, "sensor.grid_meter_power") == STATE_UNAVAILABLE)
    assert server.verifies == 0  # nothing could be minted
    assert not coordinator.stream.connected
    refused = [r for r in caplog.records if "token was refused" in r.getMessage()]
    assert len(refused) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_malformed_events(hass: HomeAssistant, novacore: Novacore) -> None:
    """Junk on the stream (bytes that are not UTF-8 too) is counted and skipped; the stream and
    the sensors keep working."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stats = entry.runtime_data.stream.stats
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "W": 850, "Hz": 50.0, "timestamp": TS})

    await server.push_raw(SITE_ID, "this is not an event stream\nnonsense: field\n\n")
    await server.push_raw(SITE_ID, "data: }{ not json\n\n")
    await server.push_raw(SITE_ID, b"data: \xff\xfe\n\n")  # not UTF-8
    await novacore.push("{not json")
    await novacore.push(json.dumps([1, "x", None, {"no": "type"}, {"type": "meter"}]))
    await novacore.push({**meter, "W": 1, "timestamp": TS + 1}, event="keepalive")
    await novacore.push("[" * 50_000)
    await novacore.push(
        '{"type": "meter", "der_id": "der-meter", "W": 1' + "0" * 400 + ', "Hz": 49.5,'
        f' "timestamp": {TS + 2}}}'
    )
    await novacore.push({**meter, "W": 777, "timestamp": TS + 3, "padding": "x" * 2**20})
    await wait_for(lambda: stats.events == 8 and stats.ignored_events == 1)
    await hass.async_block_till_done()

    assert stats.parse.rejected == {
        "invalid_json": 4,
        "not_an_object": 3,
        "no_type": 1,
        "no_values": 1,
    }
    assert stats.parse.accepted == 3
    assert stats.disconnects == 0
    assert server.stream_connects == 1
    assert number(hass, "sensor.grid_meter_power") == 777
    assert number(hass, "sensor.grid_meter_frequency") == 49.5
    assert set(entry.runtime_data.data) == {"der-meter", ""}  # and the site's consumption
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_retry_field_does_not_delay_reconnecting(
    hass: HomeAssistant, novacore: Novacore
) -> None:
    """`retry: 60000` then a clean end of stream: the reconnect follows the normal backoff."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    stream = entry.runtime_data.stream
    meter = {"type": "meter", "der_id": "der-meter"}
    await send(hass, novacore, entry, {**meter, "W": 850, "timestamp": TS}, retry=60000)

    ended = time.monotonic()
    for open_stream in server._sites[SITE_ID].streams:  # no public way to end a stream cleanly
        open_stream.close()
    await wait_for(lambda: server.stream_connects == 2 and stream.connected, timeout=45)
    assert server.stream_connects == 2
    # The backoff cap is 0.1 s; obeying retry: would have taken 60 s. 30 s leaves a busy machine
    # all the time it needs and still tells the two apart.
    assert time.monotonic() - ended < 30
    assert stream.stats.disconnects == 1
    await send(hass, novacore, entry, {**meter, "W": 900, "timestamp": TS + 1})
    assert number(hass, "sensor.grid_meter_power") == 900
    assert await hass.config_entries.async_unload(entry.entry_id)


OURS = "custom_components.energy_telemetry"
OurLines = Callable[..., list[str]]


@pytest.fixture
def our_lines(caplog: pytest.LogCaptureFixture) -> OurLines:
    """Return the integration's log lines at the given levels (INFO and above are captured)."""
    caplog.set_level(logging.INFO, logger=OURS)

    def lines(*levels: int) -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name.startswith(OURS) and record.levelno in levels
        ]

    return lines


async def test_connection_down_past_grace_period(
    hass: HomeAssistant, novacore: Novacore, our_lines: OurLines
) -> None:
    """Down for longer than the grace period: unavailable, one warning; back: one info line."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    coordinator.grace_period = 0.2
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    await send(hass, novacore, entry, {**PV, "timestamp": TS})
    entities = ("sensor.grid_meter_power", "sensor.pv_array_power")

    port = server.port
    await server.stop()
    await wait_for(lambda: all(state(hass, e) == STATE_UNAVAILABLE for e in entities))
    failures = coordinator.stream.stats.disconnects
    # Several more failed attempts while down: still one warning.
    await wait_for(lambda: coordinator.stream.stats.disconnects >= failures + 3)

    await server.start(port=port)
    await wait_for(lambda: all(state(hass, e) != STATE_UNAVAILABLE for e in entities))
    assert number(hass, "sensor.grid_meter_power") == 850
    assert number(hass, "sensor.pv_array_power") == 2500

    warnings, infos = our_lines(logging.WARNING), our_lines(logging.INFO)
    assert len(warnings) == 1, warnings
    assert "connection down" in warnings[0]
    assert len(infos) == 1, infos
    assert "connection restored" in infos[0]
    assert not our_lines(logging.ERROR, logging.CRITICAL)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_stream_down_from_the_start(
    hass: HomeAssistant,
    novacore: Novacore,
    our_lines: OurLines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream that cannot be opened after setup is reported once, and its recovery too."""
    monkeypatch.setattr(coordinator_module, "STREAM_GRACE_PERIOD", timedelta(seconds=0.2))
    monkeypatch.setattr(novacore_module.stream, "BACKOFF_INITIAL", 0.02)
    monkeypatch.setattr(novacore_module.stream, "BACKOFF_MAX", 0.1)
    server = novacore.server
    server.fail_stream(502, count=1_000_000)
    entry = stored_entry(novacore, private_key=novacore.private_key_pem)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    await wait_for(lambda: our_lines(logging.WARNING))
    assert "502" in our_lines(logging.WARNING)[0]
    server.fail_stream(502, count=0)
    await wait_for(lambda: entry.runtime_data.stream.connected)
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    assert number(hass, "sensor.grid_meter_power") == 850
    assert len(our_lines(logging.WARNING)) == 1
    assert len(our_lines(logging.INFO)) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_short_outage_within_grace_period(
    hass: HomeAssistant, novacore: Novacore, our_lines: OurLines
) -> None:
    """A reconnect within the grace period changes nothing visible and logs nothing."""
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    await server.cut_streams(SITE_ID)
    await wait_for(lambda: server.stream_connects == 2 and entry.runtime_data.stream.connected)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=60))
    await hass.async_block_till_done()
    assert number(hass, "sensor.grid_meter_power") == 850
    assert not our_lines(logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_stale_der(hass: HomeAssistant, novacore: Novacore) -> None:
    """A DER that stops reporting goes unavailable; its next reading brings it back."""
    entry = await setup_fast(hass, novacore)
    coordinator = entry.runtime_data
    await send(hass, novacore, entry, {**PV, "timestamp": TS})
    await send(hass, novacore, entry, {**PV, "timestamp": TS + 1})
    await send(hass, novacore, entry, {**METER, "der_id": "der-meter"})
    assert coordinator.data["der-pv"].interval is not None

    coordinator.data["der-pv"].last_seen = time.monotonic() - 3600
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done()
    assert state(hass, "sensor.pv_array_power") == STATE_UNAVAILABLE
    assert state(hass, "sensor.pv_array_energy_produced") == STATE_UNAVAILABLE
    assert number(hass, "sensor.grid_meter_power") == 850  # the meter is not stale

    # The value is unchanged, yet the DER is back.
    await send(hass, novacore, entry, {**PV, "timestamp": TS + 2})
    assert number(hass, "sensor.pv_array_power") == 2500
    assert number(hass, "sensor.pv_array_energy_produced") == 150
    assert not coordinator.data["der-pv"].stale
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_closes_stream(hass: HomeAssistant, novacore: Novacore) -> None:
    server = novacore.server
    entry = await setup_fast(hass, novacore)
    await send(hass, novacore, entry, METER)
    assert server.open_streams(SITE_ID) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    await wait_for(lambda: server.open_streams(SITE_ID) == 0)
    await novacore.push({**METER, "W": 1, "timestamp": TS + 1})
    assert state(hass, "sensor.grid_meter_power") == STATE_UNAVAILABLE
    assert server.stream_connects == 1
