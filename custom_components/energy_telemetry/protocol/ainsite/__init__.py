"""Ainsite (Smarteo) MQTT meter readings.

Modules by concern: `errors`, `topics`, `readings` (payload parsing), `client` (the MQTT client
and a settings check) and `stream` (the reconnecting subscription).
"""

from __future__ import annotations

from .client import DEFAULT_HOST, DEFAULT_KEEPALIVE, DEFAULT_PORT, QOS, async_validate
from .errors import (
    AinsiteAuthError,
    AinsiteCertificateError,
    AinsiteConnectionError,
    AinsiteError,
    AinsiteSubscribeError,
)
from .readings import RegisterReading, parse_payload
from .stream import AinsiteConnection
from .topics import TOPIC_PREFIX, parse_topic, subscription_filter

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_PORT",
    "QOS",
    "TOPIC_PREFIX",
    "AinsiteAuthError",
    "AinsiteCertificateError",
    "AinsiteConnection",
    "AinsiteConnectionError",
    "AinsiteError",
    "AinsiteSubscribeError",
    "RegisterReading",
    "async_validate",
    "parse_payload",
    "parse_topic",
    "subscription_filter",
]
