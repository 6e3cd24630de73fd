"""An aiohttp server speaking the Sourceful Novacore API, controllable from tests."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
import contextlib
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import struct
import time
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_public_key,
)

from .wait import Missing, WaitTimeoutError, wait_for
from .wire import DOCUMENTED, LEGACY, WIRES, device_sn_of, to_legacy

if TYPE_CHECKING:
    from types import TracebackType

IDENTITY_KEY: Any = (
    web.RequestKey("identity_id", str) if hasattr(web, "RequestKey") else "identity_id"
)
"""Where a request keeps the identity it authenticated as (a typed key where aiohttp has them)."""

_LOGGER = logging.getLogger(__name__)

REPLAY_BUFFER_SIZE = 1000
KEEPALIVE_COMMENT = b": keep-alive\n\n"
MID_EVENT_FRAGMENT = b'data: {"type": "pv", "W"'

type PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
type PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
type EventData = Mapping[str, Any] | str

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_JWT_HEADER = {"alg": "HS256", "typ": "JWT"}


# --------------------------------------------------------------------------- keys


def b64decode_any(value: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (ValueError if invalid)."""
    text = value.strip()
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("invalid base64") from err


def _canonical_key_bytes(key: PublicKey) -> bytes:
    """Return raw bytes (Ed25519) or the uncompressed X9.62 point (P-256) of a key."""
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _load_der_public_key(raw: bytes) -> PublicKey:
    loaded = load_der_public_key(raw)
    if isinstance(loaded, Ed25519PublicKey) or (
        isinstance(loaded, ec.EllipticCurvePublicKey) and isinstance(loaded.curve, ec.SECP256R1)
    ):
        return loaded
    raise ValueError("unsupported public key type")


def load_public_key(value: str) -> tuple[PublicKey, bytes]:
    """Parse a base64 public key (raw Ed25519, X9.62 P-256 point or DER SPKI)."""
    raw = b64decode_any(value)
    key: PublicKey
    try:
        if len(raw) == 32:
            key = Ed25519PublicKey.from_public_bytes(raw)
        elif (len(raw) == 65 and raw[0] == 4) or (len(raw) == 33 and raw[0] in (2, 3)):
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        else:
            key = _load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise ValueError(f"invalid public key: {err}") from err
    return key, _canonical_key_bytes(key)


