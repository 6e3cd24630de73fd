"""Sourceful Novacore protocol: keys, tokens, REST client, SSE stream and reading parser.

This package does not depend on Home Assistant; it only needs aiohttp, aiohttp-sse-client and
cryptography. Modules by concern: `errors`, `auth` (keys, signatures, token expiry), `client`
(REST: tokens, sites, devices), `stream` (SSE source, backoff, SiteStream), `readings` (parsing).
"""

from __future__ import annotations

from .auth import Signer, load_signer, token_expiry
from .client import (
    DEFAULT_API_URL,
    REQUEST_TIMEOUT,
    TOKEN_RENEW_MARGIN,
    Der,
    Device,
    NovacoreClient,
    Site,
    raise_for_status,
)
from .errors import (
    MAX_LOGGED_CHARS,
    InvalidKeyError,
    NovacoreAuthError,
    NovacoreCertificateError,
    NovacoreConnectionError,
    NovacoreError,
    NovacoreNotFoundError,
    StreamEndedError,
    describe,
)
from .readings import ParseStats, Reading, normalise_type, parse_event
from .stream import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    READ_BUFSIZE,
    READ_TIMEOUT,
    SiteStream,
    StreamStats,
    backoff_delay,
)

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "DEFAULT_API_URL",
    "MAX_LOGGED_CHARS",
    "READ_BUFSIZE",
    "READ_TIMEOUT",
    "REQUEST_TIMEOUT",
    "TOKEN_RENEW_MARGIN",
    "Der",
    "Device",
    "InvalidKeyError",
    "NovacoreAuthError",
    "NovacoreCertificateError",
    "NovacoreClient",
    "NovacoreConnectionError",
    "NovacoreError",
    "NovacoreNotFoundError",
    "ParseStats",
    "Reading",
    "Signer",
    "Site",
    "SiteStream",
    "StreamEndedError",
    "StreamStats",
    "backoff_delay",
    "describe",
    "load_signer",
    "normalise_type",
    "parse_event",
    "raise_for_status",
    "token_expiry",
]
