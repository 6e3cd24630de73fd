"""The MQTT peers the tests run, imported from here only (moving them changes one line each)."""

from __future__ import annotations

from tests.mosquitto import Mosquitto, _write_certificates as write_certificates
from tests.mqtt_ack_withholder import AckWithholdingProxy
from tests.mqtt_refuser import RefusingBroker

__all__ = ["AckWithholdingProxy", "Mosquitto", "RefusingBroker", "write_certificates"]
