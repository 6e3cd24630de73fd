"""Errors of the Ainsite MQTT client."""

from __future__ import annotations


class AinsiteError(Exception):
    """Base error of the Ainsite MQTT client."""


class AinsiteAuthError(AinsiteError):
    """The broker refused the username or password."""


class AinsiteConnectionError(AinsiteError):
    """The broker could not be reached, TLS failed or the connection was lost."""


class AinsiteCertificateError(AinsiteConnectionError):
    """The broker's TLS certificate is not trusted."""


class AinsiteSubscribeError(AinsiteError):
    """The broker refused the subscription (SUBACK return code 0x80)."""
