"""Sourceful Novacore: keys and tokens, REST, the SSE stream, readings, routing and signs.

Modules by concern: `errors`, `auth` (keys, signatures, token expiry), `client` (REST: tokens,
sites, devices), `stream` (the reconnecting SSE stream of a site), `readings` (event parsing),
`routing` (which DER a reading belongs to) and `signs` (each DER's power sign, from evidence).
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
from .readings import DerReading, normalise_type, parse_event
from .stream import READ_BUFSIZE, READ_TIMEOUT, SiteStream, StreamStats

__all__ = [
    "DEFAULT_API_URL",
    "MAX_LOGGED_CHARS",
    "READ_BUFSIZE",
    "READ_TIMEOUT",
    "REQUEST_TIMEOUT",
    "TOKEN_RENEW_MARGIN",
    "Der",
    "DerReading",
    "Device",
    "InvalidKeyError",
    "NovacoreAuthError",
    "NovacoreCertificateError",
    "NovacoreClient",
    "NovacoreConnectionError",
    "NovacoreError",
    "NovacoreNotFoundError",
    "Signer",
    "Site",
    "SiteStream",
    "StreamEndedError",
    "StreamStats",
    "describe",
    "load_signer",
    "normalise_type",
    "parse_event",
    "raise_for_status",
    "token_expiry",
]
