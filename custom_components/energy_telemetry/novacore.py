"""Sourceful Novacore protocol: keys, tokens, REST client, SSE stream and reading parser.

This module does not depend on Home Assistant; it only needs aiohttp, aiohttp-sse-client and
cryptography.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import json
import logging
import math
import random
import time
from typing import Any, cast

import aiohttp
from aiohttp_sse_client.client import READY_STATE_CONNECTING, EventSource, MessageEvent
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_LOGGER = logging.getLogger(__name__)

DEFAULT_API_URL = "https://novacore-mainnet.sourceful.dev"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
TOKEN_RENEW_MARGIN = 3600.0
"""Mint a new token this many seconds before the current one expires."""
READ_TIMEOUT = 120.0
"""Seconds without a byte on the stream before the connection is taken as dead."""
READ_BUFSIZE = 2**21
"""aiohttp read buffer for the stream: SSE lines up to twice this size are accepted."""
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
MAX_LOGGED_CHARS = 200

_TYPE_ALIASES = {"pv": "pv", "solar": "pv", "battery": "battery", "meter": "meter"}
_DER_ID_KEYS = ("der_id", "derId", "der")
_ENVELOPE_KEYS = ("data", "telemetry", "reading", "payload")
_NON_VALUE_KEYS = frozenset({"timestamp", *_DER_ID_KEYS})
_IGNORED_EVENT_NAMES = frozenset({"keepalive", "keep-alive", "ping", "heartbeat"})
_MAX_ABS_VALUE = 1e15


class NovacoreError(Exception):
    """Base error of the Novacore client."""


class NovacoreConnectionError(NovacoreError):
    """The service cannot be reached or answered with a server error."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Store the delay the service asked for, if any."""
        super().__init__(message)
        self.retry_after = retry_after


class NovacoreCertificateError(NovacoreConnectionError):
    """The server's TLS certificate is not trusted."""


class NovacoreAuthError(NovacoreError):
    """The service refused the credentials (401 or 403)."""


class NovacoreNotFoundError(NovacoreError):
    """The requested site does not exist (any more)."""


class InvalidKeyError(NovacoreError):
    """The private key cannot be read or is of an unsupported type."""


class StreamEndedError(NovacoreError):
    """The server ended the event stream."""


# --- Keys and signatures -------------------------------------------------------------------


