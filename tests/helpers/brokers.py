"""The MQTT peers the tests run (from simulator/), imported from here only."""

from __future__ import annotations

from simulator.broker import Mosquitto, write_certificates
from simulator.mqtt_peers import AckWithholdingProxy, RefusingBroker

__all__ = ["AckWithholdingProxy", "Mosquitto", "RefusingBroker", "write_certificates"]
