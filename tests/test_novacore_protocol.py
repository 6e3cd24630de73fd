"""The Novacore protocol module and the total guard on their own, against the real simulator."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Callable
import json
import logging
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from custom_components.energy_telemetry import energy_hours, protocol, totals
from custom_components.energy_telemetry.protocol import novacore
from custom_components.energy_telemetry.protocol.common import (
    BACKOFF_MAX,
    ParseStats,
    backoff_delay,
)
from custom_components.energy_telemetry.protocol.novacore import (
    MAX_LOGGED_CHARS,
    READ_TIMEOUT,
    Der,
    DerReading,
    Device,
    InvalidKeyError,
    NovacoreAuthError,
    NovacoreClient,
    NovacoreConnectionError,
    NovacoreError,
    NovacoreNotFoundError,
    Signer,
    Site,
    SiteStream,
    StreamEndedError,
    describe,
    load_signer,
    parse_event,
    token_expiry,
)
from custom_components.energy_telemetry.totals import MAX_PENDING, TotalGuard
from simulator.novacore_server import (
    jwt_decode,
    load_public_key,
    verify_signature,
)

from .conftest import SITE_ID, Novacore, wait_for

TS = 1709740800000  # 2024-03-06T16:00:00Z in ms
TS_S = TS // 1000


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Protocol tests need no Home Assistant instance."""


@pytest.fixture
async def session() -> AsyncGenerator[aiohttp.ClientSession]:
    """An HTTP session of our own, as a library user would have."""
    async with aiohttp.ClientSession() as http:
        yield http


def _pem(key: Any, encryption: Any = None) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        encryption or serialization.NoEncryption(),
    ).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _assert_verifies(signer: Signer) -> None:
    """The simulator accepts the signer's public key and signature; a changed message fails."""
    public, _ = load_public_key(signer.public_key)
    challenge = "challenge-0123456789"
    signature = base64.b64decode(signer.sign(challenge))
    assert verify_signature(public, signature, challenge.encode())
    assert not verify_signature(public, signature, b"another challenge")


# --- keys -----------------------------------------------------------------------------------


def test_load_signer_ed25519_pem() -> None:
    key = Ed25519PrivateKey.generate()
    signer = load_signer("\n  " + _pem(key) + "\n")
    assert signer.algorithm == "Ed25519"
    assert signer.public_key == _b64(key.public_key().public_bytes_raw())
    _assert_verifies(signer)


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, "sec1"])
def test_load_signer_p256_pem(fmt: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL if fmt == "sec1" else fmt,
        serialization.NoEncryption(),
    ).decode()
    signer = load_signer(pem)
    assert signer.algorithm == "ES256"
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert signer.public_key == _b64(public)
    # ES256 signatures are raw r||s, 64 bytes.
    assert len(base64.b64decode(signer.sign("x"))) == 64
    _assert_verifies(signer)