class Signer:
    """Signs authentication challenges with an Ed25519 or ES256 (P-256) private key."""

    def __init__(self, key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
        """Wrap a loaded private key."""
        self._key = key
        if isinstance(key, Ed25519PrivateKey):
            self.algorithm = "Ed25519"
            raw = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        else:
            self.algorithm = "ES256"
            raw = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        self.public_key = base64.b64encode(raw).decode()

    def sign(self, challenge: str) -> str:
        """Return the base64 signature of a challenge string."""
        message = challenge.encode()
        if isinstance(self._key, Ed25519PrivateKey):
            signature = self._key.sign(message)
        else:
            r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return base64.b64encode(signature).decode()

    def __repr__(self) -> str:
        """Never show the key."""
        return f"<Signer {self.algorithm} {self.public_key}>"


def load_signer(text: str) -> Signer:
    """Read a PEM Ed25519 / P-256 private key, or base64 of a raw 32-byte Ed25519 key."""
    data = text.strip()
    key: Any
    if data.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise InvalidKeyError("not a readable unencrypted PEM private key") from None
    else:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            try:
                raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            except (binascii.Error, ValueError):
                raise InvalidKeyError("neither PEM nor base64") from None
        if len(raw) == 64:
            # libsodium layout: 32-byte seed followed by the public key
            seed, public = raw[:32], raw[32:]
            key = Ed25519PrivateKey.from_private_bytes(seed)
            if key.public_key().public_bytes_raw() != public:
                raise InvalidKeyError("64-byte key whose halves do not match")
        elif len(raw) == 32:
            key = Ed25519PrivateKey.from_private_bytes(raw)
        else:
            raise InvalidKeyError("a raw Ed25519 key has 32 bytes")
    if isinstance(key, Ed25519PrivateKey):
        return Signer(key)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return Signer(key)
    raise InvalidKeyError("only Ed25519 and ECDSA P-256 keys are supported")


def token_expiry(token: str) -> float | None:
    """Return the `exp` claim of a JWT (epoch seconds) without verifying it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims["exp"]
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


# --- REST ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    """A Novacore site."""

    id: str
    name: str
    org_id: str | None = None


@dataclass(frozen=True, slots=True)
class Der:
    """A distributed energy resource as listed by the devices endpoint."""

    id: str
    name: str
    type: str
    """Normalised type: `pv`, `battery`, `meter`, or the service's own word."""


@dataclass(frozen=True, slots=True)
class Device:
    """A physical device of a site, holding one or more DERs."""

    id: str
    name: str
    type: str | None
    hardware_id: str | None
    ders: tuple[Der, ...]


def normalise_type(value: str) -> str:
    """Map the service's DER type words onto one vocabulary (`solar` and `pv` are both `pv`)."""
    lowered = value.strip().lower()
    return _TYPE_ALIASES.get(lowered, lowered)


def _items(body: Any, *keys: str) -> list[Any]:
    """Accept a bare list or a list wrapped in one of a few envelope keys."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return list(body[key])
    raise NovacoreError("unexpected response shape")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class NovacoreClient:
    """REST client for Novacore; mints and renews tokens itself when it holds a key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str = DEFAULT_API_URL,
        *,
        signer: Signer | None = None,
        token: str | None = None,
    ) -> None:
        """Use either a signer (preferred: tokens are minted as needed) or a bare token."""
        if signer is None and not token:
            raise ValueError("a signer or a token is needed")
        self._session = session
        self.api_url = api_url.rstrip("/")
        self._signer = signer
        self._token = token or None
        self._expires_at = token_expiry(token) if token else None
        self._mint_lock = asyncio.Lock()
        self.tokens_minted = 0

    @property
    def can_mint(self) -> bool:
        """Return True when the client can mint its own tokens."""
        return self._signer is not None

    @property
    def token_expires_at(self) -> float | None:
        """Return the expiry of the current token (epoch seconds), if known."""
        return self._expires_at

    def invalidate_token(self) -> None:
        """Forget the current token so that the next request mints a new one."""
        if self._signer is not None:
            self._token = None
            self._expires_at = None

    async def async_token(self) -> str:
        """Return a valid token, minting one when there is none or it is about to expire."""
        if self._signer is None:
            assert self._token is not None
            return self._token
        if self._token is not None and (
            self._expires_at is None or self._expires_at - time.time() > TOKEN_RENEW_MARGIN
        ):
            return self._token
        async with self._mint_lock:
            if self._token is None or (
                self._expires_at is not None
                and self._expires_at - time.time() <= TOKEN_RENEW_MARGIN
            ):
                await self._async_mint()
        assert self._token is not None
        return self._token

    async def _async_mint(self) -> None:
        assert self._signer is not None
        signer = self._signer
        challenge = await self._request(
            "POST", "/auth/challenge", json_body={"public_key": signer.public_key}, auth=False
        )
        if not isinstance(challenge, dict) or not isinstance(challenge.get("challenge"), str):
            raise NovacoreError("unexpected challenge response")
        text = challenge["challenge"]
        verified = await self._request(
            "POST",
            "/auth/verify",
            json_body={
                "public_key": signer.public_key,
                "signature": signer.sign(text),
                "challenge": text,
            },
            auth=False,
        )
        if not isinstance(verified, dict) or not isinstance(verified.get("token"), str):
            raise NovacoreError("unexpected verify response")
        self._token = verified["token"]
        self._expires_at = token_expiry(self._token)
        self.tokens_minted += 1
        _LOGGER.debug("Minted a Novacore token for %s", signer.public_key)

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, auth: bool = True
    ) -> Any:
        """Send a request; with a key, a 401 mints a new token and retries once."""
        for attempt in (1, 2):
            headers = {"Accept": "application/json"}
            if auth:
                headers["Authorization"] = f"Bearer {await self.async_token()}"
            try:
                async with self._session.request(
                    method,
                    f"{self.api_url}{path}",
                    json=json_body,
                    headers=headers,
                    timeout=REQUEST_TIMEOUT,
                ) as response:
                    if response.status == 401 and auth and self.can_mint and attempt == 1:
                        self.invalidate_token()
                        continue
                    await raise_for_status(response)
                    return await response.json(content_type=None)
            except aiohttp.ClientConnectorCertificateError as err:
                raise NovacoreCertificateError(
                    f"{method} {path}: the server's TLS certificate is not trusted"
                    f" ({err.certificate_error})"
                ) from None
            except (aiohttp.ClientError, TimeoutError) as err:
                raise NovacoreConnectionError(
                    f"{method} {path} failed: {type(err).__name__}"
                ) from None
            except ValueError:
                raise NovacoreError(f"{method} {path}: response is not JSON") from None
        raise NovacoreAuthError(f"{method} {path}: refused")  # pragma: no cover

    async def async_get_sites(self) -> list[Site]:
        """Return the sites this identity can see."""
        sites = []
        for item in _items(await self._request("GET", "/sites"), "sites", "data", "items"):
            if isinstance(item, dict) and (site_id := _text(item.get("id"))):
                name = _text(item.get("name")) or site_id
                sites.append(Site(site_id, name, _text(item.get("org_id"))))
        return sites

    async def async_get_devices(self, site_id: str) -> list[Device]:
        """Return the devices of a site and their DERs."""
        body = await self._request("GET", f"/sites/{site_id}/devices")
        devices = []
        for item in _items(body, "devices", "data", "items"):
            if not isinstance(item, dict) or not (device_id := _text(item.get("id"))):
                continue
            ders = []
            for der in item.get("ders") or ():
                if isinstance(der, dict) and (der_id := _text(der.get("id"))):
                    der_type = _text(der.get("type"))
                    ders.append(
                        Der(
                            der_id, _text(der.get("name")) or der_id, normalise_type(der_type or "")
                        )
                    )
            devices.append(
                Device(
                    device_id,
                    _text(item.get("name")) or device_id,
                    _text(item.get("type")),
                    _text(item.get("hardware_id")),
                    tuple(ders),
                )
            )
        return devices

    def stream_url(self, site_id: str) -> str:
        """Return the URL of a site's event stream."""
        return f"{self.api_url}/stream/sites/{site_id}"

    @property
    def session(self) -> aiohttp.ClientSession:
        """Return the HTTP session."""
        return self._session


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Turn an error status into the matching NovacoreError."""
    status = response.status
    if status < 400:
        return
    detail = ""
    try:
        body = await response.json(content_type=None)
        if isinstance(body, dict):
            detail = str(body.get("error") or "")[:MAX_LOGGED_CHARS]
    except (ValueError, aiohttp.ClientError):
        pass
    message = f"HTTP {status} {detail}".strip()
    if status in (401, 403):
        raise NovacoreAuthError(message)
    if status == 404:
        raise NovacoreNotFoundError(message)
    if status == 429 or status >= 500:
        raise NovacoreConnectionError(message, _retry_after(response))
    raise NovacoreError(message)


# --- Readings ------------------------------------------------------------------------------


@dataclass(slots=True)
class Reading:
    """One telemetry reading of one DER."""

    der_type: str
    der_id: str | None
    make: str | None
    timestamp: float | None
    """Milliseconds since the epoch, as sent."""
    values: dict[str, float]


@dataclass(slots=True)
class ParseStats:
    """What the parser accepted and why it dropped the rest."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def reject(self, reason: str, data: object) -> None:
        """Count and log one dropped input."""
        self.rejected[reason] += 1
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("Dropped Novacore event (%s): %.*r", reason, MAX_LOGGED_CHARS, data)


