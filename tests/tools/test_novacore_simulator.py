"""Tests of the Novacore simulator server and the site model."""

from __future__ import annotations

import asyncio
from collections import Counter
import contextlib
from datetime import UTC, datetime, timedelta, timezone
import json
import re
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from custom_components.energy_telemetry.protocol.common import ParseStats
from custom_components.energy_telemetry.protocol.novacore import parse_event
from simulator.model import SiteModel, run_site
from simulator.novacore_server import (
    MID_EVENT_FRAGMENT,
    NovacoreServer,
    PrivateKey,
    b64decode_any,
    encode_public_key,
    sign_challenge,
)
from simulator.wire import device_sn_of, to_legacy
from tests.helpers.site import DEVICES, SITE_ID, SITE_NAME

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class SSEReader:
    """A minimal, strict SSE parser over an aiohttp response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        """Wrap a streaming response."""
        self.response = response
        self.raw = b""
        self.comments: list[str] = []
        self._buffer = b""

    async def _line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self.response.content.readany()
            if not chunk:
                raise EOFError
            self._buffer += chunk
            self.raw += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8")

    async def event(self, within: float = 30) -> dict[str, Any]:
        """Return the next dispatched event: its event, id and data fields."""
        async with asyncio.timeout(within):
            fields: dict[str, Any] = {"event": None, "id": None, "retry": None}
            data: list[str] = []
            while True:
                line = await self._line()
                if line == "":
                    if data:
                        return {**fields, "data": "\n".join(data)}
                    fields = {"event": None, "id": None, "retry": None}
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value

    async def comment(self, within: float = 30) -> str:
        """Return the next comment line."""
        async with asyncio.timeout(within):
            while not self.comments:
                line = await self._line()
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
            return self.comments.pop(0)


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[NovacoreServer]:
    """Return a running server with one site and keep-alives off."""
    async with NovacoreServer(keepalive_interval=0) as srv:
        srv.add_site(SITE_ID, SITE_NAME, DEVICES, org_id="org-xyz789")
        yield srv


@pytest.fixture
def token(server: NovacoreServer) -> str:
    """Return a valid token of a new identity."""
    return _token(server)


def _token(server: NovacoreServer) -> str:
    identity = server.add_identity(encode_public_key(Ed25519PrivateKey.generate()))
    return server.issue_token(identity)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def _stream(
    session: aiohttp.ClientSession,
    server: NovacoreServer,
    token: str,
    site_id: str = SITE_ID,
    last_event_id: str | None = None,
) -> AsyncIterator[SSEReader]:
    headers = {**_auth(token), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with session.get(f"{server.url}/stream/sites/{site_id}", headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        yield SSEReader(resp)


async def _login(
    session: aiohttp.ClientSession,
    server: NovacoreServer,
    key: PrivateKey,
    *,
    der: bool,
) -> aiohttp.ClientResponse:
    public_key = encode_public_key(key, der=der)
    async with session.post(
        f"{server.url}/auth/challenge", json={"public_key": public_key}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    datetime.fromisoformat(body["expires_at"])
    signature = sign_challenge(key, body["challenge"], der=der)
    async with session.post(
        f"{server.url}/auth/verify",
        json={
            "public_key": public_key,
            "signature": signature,
            "challenge": body["challenge"],
        },
    ) as resp:
        await resp.read()
        return resp


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("algorithm", "der"),
    [("ed25519", False), ("ed25519", True), ("es256", False), ("es256", True)],
)
async def test_challenge_verify(
    socket_enabled: None,
    server: NovacoreServer,
    session: aiohttp.ClientSession,
    algorithm: str,
    der: bool,
) -> None:
    """A registered key, raw or DER, signs its way to a working token."""
    key: PrivateKey = (
        Ed25519PrivateKey.generate()
        if algorithm == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    # Registered in the other format than the one used to log in.
    identity = server.add_identity(encode_public_key(key, der=not der))
    resp = await _login(session, server, key, der=der)
    assert resp.status == 200
    body = await resp.json()
    assert body["identity_id"] == identity
    claims = json.loads(b64decode_any(body["token"].split(".")[1]))
    assert claims["sub"] == identity
    assert claims["exp"] - claims["iat"] == 86400
    async with session.get(f"{server.url}/sites", headers=_auth(body["token"])) as sites:
        assert sites.status == 200
    assert (server.challenges, server.verifies) == (1, 1)


async def test_bad_signature_unknown_key_and_reused_challenge(
    server: NovacoreServer, session: aiohttp.ClientSession
) -> None:
    """Wrong signatures, unknown keys, replayed and expired challenges are refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = encode_public_key(key)
    async with session.post(
        f"{server.url}/auth/challenge", json={"public_key": public_key}
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthorized"
    server.add_identity(public_key)

    async def challenge() -> str:
        async with session.post(
            f"{server.url}/auth/challenge", json={"public_key": public_key}
        ) as resp:
            return str((await resp.json())["challenge"])

    async def verify(challenge: str, signature: str) -> int:
        async with session.post(
            f"{server.url}/auth/verify",
            json={
                "public_key": public_key,
                "signature": signature,
                "challenge": challenge,
            },
        ) as resp:
            await resp.read()
            return resp.status

    first = await challenge()
    assert await verify(first, sign_challenge(key, "something else")) == 401
    assert await verify(first, sign_challenge(key, first)) == 401  # consumed
    second = await challenge()
    assert await verify(second, sign_challenge(key, second)) == 200
    assert await verify(second, sign_challenge(key, second)) == 401  # single use
    server.challenge_ttl = 0
    third = await challenge()
    assert await verify(third, sign_challenge(key, third)) == 401  # expired
    async with session.post(f"{server.url}/auth/challenge", json={"public_key": "!!"}) as resp:
        assert resp.status == 400


async def test_token_expiry_and_revocation(
    server: NovacoreServer, session: aiohttp.ClientSession
) -> None:
    """Missing, forged, expired and revoked tokens get a JSON 401."""
    identity = server.add_identity(encode_public_key(Ed25519PrivateKey.generate()))
    url = f"{server.url}/sites"
    good = server.issue_token(identity)
    header, claims, signature = good.split(".")
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        _auth("not-a-jwt"),
        _auth(f"{header}.{claims}.{signature[:-2]}AA"),
        _auth(server.issue_token(identity, ttl=0)),
    ):
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 401, headers
            assert (await resp.json())["error"] == "unauthorized"
    async with session.get(url, headers=_auth(good)) as resp:
        assert resp.status == 200
    server.expire_tokens()
    async with session.get(url, headers=_auth(good)) as resp:
        assert resp.status == 401
        assert (await resp.json())["message"] == "token expired"
    fresh = server.issue_token(identity, ttl=2)  # exp is whole seconds: valid for 1 s at least
    async with session.get(url, headers=_auth(fresh)) as resp:
        assert resp.status == 200
    exp = json.loads(b64decode_any(fresh.split(".")[1]))["exp"]
    await asyncio.sleep(exp - time.time() + 0.05)
    async with session.get(url, headers=_auth(fresh)) as resp:
        assert resp.status == 401


