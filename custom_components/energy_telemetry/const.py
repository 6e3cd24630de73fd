"""Constants for the Energy Telemetry integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "energy_telemetry"
LOGGER = logging.getLogger(__package__)

CONF_SOURCE: Final = "source"
SOURCE_NOVACORE: Final = "novacore"
SOURCE_AINSITE: Final = "ainsite"

# Novacore
CONF_API_URL: Final = "api_url"
CONF_PRIVATE_KEY: Final = "private_key"
CONF_TOKEN: Final = "token"  # noqa: S105
CONF_SITE_ID: Final = "site_id"
CONF_SIGNS: Final = "signs"
"""Options: the user's sign choice per DER type (automatic, documented, inverted)."""
SIGN_DER_TYPES: Final = ("pv", "battery", "meter", "ev_charger", "inverter")

# Ainsite
CONF_CUSTOMER_ID: Final = "customer_id"
CONF_SUBSCRIPTION_ID: Final = "subscription_id"
CONF_CLIENT_ID: Final = "client_id"
CONF_TLS: Final = "tls"
CONF_REGISTERS: Final = "registers"

# Connection health
STREAM_GRACE_PERIOD: Final = timedelta(seconds=30)
"""How long a dropped connection may stay down before entities go unavailable."""
WATCHDOG_INTERVAL: Final = timedelta(seconds=10)
"""How often stale data and connection health are checked."""
STALE_MIN_SECONDS: Final = 60.0
"""A DER is never stale before this many seconds without a reading."""
STALE_INTERVALS: Final = 5.0
"""A DER is stale after this many of its usual reporting intervals without a reading."""