def _timestamp(value: Any) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE  # also false for NaN; no float() of a huge int
    ):
        # Seconds are accepted too: anything before 1973 in ms is taken as seconds.
        return float(value) * 1000.0 if 0 < value < 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp() * 1000.0
    return None


def _parse_item(item: Any, stats: ParseStats) -> Reading | None:
    if not isinstance(item, dict):
        stats.reject("not_an_object", item)
        return None
    for key in _ENVELOPE_KEYS:
        inner = item.get(key)
        if isinstance(inner, dict):
            item = {**item, **inner}
            del item[key]
            break
    der_type = item.get("type")
    if not isinstance(der_type, str):
        der_type = item.get("der_type")
    if not isinstance(der_type, str) or not der_type:
        stats.reject("no_type", item)
        return None
    der_id = None
    for key in _DER_ID_KEYS:
        if (der_id := _text(item.get(key))) is not None:
            break
    values = {
        name: float(value)
        for name, value in item.items()
        if type(value) in (int, float)
        and name not in _NON_VALUE_KEYS
        # The range check first: math.isfinite() of a huge int raises OverflowError.
        and -_MAX_ABS_VALUE < value < _MAX_ABS_VALUE
        and math.isfinite(value)
    }
    if not values:
        stats.reject("no_values", item)
        return None
    make = item.get("make")
    stats.accepted += 1
    return Reading(
        _TYPE_ALIASES.get(der_type) or normalise_type(der_type),
        der_id,
        make if isinstance(make, str) and make else None,
        _timestamp(item.get("timestamp")),
        values,
    )