def test_load_signer_raw_ed25519_base64() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    for text in (_b64(raw), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        signer = load_signer(text)
        assert signer.algorithm == "Ed25519"
        assert signer.public_key == _b64(key.public_key().public_bytes_raw())
        _assert_verifies(signer)


def test_load_signer_seed_and_public_key() -> None:
    """The 64-byte libsodium layout: seed then public key."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    signer = load_signer(_b64(key.private_bytes_raw() + public))
    assert signer.public_key == _b64(public)
    _assert_verifies(signer)


def _rsa_pem() -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _mismatched_64() -> str:
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return _b64(Ed25519PrivateKey.generate().private_bytes_raw() + other)


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(_rsa_pem, id="rsa-pem"),
        pytest.param(lambda: _pem(ec.generate_private_key(ec.SECP384R1())), id="p384-pem"),
        pytest.param(
            lambda: _pem(
                Ed25519PrivateKey.generate(),
                serialization.BestAvailableEncryption(b"secret passphrase"),
            ),
            id="encrypted-pem",
        ),
        pytest.param(
            lambda: (
                "-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----"
            ),
            id="broken-pem",
        ),
        pytest.param(
            lambda: (
                Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            ),
            id="public-key-pem",
        ),
        pytest.param(lambda: "this is $$ not a key at all", id="garbage"),
        pytest.param(lambda: _b64(b"0123456789abcdef"), id="16-bytes"),
        pytest.param(lambda: _b64(bytes(range(33))), id="33-bytes"),
        pytest.param(_mismatched_64, id="64-bytes-mismatched"),
        pytest.param(lambda: "", id="empty"),
    ],
)
def test_load_signer_rejects(make_key: Callable[[], str]) -> None:
    """Unusable keys raise InvalidKeyError; neither message nor traceback shows the key."""
    text = make_key()
    with pytest.raises(InvalidKeyError) as excinfo:
        load_signer(text)
    err = excinfo.value
    message = str(err)
    assert message
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    for chunk in {body[i : i + 16] for i in range(0, max(len(body) - 15, 1), 8)} - {""}:
        assert chunk not in message
        assert chunk not in repr(err)
    # No chained exception carries key material into a logged traceback.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_signer_repr_hides_private_key() -> None:
    key = Ed25519PrivateKey.generate()
    signer = load_signer(_b64(key.private_bytes_raw()))
    assert _b64(key.private_bytes_raw()) not in repr(signer)
    assert repr(signer) == f"<Signer Ed25519 {signer.public_key}>"


# --- tokens ---------------------------------------------------------------------------------


def _jwt(claims: Any) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def test_token_expiry_of_server_token(novacore: Novacore) -> None:
    token = novacore.server.issue_token(novacore.identity, ttl=123)
    expected = jwt_decode(token, novacore.server._secret)["exp"]
    assert token_expiry(token) == float(expected)
    assert abs(token_expiry(token) - (time.time() + 123)) < 5


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (_jwt({"exp": 1700000000}), 1700000000.0),
        (_jwt({"exp": 1700000000.5}), 1700000000.5),
        (_jwt({"sub": "x"}), None),
        (_jwt({"exp": "1700000000"}), None),
        (_jwt({"exp": True}), None),
        (_jwt([1, 2]), None),
        ("not-a-jwt", None),
        ("a.!!!.c", None),
        ("a.bm90IGpzb24.c", None),
        ("a.é.c", None),
        ("", None),
    ],
)
def test_token_expiry_shapes(token: str, expected: float | None) -> None:
    assert token_expiry(token) == expected


# --- parser ---------------------------------------------------------------------------------


def _parse(data: Any) -> tuple[list[DerReading], ParseStats]:
    stats = ParseStats()
    return parse_event(data if isinstance(data, str) else json.dumps(data), stats), stats


def test_parse_flat_reading() -> None:
    readings, stats = _parse({"type": "pv", "make": "Sungrow", "W": -1500, "timestamp": TS})
    assert readings == [DerReading("pv", None, "Sungrow", float(TS), {"W": -1500.0})]
    assert stats.accepted == 1
    assert not stats.rejected


@pytest.mark.parametrize("envelope", ["data", "telemetry", "reading", "payload"])
def test_parse_envelope(envelope: str) -> None:
    """The reading may sit inside an envelope; outer keys (a DER id) are kept."""
    readings, stats = _parse(
        {"event": "telemetry", "der_id": "der-bat", envelope: {"type": "battery", "W": 5}}
    )
    assert readings == [DerReading("battery", "der-bat", None, None, {"W": 5.0})]
    assert stats.accepted == 1


def test_parse_list_of_readings() -> None:
    readings, stats = _parse(
        [
            {"type": "pv", "W": -1, "timestamp": TS},
            {"type": "meter", "W": 2, "timestamp": TS},
            "junk",
            {"W": 3},
        ]
    )
    assert [(r.der_type, r.values) for r in readings] == [
        ("pv", {"W": -1.0}),
        ("meter", {"W": 2.0}),
    ]
    assert stats.accepted == 2
    assert stats.rejected == {"not_an_object": 1, "no_type": 1}


@pytest.mark.parametrize(
    ("item", "der_id"),
    [
        ({"der_id": "der-1"}, "der-1"),
        ({"derId": "der-2"}, "der-2"),
        ({"der": "der-3"}, "der-3"),
        ({"der_id": 42}, "42"),
        ({"der_id": "", "derId": "der-4"}, "der-4"),
        ({"der_id": None}, None),
        ({"der_id": True}, None),
        ({}, None),
    ],
)
def test_parse_der_id(item: dict[str, Any], der_id: str | None) -> None:
    readings, _ = _parse({"type": "pv", "W": 1, **item})
    assert readings[0].der_id == der_id
    assert readings[0].values == {"W": 1.0}  # the id is never a value


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (TS, float(TS)),
        (TS_S, float(TS)),
        (TS_S + 0.25, TS + 250.0),
        (float(TS), float(TS)),
        ("2024-03-06T16:00:00Z", float(TS)),
        ("2024-03-06T17:00:00.500+01:00", TS + 500.0),
        ("2024-03-06T16:00:00", None),  # no time zone: ambiguous
        ("yesterday", None),
        (True, None),
        (None, None),
        ([TS], None),
        pytest.param(10**400, None, id="huge-int"),
    ],
)
def test_parse_timestamps(timestamp: Any, expected: float | None) -> None:
    """Milliseconds, seconds and ISO-8601 all become milliseconds."""
    readings, stats = _parse({"type": "meter", "W": 1, "timestamp": timestamp})
    assert readings[0].timestamp == expected
    assert stats.accepted == 1


def test_parse_rejects_a_timestamp_far_ahead_of_the_clock() -> None:
    """More than a day ahead it is rejected (taken as is, it would make every later reading of
    its DER look older); within a day it is accepted, in any of its forms."""
    now = time.time()
    hour, day = 3_600_000, 86_400_000
    for timestamp in (
        int(now * 1000) + day + hour,
        now + 2 * 86400.0,  # seconds
        "2999-01-01T00:00:00Z",
        4_102_444_800_000,  # 2100
    ):
        readings, stats = _parse({"type": "meter", "W": 1, "timestamp": timestamp})
        assert readings == [], timestamp
        assert stats.rejected == {"timestamp_in_future": 1}
    readings, stats = _parse({"type": "meter", "W": 1, "timestamp": int(now * 1000) + day - hour})
    assert len(readings) == 1
    assert stats.rejected == {}
    # In a list, only the reading from the future is rejected.
    readings, stats = _parse(
        [
            {"type": "meter", "W": 1, "timestamp": 4_102_444_800_000},
            {"type": "pv", "W": -1, "timestamp": TS},
        ]
    )
    assert [reading.der_type for reading in readings] == ["pv"]
    assert (stats.accepted, stats.rejected) == (1, {"timestamp_in_future": 1})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_parse_non_finite_timestamp(literal: str) -> None:
    readings, _ = _parse(f'{{"type": "meter", "W": 1, "timestamp": {literal}}}')
    assert readings[0].timestamp is None


def test_parse_drops_unusable_values() -> None:
    """Bools, NaN, infinities, absurd magnitudes, strings and nested objects are not values."""
    data = (
        '{"type": "battery", "W": 1200, "V": 51.5, "on": true, "off": false, "nan_W": NaN,'
        ' "inf_W": Infinity, "ninf_W": -Infinity, "huge_W": 1e16, "huge_int_W": 1' + "0" * 400 + ","
        ' "name": "BYD", "nested": {"W": 5}, "list": [1], "none": null, "timestamp": 1709740800000}'
    )
    readings, stats = _parse(data)
    assert readings[0].values == {"W": 1200.0, "V": 51.5}
    assert stats.accepted == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        # deeper than the JSON decoder's recursion limit
        pytest.param("[" * 100_000, "invalid_json", id="deeply-nested"),
        ("42", "not_an_object"),
        ('"a string"', "not_an_object"),
        ("null", "not_an_object"),
        ('{"W": 1}', "no_type"),
        ('{"type": "", "W": 1}', "no_type"),
        ('{"type": 5, "W": 1}', "no_type"),
        ('{"type": "pv", "timestamp": 1709740800000}', "no_values"),
        ('{"type": "pv", "W": "1500"}', "no_values"),
        ('{"type": "pv", "W": true}', "no_values"),
    ],
)
def test_parse_rejects(data: str, reason: str) -> None:
    readings, stats = _parse(data)
    assert readings == []
    assert stats.accepted == 0
    assert stats.rejected == {reason: 1}


def test_parse_type_words() -> None:
    for word, expected in (
        ("pv", "pv"),
        ("solar", "pv"),
        (" Solar ", "pv"),
        ("Battery", "battery"),
        ("meter", "meter"),
        ("EV_Charger", "ev_charger"),
    ):
        readings, _ = _parse({"type": word, "W": 1})
        assert readings[0].der_type == expected
    readings, _ = _parse({"der_type": "solar", "W": 1})
    assert readings[0].der_type == "pv"


def test_parse_stats_count_across_events(caplog: pytest.LogCaptureFixture) -> None:
    """One ParseStats adds up; the debug log of a dropped event is cut short."""
    stats = ParseStats()
    caplog.set_level(logging.DEBUG, logger=novacore.__name__)
    parse_event('{"type": "pv", "W": 1}', stats)
    parse_event("x" * 10_000, stats)
    parse_event("x", stats)
    parse_event('[{"type": "pv", "W": 2}, 7]', stats)
    assert stats.accepted == 2
    assert stats.rejected == {"invalid_json": 2, "not_an_object": 1}
    dropped = [r.getMessage() for r in caplog.records if "Dropped" in r.getMessage()]
    assert len(dropped) == 3
    assert all(len(message) < MAX_LOGGED_CHARS + 50 for message in dropped)


# --- backoff --------------------------------------------------------------------------------


def test_backoff_delay_bounds() -> None:
    """Full jitter between half and all of a doubling, capped ceiling."""
    for attempt in range(40):
        ceiling = min(BACKOFF_MAX, 2.0**attempt)
        delays = [backoff_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), attempt
    assert len({backoff_delay(3) for _ in range(20)}) > 1  # jittered
    assert BACKOFF_MAX / 2 <= backoff_delay(10**9) <= BACKOFF_MAX
    assert all(0.05 <= backoff_delay(0, 0.1, 5) <= 0.1 for _ in range(50))
    assert all(2.5 <= backoff_delay(8, 0.1, 5) <= 5 for _ in range(50))


def test_describe() -> None:
    assert describe(NovacoreError("HTTP 500")) == "NovacoreError: HTTP 500"
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("x" * 1000)) == "ValueError: " + "x" * MAX_LOGGED_CHARS


# --- REST client against the simulator ------------------------------------------------------


def _client(session: aiohttp.ClientSession, novacore: Novacore, **kwargs: Any) -> NovacoreClient:
    if not kwargs:
        kwargs["signer"] = load_signer(novacore.private_key_pem)
    return NovacoreClient(session, novacore.url + "/", **kwargs)


def test_client_needs_credentials(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="signer or a token"):
        NovacoreClient(session, "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="signer or a token"):
        NovacoreClient(session, "http://127.0.0.1:1", token="")


async def test_client_sites_and_devices(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """A key mints one token, used for every request until it is near expiry."""
    client = _client(session, novacore)
    assert client.can_mint
    assert client.token_expires_at is None
    assert await client.async_get_sites() == [Site(SITE_ID, "Home", "org-demo")]
    devices = await client.async_get_devices(SITE_ID)
    assert devices[0] == Device(
        "dev-inv",
        "Sungrow Inverter",
        "inverter",
        "SN12345",
        (Der("der-pv", "pv-array", "pv"), Der("der-bat", "battery_1", "battery")),
    )
    assert devices[1].ders == (Der("der-meter", "grid-meter", "meter"),)
    assert novacore.server.verifies == 1
    assert client.tokens_minted == 1
    assert client.token_expires_at is not None
    assert client.token_expires_at > time.time() + 86000
    assert client.stream_url(SITE_ID) == f"{novacore.url}/stream/sites/{SITE_ID}"


async def test_client_mints_once_for_concurrent_requests(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = _client(session, novacore)
    await asyncio.gather(*(client.async_get_sites() for _ in range(5)))
    assert novacore.server.verifies == 1


async def test_client_renews_token_near_expiry(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """A token within the renewal margin of its expiry is replaced before use."""
    novacore.server.token_ttl = 600
    client = _client(session, novacore)
    await client.async_get_sites()
    await client.async_get_sites()
    assert novacore.server.verifies == 2
    novacore.server.token_ttl = 86400
    await client.async_get_sites()
    await client.async_get_sites()
    assert novacore.server.verifies == 3


async def test_client_remints_once_on_401(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = _client(session, novacore)
    await client.async_get_sites()
    novacore.server.expire_tokens()
    novacore.server.requests.clear()
    assert len(await client.async_get_sites()) == 1
    assert novacore.server.verifies == 2
    assert [path for _, path in novacore.server.requests] == [
        "/sites",
        "/auth/challenge",
        "/auth/verify",
        "/sites",
    ]


async def test_client_refused_key(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """A key the service does not know fails at the challenge: an auth error, no loop."""
    client = _client(session, novacore, signer=load_signer(_b64(bytes(32))))
    with pytest.raises(NovacoreAuthError):
        await client.async_get_sites()
    assert novacore.server.challenges == 1


async def test_client_bare_token_401(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """A bare token cannot be renewed: a 401 is an auth error at once, without a retry."""
    token = novacore.server.issue_token(novacore.identity)
    client = _client(session, novacore, token=token)
    assert not client.can_mint
    assert client.token_expires_at == token_expiry(token)
    assert len(await client.async_get_sites()) == 1
    novacore.server.revoke_all_tokens()
    novacore.server.requests.clear()
    client.invalidate_token()  # no effect without a key
    with pytest.raises(NovacoreAuthError, match="401"):
        await client.async_get_sites()
    assert novacore.server.requests == [("GET", "/sites")]
    assert novacore.server.verifies == 0


async def test_client_403(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    novacore.server.add_site(SITE_ID, "Home", [], identities=["idn-someone-else"])
    client = _client(session, novacore)
    with pytest.raises(NovacoreAuthError, match="403"):
        await client.async_get_devices(SITE_ID)
    assert novacore.server.verifies == 1


async def test_client_404(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    client = _client(session, novacore)
    with pytest.raises(NovacoreNotFoundError, match="404 not_found"):
        await client.async_get_devices("sit-missing")


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(7, 7.0), (0.5, 0.5), ("Wed, 21 Oct 2015 07:28:00 GMT", None)]
)
async def test_client_429_retry_after(
    session: aiohttp.ClientSession,
    novacore: Novacore,
    retry_after: float | str,
    expected: float | None,
) -> None:
    client = _client(session, novacore)
    await client.async_get_sites()
    novacore.server.fail_all(429, retry_after=retry_after)
    with pytest.raises(NovacoreConnectionError, match="429") as excinfo:
        await client.async_get_sites()
    assert excinfo.value.retry_after == expected


@pytest.mark.parametrize("status", [500, 503])
async def test_client_server_error(
    session: aiohttp.ClientSession, novacore: Novacore, status: int
) -> None:
    client = _client(session, novacore)
    await client.async_get_sites()
    novacore.server.fail_all(status)
    with pytest.raises(NovacoreConnectionError, match=str(status)) as excinfo:
        await client.async_get_sites()
    assert excinfo.value.retry_after is None
    assert len(await client.async_get_sites()) == 1  # the next request works again


async def test_client_other_error_status(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = _client(session, novacore)
    await client.async_get_sites()
    novacore.server.fail_all(422)
    with pytest.raises(NovacoreError, match="422 unprocessable_entity") as excinfo:
        await client.async_get_sites()
    assert type(excinfo.value) is NovacoreError


async def test_client_connection_refused(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = _client(session, novacore)
    await novacore.server.stop()
    with pytest.raises(NovacoreConnectionError) as excinfo:
        await client.async_get_sites()
    assert excinfo.value.retry_after is None
    # Nothing of the request (such as a header with the token) is in the message.
    assert "Authorization" not in str(excinfo.value)


# --- unusual answers (a small server of its own) ---------------------------------------------


class OddServer:
    """Answers Novacore paths with unusual but possible shapes."""

    def __init__(self) -> None:
        self.responses: dict[str, Callable[[], web.Response]] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        make = self.responses.get(request.path)
        return make() if make else web.json_response({"error": "not_found"}, status=404)


@pytest.fixture
async def odd(socket_enabled: None) -> AsyncGenerator[OddServer]:
    server = OddServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_client_envelopes_and_junk_items(
    session: aiohttp.ClientSession, odd: OddServer
) -> None:
    """Lists may be wrapped; items without an id are skipped; ids may be numbers."""
    odd.responses["/sites"] = lambda: web.json_response(
        {"sites": [{"id": "s1", "name": "A", "org_id": "o1"}, {"id": 7}, "junk", {"name": "x"}]}
    )
    odd.responses["/sites/s1/devices"] = lambda: web.json_response(
        {
            "data": [
                {
                    "id": "d1",
                    "ders": [
                        {"id": "e1", "type": "Solar", "name": "Roof"},
                        {"id": 2},
                        {"type": "pv"},
                        "junk",
                    ],
                },
                {"id": "d2", "ders": None, "hardware_id": 99},
                "junk",
                {"name": "no id"},
            ]
        }
    )
    client = NovacoreClient(session, odd.url, token="t")
    assert await client.async_get_sites() == [
        Site("s1", "A", "o1"),
        Site("7", "7", None),
    ]
    assert await client.async_get_devices("s1") == [
        Device("d1", "d1", None, None, (Der("e1", "Roof", "pv"), Der("2", "2", ""))),
        Device("d2", "d2", None, "99", ()),
    ]


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        (lambda: web.json_response({"sites": "nope"}), NovacoreError, "unexpected response"),
        (lambda: web.json_response("a string"), NovacoreError, "unexpected response"),
        (lambda: web.Response(text="<html></html>"), NovacoreError, "not JSON"),
        (
            lambda: web.Response(text="Bad gateway", status=502),
            NovacoreConnectionError,
            "^HTTP 502$",
        ),
        (lambda: web.json_response(["x"], status=418), NovacoreError, "^HTTP 418$"),
    ],
)
async def test_client_unusual_answers(
    session: aiohttp.ClientSession,
    odd: OddServer,
    response: Callable[[], web.Response],
    error: type[Exception],
    match: str,
) -> None:
    odd.responses["/sites"] = response
    client = NovacoreClient(session, odd.url, token="t")
    with pytest.raises(error, match=match):
        await client.async_get_sites()


@pytest.mark.parametrize(
    ("challenge", "verify", "match"),
    [
        ({"nope": 1}, {"token": "t"}, "unexpected challenge response"),
        ({"challenge": "c"}, {"token": 5}, "unexpected verify response"),
    ],
)
async def test_client_unusual_auth_answers(
    session: aiohttp.ClientSession,
    odd: OddServer,
    challenge: dict[str, Any],
    verify: dict[str, Any],
    match: str,
) -> None:
    odd.responses["/auth/challenge"] = lambda: web.json_response(challenge)
    odd.responses["/auth/verify"] = lambda: web.json_response(verify)
    client = NovacoreClient(session, odd.url, signer=load_signer(_b64(bytes(32))))
    with pytest.raises(NovacoreError, match=match):
        await client.async_get_sites()


# --- stream against the simulator -----------------------------------------------------------


def _stream_requests(novacore: Novacore) -> int:
    """Count stream requests, including those refused before the stream handler."""
    return sum(1 for _, path in novacore.server.requests if path.startswith("/stream/"))


class StreamProbe:
    """Runs a SiteStream as a task and records what it reports."""

    def __init__(self, client: NovacoreClient, site_id: str = SITE_ID) -> None:
        self.readings: list[DerReading] = []
        self.connected_at: list[float] = []
        self.errors: list[tuple[float, Exception]] = []
        self.stream = SiteStream(
            client,
            site_id,
            on_readings=self.readings.extend,
            on_connected=lambda: self.connected_at.append(time.monotonic()),
            on_disconnected=lambda err: self.errors.append((time.monotonic(), err)),
            read_timeout=60,  # no spurious reconnect when a busy machine stalls a test
            backoff_initial=0.01,
            backoff_max=0.05,
        )
        self.task = asyncio.create_task(self.stream.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_stream_readings_and_resume(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """Events become readings; after a cut the stream resumes from the last event id."""
    server = novacore.server
    probe = StreamProbe(_client(session, novacore))
    try:
        await wait_for(lambda: probe.stream.connected)
        await novacore.push({"type": "pv", "W": -1, "timestamp": TS}, event_id="e1")
        await novacore.push({"type": "pv", "W": -2, "timestamp": TS + 1}, event="ping")
        await wait_for(lambda: probe.stream.stats.ignored_events == 1)
        await server.cut_streams(SITE_ID)
        await novacore.push({"type": "pv", "W": -3, "timestamp": TS + 2}, event_id="e3")
        await wait_for(lambda: len(probe.readings) == 2)
        assert [r.values["W"] for r in probe.readings] == [-1.0, -3.0]
        assert server.last_event_ids == [None, "e1"]
        assert probe.stream.last_event_id == "e3"
        assert probe.stream.stats.ignored_events == 1
        assert probe.stream.stats.connects == 2
        assert probe.stream.stats.disconnects == 1
    finally:
        await probe.stop()


async def test_stream_key_refused_twice_raises(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """With a key, a refused stream re-mints; if the fresh tokens are refused too, it gives up."""
    novacore.server.fail_stream(401, count=100)
    probe = StreamProbe(_client(session, novacore))
    with pytest.raises(NovacoreAuthError):
        await asyncio.wait_for(probe.task, 30)  # a hang guard
    assert novacore.server.verifies == 3
    assert _stream_requests(novacore) == 3
    assert not probe.stream.connected
    assert isinstance(probe.errors[-1][1], NovacoreAuthError)


async def test_stream_key_refused_once_recovers(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    novacore.server.fail_stream(401, count=1)
    probe = StreamProbe(_client(session, novacore))
    try:
        await novacore.server.wait_for_streams(SITE_ID)
        assert novacore.server.verifies == 2
        assert probe.stream.stats.last_error == "NovacoreAuthError: HTTP 401 unauthorized"
    finally:
        await probe.stop()


async def test_stream_bare_token_refused_raises(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    token = novacore.server.issue_token(novacore.identity)
    novacore.server.revoke_all_tokens()
    probe = StreamProbe(_client(session, novacore, token=token))
    with pytest.raises(NovacoreAuthError):
        await asyncio.wait_for(probe.task, 30)  # a hang guard
    assert _stream_requests(novacore) == 1
    assert len(probe.errors) == 1


async def test_stream_honours_retry_after(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """A 429's Retry-After is the least delay before the next attempt, whatever the backoff."""
    novacore.server.fail_stream(429, retry_after=0.3)
    probe = StreamProbe(_client(session, novacore))
    try:
        await wait_for(lambda: probe.connected_at)
        failed_at, error = probe.errors[0]
        assert isinstance(error, NovacoreConnectionError)
        assert error.retry_after == 0.3
        assert probe.connected_at[0] - failed_at >= 0.29
        assert _stream_requests(novacore) == 2
    finally:
        await probe.stop()


async def test_stream_keeps_retrying_server_errors(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    novacore.server.fail_stream(500, count=3)
    probe = StreamProbe(_client(session, novacore))
    try:
        await novacore.server.wait_for_streams(SITE_ID)
        assert _stream_requests(novacore) == 4
        assert probe.stream.stats.disconnects == 3
    finally:
        await probe.stop()


async def test_stream_ended_by_server_reconnects(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    novacore.server.drop_streams_on_expiry = True
    probe = StreamProbe(_client(session, novacore))
    try:
        await novacore.server.wait_for_streams(SITE_ID)
        novacore.server.expire_tokens()  # the server ends the stream cleanly
        await wait_for(lambda: novacore.server.stream_connects == 2 and probe.stream.connected)
        assert isinstance(probe.errors[0][1], StreamEndedError)
        assert isinstance(probe.errors[1][1], NovacoreAuthError)  # the old token, once
        assert novacore.server.verifies == 2
    finally:
        await probe.stop()


async def test_stream_invalid_utf8_is_rejected(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """Bytes that are not UTF-8 make one rejected event: no error, no reconnect."""
    probe = StreamProbe(_client(session, novacore))
    try:
        await novacore.server.wait_for_streams(SITE_ID)
        await novacore.server.push_raw(SITE_ID, b"data: \xff\xfe\n\n")
        await novacore.push({"type": "meter", "W": 5})
        await wait_for(lambda: probe.readings)
        assert probe.stream.stats.parse.rejected == {"invalid_json": 1}
        assert not probe.errors
        assert novacore.server.stream_connects == 1
    finally:
        await probe.stop()


async def test_stream_wrong_content_type(session: aiohttp.ClientSession, odd: OddServer) -> None:
    odd.responses[f"/stream/sites/{SITE_ID}"] = lambda: web.json_response({"type": "pv", "W": 1})
    probe = StreamProbe(NovacoreClient(session, odd.url, token="t"))
    try:
        await wait_for(lambda: len(probe.errors) >= 2)
        assert "unexpected content type application/json" in str(probe.errors[0][1])
        assert not probe.readings
        assert probe.stream.stats.connects == 0
    finally:
        await probe.stop()


async def test_stream_without_callbacks(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """The connection callbacks are optional."""
    stream = SiteStream(
        _client(session, novacore),
        SITE_ID,
        on_readings=lambda readings: None,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    assert stream.read_timeout == READ_TIMEOUT
    task = asyncio.create_task(stream.run())
    try:
        await wait_for(lambda: stream.connected)
        await novacore.server.cut_streams(SITE_ID)
        await wait_for(lambda: stream.stats.disconnects == 1 and stream.connected)
        assert stream.stats.connects == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_event_whose_handling_fails_does_not_end_the_stream(
    session: aiohttp.ClientSession, novacore: Novacore, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect in the readings' handler skips that event, logged; the stream stays open.

    Reconnecting instead would resume at the same event (Last-Event-ID) and fail on it again.
    """
    seen: list[float] = []

    def on_readings(readings: list[DerReading]) -> None:
        value = readings[0].values["W"]
        seen.append(value)
        if value in (-2, -4):
            raise ValueError("a defect")

    stream = SiteStream(
        _client(session, novacore), SITE_ID, on_readings=on_readings, read_timeout=60
    )
    task = asyncio.create_task(stream.run())
    try:
        await wait_for(lambda: stream.connected)
        with caplog.at_level(logging.DEBUG, logger="custom_components.energy_telemetry"):
            for index, value in enumerate((-1, -2, -3, -4, -5)):
                await novacore.push({"type": "pv", "W": value, "timestamp": TS + index})
            await wait_for(lambda: len(seen) == 5)
        assert seen == [-1.0, -2.0, -3.0, -4.0, -5.0]
        assert stream.stats.failed_events == 2
        assert stream.stats.connects == 1
        assert stream.stats.disconnects == 0
        assert stream.connected
        failures = [r for r in caplog.records if "could not be applied" in r.getMessage()]
        # The first with its traceback at error level, the next at debug: no log flood.
        assert [r.levelno for r in failures] == [logging.ERROR, logging.DEBUG]
        assert all(r.exc_info and "a defect" in str(r.exc_info[1]) for r in failures)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_stream_204_ends_the_stream(session: aiohttp.ClientSession, odd: OddServer) -> None:
    """A 204 answer ends the stream without an event; the stream tries again later."""
    odd.responses[f"/stream/sites/{SITE_ID}"] = lambda: web.Response(
        status=204, headers={"Content-Type": "text/event-stream"}
    )
    probe = StreamProbe(NovacoreClient(session, odd.url, token="t"))
    try:
        await wait_for(lambda: len(probe.errors) >= 2)
        assert isinstance(probe.errors[0][1], StreamEndedError)
        assert probe.stream.stats.connects >= 2
        assert not probe.readings
    finally:
        await probe.stop()


# --- no Home Assistant in the protocol modules ----------------------------------------------

_STANDALONE = """
import importlib, importlib.abc, importlib.util, os, pkgutil, sys

class BlockHomeAssistant(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "homeassistant" or name.startswith("homeassistant."):
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, BlockHomeAssistant())
try:
    import homeassistant.core
except ImportError:
    pass
else:
    raise SystemExit("the import blocker does not work")

def load(name, path):
    if os.path.isdir(path):
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(path, "__init__.py"), submodule_search_locations=[path]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    print("module", name)
    if os.path.isdir(path):
        for info in pkgutil.iter_modules([path]):
            load(f"{name}.{info.name}", os.path.join(path, info.name if info.ispkg else info.name + ".py"))

for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    load(name, path)

leaked = sorted(m for m in sys.modules if m.split(".")[0] == "homeassistant")
assert not leaked, leaked
guard = sys.modules["standalone_totals"].TotalGuard()
guard.seed(None, None)
assert guard.accept(1.0, 1.0)
novacore = sys.modules["standalone_protocol.novacore"]
common = sys.modules["standalone_protocol.common"]
parsed = novacore.parse_event('{"type": "pv", "W": -5}', common.ParseStats())
assert parsed[0].values == {"W": -5.0}
signs = sys.modules["standalone_protocol.novacore.signs"].SignEngine()
assert signs.observe("b", "battery", 1.0, 5.0, {"total_charge_Wh": 1.0}) is None
assert signs.factor("b", "battery") == 1
reading = sys.modules["standalone_protocol.ainsite"].parse_payload(
    b'{"smarteo_payload_schema_version": 1, "register_id": 2, "meter_reading": 5,'
    b' "data_timestamp_utc": "2025-01-01T00:00:00Z"}'
)
assert reading.value == 5.0
print("standalone ok")
"""


def test_protocol_modules_do_not_import_homeassistant() -> None:
    """Every module of the protocol package, and the pure totals and hours, load without HA."""
    package = Path(protocol.__file__).parent
    files = {
        "standalone_protocol": package,
        "standalone_totals": Path(totals.__file__),
        "standalone_energy_hours": Path(energy_hours.__file__),
    }
    args = [str(item) for name, path in files.items() for item in (name, path)]
    result = subprocess.run(
        [sys.executable, "-I", "-c", _STANDALONE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "standalone ok"
    # Every module of the package was loaded with Home Assistant blocked.
    expected = {
        "module standalone_protocol."
        + ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
    }
    expected = {line.removesuffix(".__init__") for line in expected}
    assert set(lines[:-1]) == expected | {
        "module standalone_protocol",
        "module standalone_totals",
        "module standalone_energy_hours",
    }
    assert any("ainsite.stream" in line for line in lines)


# --- TotalGuard -----------------------------------------------------------------------------


def _seeded(value: float | None = None, timestamp: float | None = None) -> TotalGuard:
    guard = TotalGuard()
    guard.seed(value, timestamp)
    return guard


def test_guard_first_reading_and_increase() -> None:
    guard = _seeded()
    assert guard.seeded
    assert guard.accept(100.0, 1.0)
    assert guard.accept(100.0, 2.0)  # unchanged but newer: applied
    assert guard.accept(150.0, 3.0)
    assert (guard.value, guard.timestamp, guard.rejected) == (150.0, 3.0, 0)


def test_guard_drops_stale_and_duplicate_timestamps() -> None:
    guard = _seeded(100.0, 10.0)
    assert not guard.accept(500.0, 9.0)  # older, even though higher
    assert not guard.accept(500.0, 10.0)  # same time: duplicate
    assert (guard.value, guard.timestamp, guard.rejected) == (100.0, 10.0, 2)
    assert guard.accept(500.0, 11.0)
    assert guard.value == 500.0


def test_guard_without_timestamps_judges_values() -> None:
    guard = _seeded(100.0, None)
    assert guard.accept(120.0, None)
    assert not guard.accept(110.0, None)
    assert guard.value == 120.0


def test_guard_rejects_small_drop() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(999.0, 2.0)
    assert not guard.accept(500.0, 3.0)  # half: still a glitch
    assert (guard.value, guard.resets, guard.rejected) == (1000.0, 0, 2)
    # A small drop never becomes a reset, however often it repeats.
    assert not guard.accept(600.0, 4.0)
    assert guard.value == 1000.0


def test_guard_rejects_lone_large_drop() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(10.0, 2.0)
    assert guard.accept(1001.0, 3.0)  # the low reading was a glitch
    assert (guard.value, guard.resets) == (1001.0, 0)
    # The glitch is forgotten: a later low reading is a new candidate, not a confirmation.
    assert not guard.accept(20.0, 4.0)
    assert guard.value == 1001.0


def test_guard_applies_confirmed_reset() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(10.0, 2.0)
    assert guard.accept(12.0, 3.0)
    assert (guard.value, guard.timestamp, guard.resets) == (12.0, 3.0, 1)
    assert guard.accept(15.0, 4.0)
    assert guard.value == 15.0


def test_guard_reset_needs_a_higher_confirmation() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(100.0, 2.0)
    assert not guard.accept(50.0, 3.0)  # lower than the candidate: a new candidate
    assert guard.accept(60.0, 4.0)
    assert (guard.value, guard.resets) == (60.0, 1)


def test_guard_duplicate_of_candidate_does_not_confirm() -> None:
    guard = _seeded(1000.0, 1.0)
    assert not guard.accept(10.0, 2.0)
    assert not guard.accept(10.0, 2.0)  # the same reading again (a replay)
    assert not guard.accept(11.0, 1.5)  # older than the candidate
    assert (guard.value, guard.resets) == (1000.0, 0)
    assert guard.accept(11.0, 3.0)
    assert guard.resets == 1


def test_guard_holds_readings_until_seeded() -> None:
    guard = TotalGuard()
    assert not guard.seeded
    for value, timestamp in ((90.0, 1.0), (110.0, 3.0), (105.0, 4.0), (120.0, 5.0)):
        assert not guard.accept(value, timestamp)
    assert guard.value is None
    assert guard.seed(100.0, 2.0)
    # Replayed in order against the seed: 90 is older, 110 applies, 105 is a glitch, 120 applies.
    assert (guard.value, guard.timestamp, guard.rejected) == (120.0, 5.0, 2)


def test_guard_seed_without_restored_value() -> None:
    guard = TotalGuard()
    assert not guard.seed(None, None)
    assert guard.value is None
    guard = TotalGuard()
    guard.accept(5.0, 1.0)
    guard.accept(7.0, 2.0)
    assert guard.seed(None, None)
    assert (guard.value, guard.timestamp) == (7.0, 2.0)


def test_guard_pending_is_bounded() -> None:
    guard = TotalGuard()
    for index in range(MAX_PENDING + 20):
        guard.accept(float(index), float(index))
    guard.seed(None, None)
    assert guard.value == float(MAX_PENDING + 19)
    # The oldest held readings were dropped: the first replayed is index 20.
    guard = TotalGuard()
    for index in range(MAX_PENDING + 20):
        guard.accept(1000.0 - index, float(index))
    guard.seed(None, None)
    assert guard.value == 980.0
