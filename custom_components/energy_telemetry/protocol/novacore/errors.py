"""Errors of the Novacore client, and how they are described in log lines."""

from __future__ import annotations

MAX_LOGGED_CHARS = 200


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


def describe(error: BaseException) -> str:
    """Describe an error for a log line without echoing request details."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text[:MAX_LOGGED_CHARS]}" if text else name