def parse_event(data: str, stats: ParseStats) -> list[Reading]:
    """Parse the data of one SSE event: a reading, an enveloped reading, or a list of them."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the decoder handles.
        stats.reject("invalid_json", data)
        return []
    if isinstance(body, list):
        return [reading for item in body if (reading := _parse_item(item, stats)) is not None]
    reading = _parse_item(body, stats)
    return [] if reading is None else [reading]


# --- Stream --------------------------------------------------------------------------------


class _SiteEventSource(EventSource):  # type: ignore[misc]
    """An EventSource that reports HTTP errors precisely and leaves reconnecting to us."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        read_timeout: float,
    ) -> None:
        super().__init__(
            url,
            session=session,
            reconnection_time=timedelta(0),
            max_connect_retry=0,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout),
            read_bufsize=READ_BUFSIZE,
        )
        self._opened = False

    async def __anext__(self) -> MessageEvent:
        """Return the next event, as the library does but decoding lines with errors="replace".

        The library decodes strictly: bytes that are not UTF-8 would raise UnicodeDecodeError,
        end the connection and, replayed after Last-Event-ID, end every later one. Replaced,
        they make a malformed event that is rejected and counted like any other.
        """
        response = self._response
        if not response:
            raise ValueError
        if response.status == 204:
            raise StopAsyncIteration
        async for line_in_bytes in response.content:
            line = line_in_bytes.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            if line == "":
                event = self._dispatch_event()
                if event is not None:
                    return cast("MessageEvent", event)
                continue
            if line[0] == ":":
                continue
            field_name, colon, field_value = line.partition(":")
            self._process_field(field_name, field_value.lstrip(" ") if colon else "")
        self._ready_state = READY_STATE_CONNECTING
        if self._on_error:
            self._on_error()
        await self.connect()  # raises StreamEndedError: the server ended the stream
        raise StopAsyncIteration  # pragma: no cover - connect() raised

    def _process_field(self, field_name: str, field_value: str) -> None:
        """Ignore `retry:`: reconnecting is ours, with backoff (the library would sleep first)."""
        if field_name != "retry":
            super()._process_field(field_name, field_value)

    async def connect(self, retry: int = 0) -> None:
        """Open the stream once; a second call means the server ended it."""
        if self._opened:
            raise StreamEndedError("the server ended the stream")
        self._opened = True
        headers = self._kwargs["headers"]
        headers["Accept"] = "text/event-stream"
        headers["Cache-Control"] = "no-cache"
        response = await self._session.request("GET", self._url, **self._kwargs)
        try:
            await raise_for_status(response)
            if response.content_type != "text/event-stream":
                raise NovacoreError(f"unexpected content type {response.content_type}")
        except NovacoreError:
            response.release()
            raise
        self._response = response
        self._origin = str(response.real_url.origin())
        await self._connected()


