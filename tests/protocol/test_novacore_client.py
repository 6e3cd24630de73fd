"""The Novacore REST client against the simulator, and against a server with unusual answers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
import time
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from custom_components.energy_telemetry.protocol.novacore import (
    MAX_LOGGED_CHARS,
    Der,
    Device,
    NovacoreAuthError,
    NovacoreClient,
    NovacoreConnectionError,
    NovacoreError,
    NovacoreNotFoundError,
    Site,
    describe,
    load_signer,
    token_expiry,
)
from tests.helpers.odd_server import OddServer
from tests.helpers.site import DEVICES, SITE_ID, Novacore

# --- REST client against the simulator ------------------------------------------------------


def test_client_needs_credentials(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="signer or a token"):
        NovacoreClient(session, "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="signer or a token"):
        NovacoreClient(session, "http://127.0.0.1:1", token="")


async def test_client_sites_and_devices(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """A key mints one token, used for every request until it is near expiry."""
    client = novacore.client(session)
    assert client.can_mint
    assert client.token_expires_at is None
    assert await client.async_get_sites() == [Site(SITE_ID, "Home", "org-demo")]
    devices = await client.async_get_devices(SITE_ID)
    assert devices[0] == Device(
        "dev-inv",
        "Sungrow Inverter",
        "inverter",
        "SN12345",
        (
            Der("der-pv", "pv-array", "pv"),
            Der("der-bat", "battery_1", "battery"),
            Der("der-inv", "inverter", "inverter"),
        ),
    )
    assert devices[1].ders == (Der("der-meter", "grid-meter", "meter"),)
    assert devices[2].ders == (Der("der-evc", "garage-charger", "ev_charger"),)
    assert novacore.server.verifies == 1
    assert client.tokens_minted == 1
    assert client.token_expires_at is not None
    assert client.token_expires_at > time.time() + 86000
    assert client.stream_url(SITE_ID) == f"{novacore.url}/stream/sites/{SITE_ID}"


async def test_device_list_der_types(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """The device list's DER type words are normalised as the readings' are."""
    words = ["v2x_charger", "ev_port", "charger", "solar", "inverter"]
    charger = {
        **DEVICES[2],
        "ders": [{"id": f"der-{word}", "name": word, "type": word} for word in words],
    }
    novacore.server.set_devices(SITE_ID, [charger])
    client = novacore.client(session, token=novacore.server.issue_token(novacore.identity))
    devices = await client.async_get_devices(SITE_ID)
    assert [der.type for der in devices[0].ders] == [
        "ev_charger",
        "ev_charger",
        "ev_charger",
        "pv",
        "inverter",
    ]
    assert devices[0].hardware_id == "EVC-1"


async def test_client_mints_once_for_concurrent_requests(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = novacore.client(session)
    await asyncio.gather(*(client.async_get_sites() for _ in range(5)))
    assert novacore.server.verifies == 1


async def test_client_renews_token_near_expiry(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    """A token within the renewal margin of its expiry is replaced before use."""
    novacore.server.token_ttl = 600
    client = novacore.client(session)
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
    client = novacore.client(session)
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
    client = novacore.client(session, signer=load_signer(base64.b64encode(bytes(32)).decode()))
    with pytest.raises(NovacoreAuthError):
        await client.async_get_sites()
    assert novacore.server.challenges == 1


async def test_client_bare_token_401(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    """A bare token cannot be renewed: a 401 is an auth error at once, without a retry."""
    token = novacore.server.issue_token(novacore.identity)
    client = novacore.client(session, token=token)
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
    client = novacore.client(session)
    with pytest.raises(NovacoreAuthError, match="403"):
        await client.async_get_devices(SITE_ID)
    assert novacore.server.verifies == 1


async def test_client_404(session: aiohttp.ClientSession, novacore: Novacore) -> None:
    client = novacore.client(session)
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
    client = novacore.client(session)
    await client.async_get_sites()
    novacore.server.fail_all(429, retry_after=retry_after)
    with pytest.raises(NovacoreConnectionError, match="429") as excinfo:
        await client.async_get_sites()
    assert excinfo.value.retry_after == expected


@pytest.mark.parametrize("status", [500, 503])
async def test_client_server_error(
    session: aiohttp.ClientSession, novacore: Novacore, status: int
) -> None:
    client = novacore.client(session)
    await client.async_get_sites()
    novacore.server.fail_all(status)
    with pytest.raises(NovacoreConnectionError, match=str(status)) as excinfo:
        await client.async_get_sites()
    assert excinfo.value.retry_after is None
    assert len(await client.async_get_sites()) == 1  # the next request works again


async def test_client_other_error_status(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = novacore.client(session)
    await client.async_get_sites()
    novacore.server.fail_all(422)
    with pytest.raises(NovacoreError, match="422 unprocessable_entity") as excinfo:
        await client.async_get_sites()
    assert type(excinfo.value) is NovacoreError


async def test_client_connection_refused(
    session: aiohttp.ClientSession, novacore: Novacore
) -> None:
    client = novacore.client(session)
    await novacore.server.stop()
    with pytest.raises(NovacoreConnectionError) as excinfo:
        await client.async_get_sites()
    assert excinfo.value.retry_after is None
    # Nothing of the request (such as a header with the token) is in the message.
    assert "Authorization" not in str(excinfo.value)


def test_describe() -> None:
    assert describe(NovacoreError("HTTP 500")) == "NovacoreError: HTTP 500"
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("x" * 1000)) == "ValueError: " + "x" * MAX_LOGGED_CHARS


# --- unusual answers (a small server of its own) ---------------------------------------------


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
    client = NovacoreClient(
        session, odd.url, signer=load_signer(base64.b64encode(bytes(32)).decode())
    )
    with pytest.raises(NovacoreError, match=match):
        await client.async_get_sites()