async def test_drop_streams_on_expiry(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """Expiry keeps streams open by default; with drop_streams_on_expiry they end."""
    async with _stream(session, server, token) as reader:
        server.revoke_all_tokens()
        await server.push(SITE_ID, {"type": "pv", "W": -1})
        assert json.loads((await reader.event())["data"])["W"] == -1
    server.drop_streams_on_expiry = True
    token = _token(server)
    async with _stream(session, server, token) as reader:
        server.expire_tokens()
        with pytest.raises(EOFError):
            await reader.event()
    async with session.get(f"{server.url}/stream/sites/{SITE_ID}", headers=_auth(token)) as resp:
        assert resp.status == 401


# --------------------------------------------------------------------------- REST


async def test_sites_and_devices(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """Sites list, site details with devices, devices, visibility and 404s."""
    server.add_site("sit-private", "Cabin", [], identities=["idn-someone-else"])
    async with session.get(f"{server.url}/sites", headers=_auth(token)) as resp:
        sites = await resp.json()
    assert [site["id"] for site in sites] == [SITE_ID]
    assert set(sites[0]) == {"id", "org_id", "name", "created_at"}
    assert sites[0]["org_id"] == "org-xyz789"
    async with session.get(f"{server.url}/sites?org_id=org-other", headers=_auth(token)) as resp:
        assert await resp.json() == []
    async with session.get(f"{server.url}/sites/{SITE_ID}", headers=_auth(token)) as resp:
        detail = await resp.json()
    assert detail["name"] == "Home"
    assert detail["devices"] == DEVICES
    async with session.get(f"{server.url}/sites/{SITE_ID}/devices", headers=_auth(token)) as resp:
        assert await resp.json() == DEVICES
    async with session.get(f"{server.url}/sites/sit-private", headers=_auth(token)) as resp:
        assert resp.status == 403
    async with session.get(f"{server.url}/sites/sit-nope/devices", headers=_auth(token)) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"
    async with session.get(f"{server.url}/nowhere", headers=_auth(token)) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"


async def test_delete_site_ends_stream(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """Deleting a site ends its stream; it then answers 404."""
    async with _stream(session, server, token) as reader:
        await server.wait_for_streams(SITE_ID)
        server.delete_site(SITE_ID)
        with pytest.raises(EOFError):
            await reader.event()
    async with session.get(f"{server.url}/stream/sites/{SITE_ID}", headers=_auth(token)) as resp:
        assert resp.status == 404
    async with session.get(f"{server.url}/sites/{SITE_ID}", headers=_auth(token)) as resp:
        assert resp.status == 404


async def test_fail_stream_and_fail_all(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """Injected failures answer their status and Retry-After, then service resumes."""
    url = f"{server.url}/stream/sites/{SITE_ID}"
    server.fail_stream(503, 2, retry_after=7)
    for _ in range(2):
        async with session.get(url, headers=_auth(token)) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "7"
            assert (await resp.json())["error"] == "service_unavailable"
    async with session.get(f"{server.url}/sites", headers=_auth(token)) as resp:
        assert resp.status == 200  # only the stream was failing
    async with _stream(session, server, token):
        assert server.stream_connects == 1
    server.fail_all(429, 1)
    async with session.get(f"{server.url}/sites", headers=_auth(token)) as resp:
        assert resp.status == 429
        assert "Retry-After" not in resp.headers
    async with session.get(f"{server.url}/sites", headers=_auth(token)) as resp:
        assert resp.status == 200


# --------------------------------------------------------------------------- SSE


async def test_sse_framing_and_keepalive(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """Event names, ids, multi-line data, raw strings and keep-alive comments."""
    server.keepalive_interval = 0.1
    async with _stream(session, server, token) as reader:
        await server.wait_for_streams(SITE_ID)
        assert server.open_streams(SITE_ID) == 1
        assert await reader.comment() == "keep-alive"
        await server.push(SITE_ID, {"type": "pv", "W": -1500}, event="telemetry", event_id="e1")
        first = await reader.event()
        assert first["event"] == "telemetry"
        assert first["id"] == "e1"
        assert json.loads(first["data"]) == {"type": "pv", "W": -1500}
        await server.push(SITE_ID, "line one\nline two\r\nline three")
        second = await reader.event()
        assert second["data"] == "line one\nline two\nline three"
        assert second["event"] is None
        assert second["id"] is None
        await server.push(SITE_ID, "{not json")
        assert (await reader.event())["data"] == "{not json"
        assert b'data: {"type":"pv","W":-1500}\n\n' in reader.raw
        assert b"data: line one\ndata: line two\ndata: line three\n\n" in reader.raw
    await server.wait_until(lambda: server.open_streams(SITE_ID) == 0)


async def test_large_event(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """A 1 MiB event goes through in one piece."""
    blob = "x" * (1024 * 1024)
    async with _stream(session, server, token) as reader:
        await server.wait_for_streams(SITE_ID)
        await server.push(SITE_ID, {"type": "meter", "blob": blob})
        assert json.loads((await reader.event())["data"])["blob"] == blob


async def test_last_event_id_replay(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """Events after Last-Event-ID in the replay buffer come first, then live ones."""
    server.auto_ids = True
    for watts in (1, 2, 3):
        await server.push(SITE_ID, {"type": "pv", "W": -watts})
    async with _stream(session, server, token, last_event_id="1") as reader:
        await server.push(SITE_ID, {"type": "pv", "W": -4})
        events = [await reader.event() for _ in range(3)]
    assert [event["id"] for event in events] == ["2", "3", "4"]
    assert [json.loads(event["data"])["W"] for event in events] == [-2, -3, -4]
    async with _stream(session, server, token, last_event_id="unknown") as reader:
        await server.push(SITE_ID, {"type": "pv", "W": -5})
        assert (await reader.event())["id"] == "5"
    async with _stream(session, server, token) as reader:
        await server.push(SITE_ID, {"type": "pv", "W": -6}, event_id="custom")
        assert (await reader.event())["id"] == "custom"
    assert server.last_event_ids == ["1", "unknown", None]
    assert server.stream_connects == 3


async def test_cut_mid_event(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """A cut stream ends with half an event and a broken connection."""
    async with _stream(session, server, token) as reader:
        await server.wait_for_streams(SITE_ID)
        await server.push(SITE_ID, {"type": "pv", "W": -1})
        await reader.event()
        pending = asyncio.create_task(reader.event())
        await asyncio.sleep(0)
        await server.cut_streams(SITE_ID, mid_event=True)
        assert server.open_streams(SITE_ID) == 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await pending
        assert reader.raw.endswith(MID_EVENT_FRAGMENT)
    async with _stream(session, server, token) as reader:
        await server.wait_for_streams(SITE_ID)
        await server.cut_streams(SITE_ID)
        with pytest.raises(aiohttp.ClientPayloadError):
            await reader.event()
    assert server.stream_connects == 2


async def test_silent(server: NovacoreServer, session: aiohttp.ClientSession, token: str) -> None:
    """A silent server sends nothing, not even keep-alives, until it speaks again."""
    server.keepalive_interval = 0.05
    async with _stream(session, server, token) as reader:
        await reader.comment()
        server.silent = True
        await server.push(SITE_ID, {"type": "pv", "W": -1})
        written = await server.wait_silent(SITE_ID)
        while len(reader.raw) < written:  # keep-alives written before the silence
            await reader.comment()
        reader.comments.clear()
        raw_before = len(reader.raw)
        with pytest.raises(TimeoutError):
            await reader.event(within=0.3)
        assert len(reader.raw) == raw_before
        server.silent = False
        await server.push(SITE_ID, {"type": "pv", "W": -2})
        assert json.loads((await reader.event())["data"])["W"] == -2


async def test_silent_new_connection_gets_no_headers(
    server: NovacoreServer, session: aiohttp.ClientSession, token: str
) -> None:
    """While silent, a new stream does not even get its response headers."""
    server.silent = True
    request = asyncio.ensure_future(
        session.get(f"{server.url}/stream/sites/{SITE_ID}", headers=_auth(token))
    )
    await server.wait_for_streams(SITE_ID)
    await asyncio.sleep(0.1)
    assert not request.done()
    server.silent = False
    async with await request as resp:
        assert resp.status == 200
        await server.push(SITE_ID, {"type": "pv", "W": -3})
        assert json.loads((await SSEReader(resp).event())["data"])["W"] == -3


async def test_stop_closes_streams_promptly(socket_enabled: None) -> None:
    """Stopping the server ends open streams at once; it can start again on its port."""
    srv = NovacoreServer(keepalive_interval=0)
    await srv.start()
    srv.add_site(SITE_ID, SITE_NAME, DEVICES)
    token = _token(srv)
    async with aiohttp.ClientSession() as client, _stream(client, srv, token) as reader:
        await srv.wait_for_streams(SITE_ID)
        await srv.stop()
        with pytest.raises(EOFError):
            await reader.event()
        assert srv.forced_stops == 0  # the streams ended when closed, not at the cleanup
    port = srv.port
    await srv.start(port=port)
    try:
        async with (
            aiohttp.ClientSession() as client,
            _stream(client, srv, token) as reader,
        ):
            await srv.push(SITE_ID, {"type": "pv", "W": -9})
            assert json.loads((await reader.event())["data"])["W"] == -9
    finally:
        await srv.stop()


# --------------------------------------------------------------------------- model


def _day_model(seed: int = 7) -> SiteModel:
    return SiteModel(seed=seed, speed=720, start=datetime(2025, 6, 21, tzinfo=UTC))


def test_model_physics_over_a_day() -> None:
    """Energy balance, phase sums, signs, SoC bounds and monotonic totals over a day."""
    model = _day_model()
    der_ids = {der["id"] for device in model.devices() for der in device["ders"]}
    totals = ("total_generation_Wh", "total_charge_Wh", "total_discharge_Wh",
              "total_import_Wh", "total_export_Wh")  # fmt: skip
    previous: dict[tuple[str, str], float] = {}
    noon_pv = 0.0
    for _ in range(24 * 60):  # one simulated minute per step
        pv, battery, meter, inverter, charger = model.step(60 / 720)
        assert [r["type"] for r in (pv, battery, meter, inverter, charger)] == [
            "pv",
            "battery",
            "meter",
            "inverter",
            "v2x_charger",
        ]
        assert {r["der_id"] for r in (pv, battery, meter, inverter, charger)} == der_ids
        expected = model.load_power + pv["W"] + battery["W"] + charger["W"]
        assert meter["W"] == pytest.approx(expected, abs=0.3)
        assert meter["L1_W"] + meter["L2_W"] + meter["L3_W"] == pytest.approx(meter["W"], abs=1e-6)
        # The inverter's AC output (negative on the wire, like PV) is PV minus battery charging.
        assert -inverter["W"] == pytest.approx(-pv["W"] - battery["W"], abs=0.2)
        assert sum(inverter[f"L{n}_W"] for n in (1, 2, 3)) == pytest.approx(inverter["W"], abs=0.2)
        assert inverter["dc_W"] * inverter["W"] >= 0
        assert 0.0 <= battery["SoC_nom_fract"] <= 1.0
        assert battery["upper_limit_W"] >= 0 >= battery["lower_limit_W"]
        assert pv["W"] <= 0.0
        assert pv["mppt1_A"] <= 0.0
        assert pv["mppt2_A"] <= 0.0
        assert battery["A"] * battery["W"] >= 0
        assert charger["A"] * charger["W"] >= 0
        for reading in (pv, battery, meter, inverter, charger):
            assert abs(reading["timestamp"] / 1000 - time.time()) < 5
            for name in totals:
                if name in reading:
                    key = (reading["type"], name)
                    assert reading[name] >= previous.get(key, 0.0)
                    previous[key] = reading[name]
        hour = model.sim_time.hour
        if hour < 4 or hour >= 21:
            assert pv["W"] == 0.0
        if 11 <= hour <= 13:
            noon_pv = min(noon_pv, pv["W"])
    assert noon_pv < -2000
    assert model.sim_time == datetime(2025, 6, 22, tzinfo=UTC)
    assert len(previous) == 7  # 5 on PV, battery and meter, 2 on the charger
    assert all(value > 0 for value in previous.values())
    assert model.total_charge_Wh > 85000  # charged from the day's surplus


def test_model_ev_charger_sessions() -> None:
    """The car comes home in the evening, charges (and some evenings feeds the grid in the peak),
    leaves in the morning; status, plug and counters agree with the power."""
    model = _day_model(seed=11)
    statuses: Counter[str] = Counter()
    plug_hours: list[float] = []
    unplug_hours: list[float] = []
    was_plugged: bool | None = None
    session = 0.0
    for _ in range(10 * 24 * 60):  # ten days, one simulated minute per step
        charger = model.step(60 / 720)[4]
        hour = model.sim_time.hour + model.sim_time.minute / 60
        power, status, plugged = charger["W"], charger["status"], charger["plug_connected"]
        statuses[status] += 1
        assert status == (
            "unavailable"
            if not plugged
            else "charging"
            if power > 0
            else "discharging"
            if power < 0
            else "sleeping"
        )
        if power < 0:
            assert 18 <= hour <= 21.1  # the evening peak
        if plugged:
            assert 0 < charger["vehicle_soc_fract"] <= 1
            assert charger["ev_max_energy_req_Wh"] >= charger["ev_target_energy_req_Wh"] >= 0
        else:
            assert power == 0
            assert "vehicle_soc_fract" not in charger
        if was_plugged is not None and plugged != was_plugged:
            (plug_hours if plugged else unplug_hours).append(hour)
            if plugged:
                assert charger["session_charge_Wh"] <= 200  # a new session starts near 0
        if plugged and was_plugged:
            assert charger["session_charge_Wh"] >= session
        session = charger["session_charge_Wh"]
        was_plugged = plugged
        assert charger["upper_limit_W"] == [1380.0, 0, 11000.0]
    assert all(17 <= hour <= 19.1 for hour in plug_hours), plug_hours
    assert all(6.5 <= hour <= 8.6 for hour in unplug_hours), unplug_hours
    assert len(plug_hours) >= 9
    assert set(statuses) == {"unavailable", "charging", "discharging", "sleeping"}


def test_model_day_follows_the_start_time_zone() -> None:
    """The sun follows the local hour of the start's own time zone."""
    tz = timezone(timedelta(hours=10))
    model = SiteModel(seed=2, start=datetime(2025, 6, 21, 12, tzinfo=tz))
    assert model.sim_time.tzinfo is tz
    assert model.step(0)[0]["W"] < -1000
    night = SiteModel(seed=2, start=datetime(2025, 6, 21, 2, tzinfo=UTC))
    assert night.step(0)[0]["W"] == 0.0


def test_model_is_deterministic_with_a_seed() -> None:
    """The same seed gives the same physics."""
    first, second = _day_model(3), _day_model(3)
    for _ in range(100):
        a, b = first.step(5), second.step(5)
        for reading_a, reading_b in zip(a, b, strict=True):
            reading_a.pop("timestamp")
            reading_b.pop("timestamp")
            assert reading_a == reading_b
    other = _day_model(4)
    assert [r["W"] for r in other.step(500)] != [r["W"] for r in _day_model(3).step(500)]


def test_model_devices_shape() -> None:
    """devices() has the shape of GET /sites/{site_id}/devices."""
    model = SiteModel(site_id="sit-xyz", seed=1)
    devices = model.devices()
    for device in devices:
        assert set(device) == {"id", "name", "type", "state", "hardware_id", "ders"}
    assert sorted(der["type"] for d in devices for der in d["ders"]) == [
        "battery",
        "inverter",
        "meter",
        "solar",
        "v2x_charger",
    ]
    assert model.der_ids["pv"] == "der-xyz-pv"
    assert model.der_ids["v2x_charger"] == "der-xyz-evc"
    pv, battery, meter, inverter, charger = model.step(0)
    assert pv["rated_power_W"] == 10000
    # Every field of the documented payloads, plus der_id and the extra fields.
    assert set(pv) == {
        "type", "make", "der_id", "W", "rated_power_W", "installed_power_W", "mppt1_V",
        "mppt1_A", "mppt1_W", "mppt2_V", "mppt2_A", "mppt2_W", "lower_limit_W",
        "total_generation_Wh", "timestamp", "read_time_ms",
    }  # fmt: skip
    assert set(battery) == {
        "type", "make", "der_id", "W", "SoC_nom_fract", "V", "A", "SoH_fract",
        "temperature_C", "upper_limit_W", "lower_limit_W", "available_charge_Wh",
        "available_discharge_Wh", "total_charge_Wh", "total_discharge_Wh", "rated_power_W",
        "capacity_kWh", "min_soc_fract", "max_soc_fract", "timestamp",
    }  # fmt: skip
    phases = {f"L{n}_{unit}" for n in (1, 2, 3) for unit in ("V", "A", "W")}
    assert set(meter) == {
        "type", "make", "der_id", "W", "Hz", "total_import_Wh", "total_export_Wh",
        "timestamp", *phases,
    }  # fmt: skip
    assert set(inverter) == {
        "type", "make", "der_id", "W", "VA", "VAR", "Hz", "dc_W", "dc_V", "dc_A", "heatsink_C",
        "rated_power_W", "rated_power_VA", "phases", "timestamp", *phases,
    }  # fmt: skip
    assert {
        "W", "A", "V", "Hz", "dc_W", "status", "plug_connected", "protocol", "control_mode",
        "session_charge_Wh", "session_discharge_Wh", "total_charge_Wh", "total_discharge_Wh",
        "upper_limit_W", "lower_limit_W", "max_charge_power_W", "max_discharge_power_W",
        "capacity_Wh", "phases", *phases,
    } <= set(charger)  # fmt: skip
    assert (pv["make"], battery["make"], meter["make"]) == (
        "Sungrow",
        "BYD",
        "Kamstrup",
    )


async def test_run_site_pushes_readings(
    server: NovacoreServer, session: aiohttp.ClientSession
) -> None:
    """run_site registers the site and streams one reading per DER each interval."""
    model = SiteModel(site_id="sit-demo", seed=5, speed=720)
    token = _token(server)
    task = asyncio.create_task(run_site(server, model, interval=0.05))
    try:
        await server.wait_until(lambda: server.has_site("sit-demo"))
        async with _stream(session, server, token, site_id="sit-demo") as reader:
            types = {json.loads((await reader.event())["data"])["type"] for _ in range(10)}
        assert types == {"pv", "battery", "meter", "inverter", "v2x_charger"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------- wires


def test_legacy_wire_shape() -> None:
    """The legacy wire: solar/ev_port, {type, device_sn, spec, state}, RFC 3339, mppts."""
    model = _day_model()
    devices = model.devices()
    pv, battery, meter, inverter, charger = (
        to_legacy(reading, device_sn_of(devices, reading["der_id"]))
        for reading in model.step(3600 * 12 / 720)
    )
    assert [r["type"] for r in (pv, battery, meter, inverter, charger)] == [
        "solar",
        "battery",
        "meter",
        "inverter",
        "ev_port",
    ]
    for reading in (pv, battery, meter, inverter, charger):
        assert set(reading) == {"type", "make", "device_sn", "spec", "state"}
        assert reading["spec"]["enabled"] is True
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", reading["state"]["timestamp"]
        )
    assert pv["device_sn"] == battery["device_sn"] == inverter["device_sn"]
    assert pv["spec"] == {"enabled": True, "rated_power_W": 10000, "installed_power_W": 10500}
    assert [set(mppt) for mppt in pv["state"]["mppts"]] == [{"V", "A", "W"}] * 2
    assert charger["spec"]["bidirectional"] is True
    assert not any(key.startswith("mppt1") for key in pv["state"])
    assert to_legacy({"type": "pv", "der_id": "der-x", "W": -1}, None) == {
        "type": "solar",
        "der_id": "der-x",
        "spec": {"enabled": True},
        "state": {"W": -1},
    }


def test_both_wires_parse_to_the_same_physics() -> None:
    """Over a simulated day, the parser reads the same values from both wires, except the
    battery's and meter's signed fields, which the legacy wire inverts (limits swapped)."""
    model = _day_model(seed=5)
    devices = model.devices()
    inverted = re.compile(r"^(W|A|L\d_[AW])$")
    for _ in range(24 * 6):
        for documented in model.step(600 / 720):
            legacy = to_legacy(documented, device_sn_of(devices, documented["der_id"]))
            stats = ParseStats()
            (one,) = parse_event(json.dumps(documented), stats)
            (other,) = parse_event(json.dumps(legacy), stats)
            assert other.der_type == one.der_type
            assert other.timestamp == one.timestamp
            assert other.der_id is None
            assert other.device_sn is not None
            assert other.texts == one.texts
            expected = dict(one.values)
            if one.der_type in ("battery", "meter"):
                for key, value in one.values.items():
                    if inverted.match(key):
                        expected[key] = 0.0 - value
            if one.der_type == "battery":
                expected["upper_limit_W"] = 0.0 - one.values["lower_limit_W"]
                expected["lower_limit_W"] = 0.0 - one.values["upper_limit_W"]
            assert other.values == expected, one.der_type


async def test_server_speaks_the_legacy_wire(
    socket_enabled: None, session: aiohttp.ClientSession
) -> None:
    """A legacy server turns every pushed reading into the legacy wire; text goes as is."""
    with pytest.raises(ValueError, match="unknown wire"):
        NovacoreServer(wire="modern")
    server = NovacoreServer(keepalive_interval=0, wire="legacy")
    await server.start()
    try:
        identity = server.add_identity(encode_public_key(Ed25519PrivateKey.generate()))
        server.add_site(SITE_ID, SITE_NAME, DEVICES)
        token = server.issue_token(identity)
        async with _stream(session, server, token) as reader:
            await server.push(SITE_ID, {"type": "battery", "der_id": "der-bat", "W": 100})
            await server.push(SITE_ID, "not json")
            first = json.loads((await reader.event())["data"])
            second = (await reader.event())["data"]
        assert first == {
            "type": "battery",
            "device_sn": "SN12345",
            "spec": {"enabled": True},
            "state": {"W": -100},
        }
        assert second == "not json"
    finally:
        await server.stop()
