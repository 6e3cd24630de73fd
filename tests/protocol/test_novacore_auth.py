"""Novacore credentials on their own: signing keys of every accepted form, token expiry."""

from __future__ import annotations

import base64
from collections.abc import Callable
import json
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from custom_components.energy_telemetry.protocol.novacore import (
    InvalidKeyError,
    Signer,
    load_signer,
    token_expiry,
)
from simulator.novacore_server import jwt_decode, load_public_key, verify_signature
from tests.helpers.site import Novacore, pem


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _assert_verifies(signer: Signer) -> None:
    """The simulator accepts the signer's public key and signature; a changed message fails."""
    public, _ = load_public_key(signer.public_key)
    challenge = "challenge-0123456789"
    signature = base64.b64decode(signer.sign(challenge))
    assert verify_signature(public, signature, challenge.encode())
    assert not verify_signature(public, signature, b"another challenge")


# --- keys -----------------------------------------------------------------------------------


def test_load_signer_ed25519_pem() -> None:
    key = Ed25519PrivateKey.generate()
    signer = load_signer("\n  " + pem(key) + "\n")
    assert signer.algorithm == "Ed25519"
    assert signer.public_key == _b64(key.public_key().public_bytes_raw())
    _assert_verifies(signer)


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, "sec1"])
def test_load_signer_p256_pem(fmt: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL if fmt == "sec1" else fmt,
        serialization.NoEncryption(),
    ).decode()
    signer = load_signer(pem)
    assert signer.algorithm == "ES256"
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert signer.public_key == _b64(public)
    # ES256 signatures are raw r||s, 64 bytes.
    assert len(base64.b64decode(signer.sign("x"))) == 64
    _assert_verifies(signer)


def test_load_signer_raw_ed25519_base64() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    for text in (_b64(raw), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        signer = load_signer(text)
        assert signer.algorithm == "Ed25519"
        assert signer.public_key == _b64(key.public_key().public_bytes_raw())
        _assert_verifies(signer)


def test_load_signer_seed_and_public_key() -> None:
    """The 64-byte libsodium layout: seed then public key."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    signer = load_signer(_b64(key.private_bytes_raw() + public))
    assert signer.public_key == _b64(public)
    _assert_verifies(signer)


def _rsa_pem() -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _mismatched_64() -> str:
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return _b64(Ed25519PrivateKey.generate().private_bytes_raw() + other)


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(_rsa_pem, id="rsa-pem"),
        pytest.param(lambda: pem(ec.generate_private_key(ec.SECP384R1())), id="p384-pem"),
        pytest.param(
            lambda: pem(
                Ed25519PrivateKey.generate(),
                serialization.BestAvailableEncryption(b"secret passphrase"),
            ),
            id="encrypted-pem",
        ),
        pytest.param(
            lambda: (
                "-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----"
            ),
            id="broken-pem",
        ),
        pytest.param(
            lambda: (
                Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            ),
            id="public-key-pem",
        ),
        pytest.param(lambda: "this is $$ not a key at all", id="garbage"),
        pytest.param(lambda: _b64(b"0123456789abcdef"), id="16-bytes"),
        pytest.param(lambda: _b64(bytes(range(33))), id="33-bytes"),
        pytest.param(_mismatched_64, id="64-bytes-mismatched"),
        pytest.param(lambda: "", id="empty"),
    ],
)
def test_load_signer_rejects(make_key: Callable[[], str]) -> None:
    """Unusable keys raise InvalidKeyError; neither message nor traceback shows the key."""
    text = make_key()
    with pytest.raises(InvalidKeyError) as excinfo:
        load_signer(text)
    err = excinfo.value
    message = str(err)
    assert message
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    for chunk in {body[i : i + 16] for i in range(0, max(len(body) - 15, 1), 8)} - {""}:
        assert chunk not in message
        assert chunk not in repr(err)
    # No chained exception carries key material into a logged traceback.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_signer_repr_hides_private_key() -> None:
    key = Ed25519PrivateKey.generate()
    signer = load_signer(_b64(key.private_bytes_raw()))
    assert _b64(key.private_bytes_raw()) not in repr(signer)
    assert repr(signer) == f"<Signer Ed25519 {signer.public_key}>"


# --- tokens ---------------------------------------------------------------------------------


def _jwt(claims: Any) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def test_token_expiry_of_server_token(novacore: Novacore) -> None:
    token = novacore.server.issue_token(novacore.identity, ttl=123)
    expected = jwt_decode(token, novacore.server._secret)["exp"]
    assert token_expiry(token) == float(expected)
    assert abs(token_expiry(token) - (time.time() + 123)) < 5


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (_jwt({"exp": 1700000000}), 1700000000.0),
        (_jwt({"exp": 1700000000.5}), 1700000000.5),
        (_jwt({"sub": "x"}), None),
        (_jwt({"exp": "1700000000"}), None),
        (_jwt({"exp": True}), None),
        (_jwt([1, 2]), None),
        ("not-a-jwt", None),
        ("a.!!!.c", None),
        ("a.bm90IGpzb24.c", None),
        ("a.é.c", None),
        ("", None),
    ],
)
def test_token_expiry_shapes(token: str, expected: float | None) -> None:
    assert token_expiry(token) == expected
