"""REST client: tokens minted and renewed with a key, sites and their devices."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
import time
from typing import Any

import aiohttp

from .auth import Signer, token_expiry
from .errors import (
    MAX_LOGGED_CHARS,
    NovacoreAuthError,
    NovacoreCertificateError,
    NovacoreConnectionError,
    NovacoreError,
    NovacoreNotFoundError,
)
from .readings import as_text, normalise_type

_LOGGER = logging.getLogger(__name__)

DEFAULT_API_URL = "https://novacore-mainnet.sourceful.dev"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
TOKEN_RENEW_MARGIN = 3600.0
"""Mint a new token this many seconds before the current one expires."""


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


def _items(body: Any, *keys: str) -> list[Any]:
    """Accept a bare list or a list wrapped in one of a few envelope keys."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return list(body[key])
    raise NovacoreError("unexpected response shape")


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
            if isinstance(item, dict) and (site_id := as_text(item.get("id"))):
                name = as_text(item.get("name")) or site_id
                sites.append(Site(site_id, name, as_text(item.get("org_id"))))
        return sites

    async def async_get_devices(self, site_id: str) -> list[Device]:
        """Return the devices of a site and their DERs."""
        body = await self._request("GET", f"/sites/{site_id}/devices")
        devices = []
        for item in _items(body, "devices", "data", "items"):
            if not isinstance(item, dict) or not (device_id := as_text(item.get("id"))):
                continue
            ders = []
            for der in item.get("ders") or ():
                if isinstance(der, dict) and (der_id := as_text(der.get("id"))):
                    der_type = as_text(der.get("type"))
                    ders.append(
                        Der(
                            der_id,
                            as_text(der.get("name")) or der_id,
                            normalise_type(der_type or ""),
                        )
                    )
            devices.append(
                Device(
                    device_id,
                    as_text(item.get("name")) or device_id,
                    as_text(item.get("type")),
                    as_text(item.get("hardware_id")),
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