@dataclass(slots=True)
class StreamStats:
    """Counters of one site stream."""

    connects: int = 0
    disconnects: int = 0
    events: int = 0
    ignored_events: int = 0
    parse: ParseStats = field(default_factory=ParseStats)
    last_error: str | None = None


def backoff_delay(
    attempt: int, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX
) -> float:
    """Capped exponential backoff with full jitter (attempt 0 is the first retry)."""
    ceiling = min(cap, initial * (2 ** min(attempt, 30)))
    return random.uniform(ceiling / 2, ceiling)


class SiteStream:
    """Holds a site's SSE stream open: reconnects with backoff, resumes with Last-Event-ID."""

    def __init__(
        self,
        client: NovacoreClient,
        site_id: str,
        *,
        on_readings: Callable[[list[Reading]], None],
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[Exception], None] | None = None,
        read_timeout: float | None = None,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
    ) -> None:
        """Prepare the stream; `run` opens it."""
        self._client = client
        self.site_id = site_id
        self._on_readings = on_readings
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.read_timeout = read_timeout or READ_TIMEOUT
        self.backoff_initial = backoff_initial or BACKOFF_INITIAL
        self.backoff_max = backoff_max or BACKOFF_MAX
        self.last_event_id: str | None = None
        self.stats = StreamStats()
        self.connected = False
        self._got_event = False

    async def run(self) -> None:
        """Stream until cancelled. Raises NovacoreAuthError when a bare token is refused."""
        attempt = 0
        auth_failures = 0
        while True:
            delay_floor = 0.0
            error: Exception
            try:
                await self._run_once()
                error = StreamEndedError("the server ended the stream")
            except NovacoreAuthError as err:
                if not self._client.can_mint or auth_failures >= 2:
                    self._set_disconnected(err)
                    raise
                auth_failures += 1
                self._client.invalidate_token()
                error = err
            except NovacoreConnectionError as err:
                error = err
                delay_floor = err.retry_after or 0.0
            except (NovacoreError, aiohttp.ClientError, TimeoutError, ValueError) as err:
                # ValueError: a line over the read buffer, or bytes that are not UTF-8.
                error = err
            if self._got_event:
                attempt = 0
                auth_failures = 0
            self._set_disconnected(error)
            delay = max(delay_floor, backoff_delay(attempt, self.backoff_initial, self.backoff_max))
            attempt += 1
            _LOGGER.debug(
                "Novacore stream of %s closed (%s), reconnecting in %.1f s",
                self.site_id,
                describe(error),
                delay,
            )
            await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        """Hold one connection until it ends."""
        self._got_event = False
        token = await self._client.async_token()
        headers = {"Authorization": f"Bearer {token}"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        source = _SiteEventSource(
            self._client.stream_url(self.site_id),
            self._client.session,
            headers,
            self.read_timeout,
        )
        async with source:
            self.stats.connects += 1
            self.connected = True
            if self._on_connected is not None:
                self._on_connected()
            async for event in source:
                self._handle(event)

    def _handle(self, event: MessageEvent) -> None:
        if event.last_event_id:
            self.last_event_id = event.last_event_id
        if event.type is not None and event.type.lower() in _IGNORED_EVENT_NAMES:
            self.stats.ignored_events += 1
            return
        self.stats.events += 1
        self._got_event = True
        readings = parse_event(event.data, self.stats.parse)
        if readings:
            self._on_readings(readings)

    def _set_disconnected(self, error: Exception) -> None:
        self.stats.disconnects += 1
        self.stats.last_error = describe(error)
        self.connected = False
        if self._on_disconnected is not None:
            self._on_disconnected(error)


def describe(error: BaseException) -> str:
    """Describe an error for a log line without echoing request details."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text[:MAX_LOGGED_CHARS]}" if text else name
