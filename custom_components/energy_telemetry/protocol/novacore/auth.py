"""Authentication: private keys, challenge signatures and token expiry."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .errors import InvalidKeyError


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
