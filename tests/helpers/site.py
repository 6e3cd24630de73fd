"""The test site and customer: their identifiers, the site's device list, the Novacore server."""

from __future__ import annotations

import base64
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custom_components.energy_telemetry.protocol.novacore import NovacoreClient, load_signer
from simulator.novacore_server import NovacoreServer, encode_public_key

SITE_ID = "sit-abc123"
SITE_NAME = "Home"
_DATA = Path(__file__).resolve().parents[1] / "data"
DEVICES: list[dict[str, Any]] = json.loads((_DATA / "devices.json").read_text())
"""The site's device list (tests/data/devices.json): an inverter with PV, battery and inverter
DERs, a meter and an EV charger."""
READINGS: dict[str, dict[str, Any]] = json.loads((_DATA / "readings.json").read_text())
"""A reading of each kind of DER of the site as the service sends it (tests/data/readings.json)."""
PV, BATTERY, METER, EV, INVERTER = (
    READINGS[kind] for kind in ("pv", "battery", "meter", "ev_charger", "inverter")
)
TS = 1709740800000
"""2024-03-06T16:00:00Z in milliseconds: the time of the sample readings."""

CUSTOMER_ID = "cust-4711"
SUBSCRIPTION_ID = "sub-1"
MQTT_USERNAME = "ha-user"
MQTT_PASSWORD = "s3cret-mqtt-pass"


@dataclass
class Novacore:
    """A running Novacore-compatible server with one identity and the test site."""

    server: NovacoreServer
    key: Ed25519PrivateKey
    identity: str

    @classmethod
    async def start(cls) -> Novacore:
        """Start a server on loopback with one identity (a new key) and the test site."""
        server = NovacoreServer(keepalive_interval=0)
        await server.start()
        key = Ed25519PrivateKey.generate()
        identity = server.add_identity(encode_public_key(key))
        server.add_site(SITE_ID, SITE_NAME, DEVICES)
        return cls(server, key, identity)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def private_key_pem(self) -> str:
        return pem(self.key)

    @property
    def private_key_raw_b64(self) -> str:
        return base64.b64encode(self.key.private_bytes_raw()).decode()

    async def push(self, data: Any, **kwargs: Any) -> None:
        await self.server.push(SITE_ID, data, **kwargs)

    def client(self, session: aiohttp.ClientSession, **credentials: Any) -> NovacoreClient:
        """Return a protocol client of the server: with the identity's key unless given others."""
        if not credentials:
            credentials["signer"] = load_signer(self.private_key_pem)
        return NovacoreClient(session, self.url + "/", **credentials)


def pem(key: Any, encryption: Any = None) -> str:
    """Return a private key as PKCS#8 PEM, as a user pastes it (unencrypted by default)."""
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            encryption or serialization.NoEncryption(),
        ).decode()
    )
