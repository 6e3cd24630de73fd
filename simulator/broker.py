"""Helpers for running mosquitto and picking loopback ports (demo, tests, benchmark)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import socket

PBKDF2_ITERATIONS = 101
"""What mosquitto_passwd 2.0 writes for "$7$" (PBKDF2-SHA512) hashes."""


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Return a mosquitto 2.0 password-file hash ("$7$", PBKDF2-SHA512) for a password."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"$7${PBKDF2_ITERATIONS}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def find_mosquitto() -> str:
    """Return the path of the mosquitto binary (FileNotFoundError when it is not installed)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Return whether 127.0.0.1:port can be listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