def verify_signature(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """Verify an Ed25519 signature, or an ES256 one given as raw r||s or DER."""
    if isinstance(key, Ed25519PublicKey):
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True
    candidates = [signature]
    if len(signature) == 64:
        raw = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        candidates.insert(0, raw)
    for candidate in candidates:
        try:
            key.verify(candidate, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def encode_public_key(key: PrivateKey | PublicKey, *, der: bool = False) -> str:
    """Return the base64 public key the API expects (raw/X9.62 point, or DER SPKI)."""
    public = (
        key.public_key() if isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    if der:
        raw = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:
        raw = _canonical_key_bytes(public)
    return base64.b64encode(raw).decode("ascii")


def private_key_pem(key: PrivateKey) -> str:
    """Return a private key as PKCS#8 PEM, the form the integration's config flow takes."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def sign_challenge(key: PrivateKey, challenge: str, *, der: bool = False) -> str:
    """Sign a challenge as a client would: Ed25519, or ES256 as raw r||s (or DER)."""
    message = challenge.encode("utf-8")
    if isinstance(key, Ed25519PrivateKey):
        return base64.b64encode(key.sign(message)).decode("ascii")
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return base64.b64encode(signature).decode("ascii")


# --------------------------------------------------------------------------- JWT


class TokenError(Exception):
    """A bearer token was refused."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_encode(payload: Mapping[str, Any], secret: bytes) -> str:
    """Encode and sign an HS256 JWT."""
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (_JWT_HEADER, payload)
    )
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def jwt_decode(token: str, secret: bytes) -> dict[str, Any]:
    """Check an HS256 JWT's signature and return its claims (expiry unchecked)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    try:
        header = json.loads(b64decode_any(parts[0]))
        claims = json.loads(b64decode_any(parts[1]))
        signature = b64decode_any(parts[2])
    except ValueError as err:
        raise TokenError("malformed token") from err
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported token algorithm")
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise TokenError("invalid token signature")
    if not isinstance(claims, dict):
        raise TokenError("malformed token")
    return claims


# --------------------------------------------------------------------------- SSE


def format_event(
    data: EventData,
    *,
    event: str | None = None,
    event_id: str | int | None = None,
    retry: int | None = None,
) -> bytes:
    """Frame one Server-Sent Event; a dict is JSON-encoded, a str is sent as is."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines: list[str] = []
    if event is not None:
        if _LINE_BREAK.search(event):
            raise ValueError("event name must be one line")
        lines.append(f"event: {event}")
    if event_id is not None:
        if _LINE_BREAK.search(str(event_id)):
            raise ValueError("event id must be one line")
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(text))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Write:
    data: bytes
    done: asyncio.Future[None] | None


@dataclass(slots=True)
class _Challenge:
    key: bytes
    expires_at: float


class _Stream:
    """One open SSE connection."""

    def __init__(self, site_id: str, identity_id: str, request: web.Request) -> None:
        self.site_id = site_id
        self.identity_id = identity_id
        self.transport = request.transport
        self.queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self.lock = asyncio.Lock()
        self.response: web.StreamResponse | None = None
        self.ended = False
        self.cut = False
        self.written = 0  # body bytes written so far
        self.quiet = False  # waiting, silent, with no keep-alive timer

    def wake(self) -> None:
        """Make the stream loop re-check its state."""
        self.queue.put_nowait(None)

    def close(self) -> None:
        """End the stream cleanly after what is already queued."""
        self.ended = True
        self.wake()

    def settle(self) -> None:
        """Release every push still waiting on this stream."""
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is not None and item.done is not None and not item.done.done():
                item.done.set_result(None)


@dataclass
class _Site:
    id: str
    name: str
    org_id: str
    created_at: str
    devices: list[dict[str, Any]]
    identities: set[str] | None
    replay: deque[tuple[str, bytes]] = field(
        default_factory=lambda: deque(maxlen=REPLAY_BUFFER_SIZE)
    )
    next_id: int = 1
    streams: list[_Stream] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return the object GET /sites lists."""
        return {
            "id": self.id,
            "org_id": self.org_id,
            "name": self.name,
            "created_at": self.created_at,
        }


def _error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": _ERROR_CODES.get(status, "error"), "message": message},
        status=status,
        headers=headers,
    )


class _RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- server


class NovacoreServer:
    """A Novacore-compatible HTTP/SSE server with test controls."""

    def __init__(
        self,
        *,
        token_ttl: float = 86400,
        keepalive_interval: float = 15,
        challenge_ttl: float = 300,
        auto_ids: bool = False,
        drop_streams_on_expiry: bool = False,
        push_timeout: float = 10,
        wire: str = DOCUMENTED,
    ) -> None:
        """Create a stopped server; nothing is registered yet.

        `wire`: `documented` sends readings as pushed; `legacy` turns every pushed reading (a
        mapping with a `type`) into the legacy wire (see simulator/wire.py).
        """
        if wire not in WIRES:
            raise ValueError(f"unknown wire {wire!r}; one of {', '.join(WIRES)}")
        self.wire = wire
        self.token_ttl = token_ttl
        self.keepalive_interval = keepalive_interval
        self.challenge_ttl = challenge_ttl
        self.auto_ids = auto_ids
        self.drop_streams_on_expiry = drop_streams_on_expiry
        self.push_timeout = push_timeout
        # Counters and records for assertions.
        self.stream_connects = 0
        self.last_event_ids: list[str | None] = []
        self.challenges = 0
        self.verifies = 0
        self.requests: list[tuple[str, str]] = []
        self._silent = False
        self.forced_stops = 0  # stop() calls whose streams did not end when closed
        self._secret = secrets.token_bytes(32)
        self._keys: dict[bytes, tuple[str, PublicKey]] = {}
        self._identities: set[str] = set()
        self._challenges: dict[str, _Challenge] = {}
        self._valid_jtis: set[str] = set()
        self._expired_jtis: set[str] = set()
        self._sites: dict[str, _Site] = {}
        self._fail_stream: tuple[int, int, str | None] = (0, 0, None)
        self._fail_all: tuple[int, int, str | None] = (0, 0, None)
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port); state survives a stop/start."""
        if self._runner is not None:
            raise RuntimeError("server already started")
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/auth/challenge", self._handle_challenge)
        app.router.add_post("/auth/verify", self._handle_verify)
        app.router.add_get("/sites", self._handle_sites)
        app.router.add_get("/sites/{site_id}", self._handle_site)
        app.router.add_get("/sites/{site_id}/devices", self._handle_devices)
        app.router.add_get("/stream/sites/{site_id}", self._handle_stream)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        self._port = int(runner.addresses[0][1])
        _LOGGER.debug("Novacore simulator listening on %s", self.url)

    async def stop(self) -> None:
        """Close every stream and stop listening."""
        if self._runner is None:
            return
        streams = [stream for site in self._sites.values() for stream in site.streams]
        for stream in streams:
            stream.close()
        try:
            await wait_for(
                lambda: all(not s.streams for s in self._sites.values()),
                timeout=2,
                what="every stream closed",
                interval=0.01,
            )
        except WaitTimeoutError:
            self.forced_stops += 1  # the runner's cleanup cancels what is left
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start the server if needed."""
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:PORT."""
        if self._port is None:
            raise RuntimeError("server not started")
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """Return the listening port (kept after stop, to restart on the same port)."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    # ------------------------------------------------------------ identities and tokens

    def add_identity(self, public_key_b64: str, identity_id: str | None = None) -> str:
        """Register a public key (any accepted format) and return its identity id."""
        key, canonical = load_public_key(public_key_b64)
        if canonical in self._keys:
            return self._keys[canonical][0]
        identity_id = identity_id or f"idn-{secrets.token_hex(6)}"
        self._keys[canonical] = (identity_id, key)
        self._identities.add(identity_id)
        return identity_id

    def issue_token(self, identity_id: str, ttl: float | None = None) -> str:
        """Mint a bearer token for an identity; ttl <= 0 gives an expired one."""
        if identity_id not in self._identities:
            raise KeyError(identity_id)
        now = time.time()
        jti = secrets.token_hex(12)
        claims = {
            "sub": identity_id,
            "iat": int(now),
            "exp": int(now + (self.token_ttl if ttl is None else ttl)),
            "jti": jti,
        }
        self._valid_jtis.add(jti)
        return jwt_encode(claims, self._secret)

    def expire_tokens(self) -> None:
        """Make every issued token expired."""
        self._expired_jtis |= self._valid_jtis
        self._valid_jtis.clear()
        self._after_token_loss()

    def revoke_all_tokens(self) -> None:
        """Make every issued token invalid."""
        self._valid_jtis.clear()
        self._after_token_loss()

    def _after_token_loss(self) -> None:
        if self.drop_streams_on_expiry:
            for site in self._sites.values():
                for stream in site.streams:
                    stream.close()

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _RequestError(401, "missing bearer token")
        try:
            claims = jwt_decode(token.strip(), self._secret)
        except TokenError as err:
            raise _RequestError(401, str(err)) from None
        jti = claims.get("jti")
        exp = claims.get("exp")
        if jti in self._expired_jtis:
            raise _RequestError(401, "token expired")
        if jti not in self._valid_jtis:
            raise _RequestError(401, "token revoked")
        if not isinstance(exp, int | float) or time.time() >= exp:
            raise _RequestError(401, "token expired")
        sub = claims.get("sub")
        if not isinstance(sub, str) or sub not in self._identities:
            raise _RequestError(401, "unknown identity")
        return sub

    # ------------------------------------------------------------ sites

    def add_site(
        self,
        site_id: str,
        name: str,
        devices: Iterable[Mapping[str, Any]] | None = None,
        *,
        org_id: str = "org-demo",
        identities: Iterable[str] | None = None,
        created_at: datetime | None = None,
    ) -> None:
        """Add a site, or update one (keeping its streams and replay buffer)."""
        device_list = [copy.deepcopy(dict(device)) for device in devices or ()]
        visible = set(identities) if identities is not None else None
        if (site := self._sites.get(site_id)) is not None:
            site.name, site.org_id, site.devices, site.identities = (
                name,
                org_id,
                device_list,
                visible,
            )
            return
        self._sites[site_id] = _Site(
            id=site_id,
            name=name,
            org_id=org_id,
            created_at=_iso(created_at or datetime.now(UTC)),
            devices=device_list,
            identities=visible,
        )

    def set_devices(self, site_id: str, devices: Iterable[Mapping[str, Any]]) -> None:
        """Replace the devices of a site."""
        self._sites[site_id].devices = [copy.deepcopy(dict(device)) for device in devices]

    def has_site(self, site_id: str) -> bool:
        """Return whether a site exists."""
        return site_id in self._sites

    def delete_site(self, site_id: str) -> None:
        """Delete a site: its streams end and every request for it answers 404."""
        site = self._sites.pop(site_id)
        for stream in site.streams:
            stream.close()

    # ------------------------------------------------------------ events

    @property
    def silent(self) -> bool:
        """Return whether the server holds connections open without sending anything."""
        return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._silent = value
        for site in self._sites.values():
            for stream in site.streams:
                stream.wake()

    async def push(
        self,
        site_id: str,
        data: EventData,
        *,
        event: str | None = None,
        event_id: str | int | None = None,
        retry: int | None = None,
    ) -> None:
        """Send one event to every open stream of a site; return once written."""
        site = self._sites[site_id]
        if self.wire == LEGACY and isinstance(data, Mapping) and "type" in data:
            data = to_legacy(data, device_sn_of(site.devices, data.get("der_id")))
        if event_id is None and self.auto_ids:
            event_id = site.next_id
            site.next_id += 1
        frame = format_event(data, event=event, event_id=event_id, retry=retry)
        if event_id is not None:
            site.replay.append((str(event_id), frame))
        if self._silent:
            return
        await self._broadcast(site, frame)

    async def push_raw(self, site_id: str, raw: str | bytes) -> None:
        """Write bytes to every open stream of a site as is, without SSE framing."""
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        if not self._silent:
            await self._broadcast(self._sites[site_id], data)

    async def _broadcast(self, site: _Site, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for stream in site.streams:
            if stream.ended:
                continue
            future: asyncio.Future[None] = loop.create_future()
            stream.queue.put_nowait(_Write(data, future))
            futures.append(future)
        if futures:
            await asyncio.wait(futures, timeout=self.push_timeout)

    async def cut_streams(self, site_id: str, mid_event: bool = False) -> None:
        """Abort the TCP connections of a site's streams, optionally mid-event."""
        site = self._sites.get(site_id)
        streams = list(site.streams) if site is not None else []
        for stream in streams:
            # The stream loop writes nothing more once cut, and cannot end the
            # response cleanly while the lock is held here.
            stream.cut = True
            transport = stream.transport
            with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                async with asyncio.timeout(1), stream.lock:
                    if mid_event and stream.response is not None and transport is not None:
                        await stream.response.write(MID_EVENT_FRAGMENT)
                        await _flush(transport)
                        # Let the client read the fragment before the connection breaks.
                        await asyncio.sleep(0.05)
                    if transport is not None:
                        _reset(transport)
            if transport is not None and not transport.is_closing():
                _reset(transport)
            stream.ended = True
            stream.wake()
        # A stream that does not end by then is the stop's business (forced_stops).
        with contextlib.suppress(WaitTimeoutError):
            await wait_for(
                lambda: not any(s in streams for s in self._all_streams()),
                timeout=2,
                what=f"the cut streams of site {site_id} ended",
                interval=0.01,
            )

    def _all_streams(self) -> list[_Stream]:
        return [stream for site in self._sites.values() for stream in site.streams]

    def fail_stream(
        self, status: int, count: int = 1, retry_after: float | str | None = None
    ) -> None:
        """Answer the next `count` stream requests with `status`."""
        self._fail_stream = (
            status,
            count,
            None if retry_after is None else _retry_text(retry_after),
        )

    def fail_all(self, status: int, count: int = 1, retry_after: float | str | None = None) -> None:
        """Answer the next `count` requests to any endpoint with `status`."""
        self._fail_all = (
            status,
            count,
            None if retry_after is None else _retry_text(retry_after),
        )

    # ------------------------------------------------------------ waiting helpers

    def open_streams(self, site_id: str) -> int:
        """Return how many streams of a site are open."""
        site = self._sites.get(site_id)
        return 0 if site is None else sum(1 for s in site.streams if not s.ended)

    async def wait_until(
        self,
        predicate: Callable[[], object],
        timeout: float = 30,
        what: Missing = "a condition of the Novacore server",
    ) -> None:
        """Wait until predicate() is true; raise WaitTimeoutError saying `what` after timeout."""
        await wait_for(predicate, timeout=timeout, what=what, interval=0.01)

    async def wait_for_streams(
        self,
        site_id: str,
        n: int = 1,
        timeout: float = 30,
    ) -> None:
        """Wait until at least n streams of a site are open."""
        await wait_for(
            lambda: self.open_streams(site_id) >= n,
            timeout=timeout,
            what=lambda: (
                f"{n} open streams of site {site_id} ({self.open_streams(site_id)} open,"
                f" {self.stream_connects} stream requests so far)"
            ),
            interval=0.01,
        )

    async def wait_silent(self, site_id: str, timeout: float = 30) -> int:
        """Once silent, wait until the site's open streams have stopped writing.

        Return how many body bytes they wrote in all: what a stream wrote before the silence
        may still be on its way, and a client has it all once it has read that many bytes.
        """
        streams = self._sites[site_id].streams
        await wait_for(
            lambda: all(s.quiet or s.ended for s in streams),
            timeout=timeout,
            what=f"the streams of site {site_id} to stop writing",
            interval=0.01,
        )
        return sum(stream.written for stream in streams)

    # ------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        injected = self._take_failure(request.path)
        if injected is not None:
            return injected
        try:
            if not request.path.startswith("/auth/"):
                request[IDENTITY_KEY] = self._authenticate(request)
            return await handler(request)
        except _RequestError as err:
            return _error(err.status, err.message)
        except web.HTTPException as err:
            if err.status < 400:
                raise
            return _error(err.status, err.reason)

    def _take_failure(self, path: str) -> web.Response | None:
        for attr, applies in (
            ("_fail_all", True),
            ("_fail_stream", path.startswith("/stream/")),
        ):
            status, count, retry_after = getattr(self, attr)
            if applies and count > 0:
                setattr(self, attr, (status, count - 1, retry_after))
                headers = {"Retry-After": retry_after} if retry_after is not None else None
                return _error(status, "injected failure", headers=headers)
        return None

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _RequestError(400, "body must be JSON") from None
        if not isinstance(body, dict):
            raise _RequestError(400, "body must be a JSON object")
        return body

    def _site_for(self, request: web.Request) -> _Site:
        site = self._sites.get(request.match_info["site_id"])
        if site is None:
            raise _RequestError(404, "site not found")
        if site.identities is not None and request[IDENTITY_KEY] not in site.identities:
            raise _RequestError(403, "no access to this site")
        return site

    async def _handle_challenge(self, request: web.Request) -> web.StreamResponse:
        self.challenges += 1
        body = await self._json_body(request)
        public_key = body.get("public_key")
        if not isinstance(public_key, str):
            raise _RequestError(400, "public_key is required")
        try:
            _, canonical = load_public_key(public_key)
        except ValueError as err:
            raise _RequestError(400, str(err)) from None
        if canonical not in self._keys:
            raise _RequestError(401, "unknown public key")
        now = time.time()
        for stale in [c for c, entry in self._challenges.items() if entry.expires_at <= now]:
            del self._challenges[stale]
        challenge = secrets.token_urlsafe(32)
        self._challenges[challenge] = _Challenge(canonical, now + self.challenge_ttl)
        expires_at = datetime.fromtimestamp(now, UTC) + timedelta(seconds=self.challenge_ttl)
        return web.json_response({"challenge": challenge, "expires_at": _iso(expires_at)})

    async def _handle_verify(self, request: web.Request) -> web.StreamResponse:
        self.verifies += 1
        body = await self._json_body(request)
        fields = {name: body.get(name) for name in ("public_key", "signature", "challenge")}
        for name, value in fields.items():
            if not isinstance(value, str):
                raise _RequestError(400, f"{name} is required")
        public_key, signature, challenge = (str(v) for v in fields.values())
        try:
            key, canonical = load_public_key(public_key)
        except ValueError as err:
            raise _RequestError(400, str(err)) from None
        entry = self._challenges.pop(challenge, None)
        if entry is None or entry.key != canonical or entry.expires_at <= time.time():
            raise _RequestError(401, "invalid or expired challenge")
        if canonical not in self._keys:
            raise _RequestError(401, "unknown public key")
        try:
            raw_signature = b64decode_any(signature)
        except ValueError:
            raise _RequestError(401, "invalid signature") from None
        if not verify_signature(key, raw_signature, challenge.encode("utf-8")):
            raise _RequestError(401, "invalid signature")
        identity_id = self._keys[canonical][0]
        return web.json_response(
            {"token": self.issue_token(identity_id), "identity_id": identity_id}
        )

    async def _handle_sites(self, request: web.Request) -> web.StreamResponse:
        identity_id = request[IDENTITY_KEY]
        org_id = request.query.get("org_id")
        return web.json_response(
            [
                site.summary()
                for site in self._sites.values()
                if (site.identities is None or identity_id in site.identities)
                and (org_id is None or site.org_id == org_id)
            ]
        )

    async def _handle_site(self, request: web.Request) -> web.StreamResponse:
        site = self._site_for(request)
        return web.json_response({**site.summary(), "devices": copy.deepcopy(site.devices)})

    async def _handle_devices(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(copy.deepcopy(self._site_for(request).devices))

    async def _handle_stream(self, request: web.Request) -> web.StreamResponse:
        site = self._site_for(request)
        last_event_id = request.headers.get("Last-Event-ID")
        self.stream_connects += 1
        self.last_event_ids.append(last_event_id)
        stream = _Stream(site.id, request[IDENTITY_KEY], request)
        # Registering and taking the replay happen without a pause: no event is lost.
        site.streams.append(stream)
        replay = _replay_after(site, last_event_id)
        _LOGGER.debug(
            "Stream opened for site %s (Last-Event-ID %s, %d to replay)",
            site.id,
            last_event_id,
            len(replay),
        )
        try:
            return await self._serve_stream(request, stream, replay)
        finally:
            stream.ended = True
            with contextlib.suppress(ValueError):
                site.streams.remove(stream)
            stream.settle()
            _LOGGER.debug("Stream closed for site %s", site.id)

    async def _serve_stream(
        self, request: web.Request, stream: _Stream, replay: list[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        early: list[_Write] = []
        while self._silent and not stream.ended:
            if (item := await stream.queue.get()) is not None:
                early.append(item)
        if stream.ended:
            for item in early:
                _settle(item)
            return response
        await response.prepare(request)
        stream.response = response
        pending: list[_Write | None] = [_Write(frame, None) for frame in replay]
        pending.extend(early)
        try:
            while not stream.ended:
                if pending:
                    item = pending.pop(0)
                else:
                    interval = self.keepalive_interval
                    timeout = interval if interval > 0 and not self._silent else None
                    stream.quiet = self._silent
                    try:
                        item = await asyncio.wait_for(stream.queue.get(), timeout)
                    except TimeoutError:
                        item = _Write(KEEPALIVE_COMMENT, None)
                    finally:
                        stream.quiet = False
                if item is None:
                    continue
                try:
                    async with stream.lock:
                        if not stream.ended and not stream.cut:
                            await response.write(item.data)
                            stream.written += len(item.data)
                finally:
                    _settle(item)
        except (ConnectionError, RuntimeError):
            stream.ended = True
        finally:
            for leftover in pending:
                if leftover is not None:
                    _settle(leftover)
        return response


def _settle(item: _Write) -> None:
    if item.done is not None and not item.done.done():
        item.done.set_result(None)


def _replay_after(site: _Site, last_event_id: str | None) -> list[bytes]:
    """Return the frames after last_event_id still in the replay buffer."""
    if last_event_id is None:
        return []
    ids = [event_id for event_id, _ in site.replay]
    if last_event_id in ids:
        index = len(ids) - 1 - ids[::-1].index(last_event_id)
        return [frame for _, frame in list(site.replay)[index + 1 :]]
    with contextlib.suppress(ValueError):
        last = int(last_event_id)
        return [
            frame
            for event_id, frame in site.replay
            if event_id.lstrip("-").isdigit() and int(event_id) > last
        ]
    return []


def _retry_text(retry_after: float | str) -> str:
    if isinstance(retry_after, str):
        return retry_after
    return str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)


def _reset(transport: asyncio.Transport) -> None:
    """Abort a connection with a TCP reset, as a broken link would, not a clean close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _flush(transport: asyncio.BaseTransport, limit: float = 0.5) -> None:
    """Wait (briefly) until the transport has handed its buffer to the kernel."""
    if not isinstance(transport, asyncio.WriteTransport):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    # No event tells when the buffer empties: poll briefly.
    while (  # noqa: ASYNC110
        transport.get_write_buffer_size() > 0 and loop.time() < deadline
    ):
        await asyncio.sleep(0.005)
