"""Ainsite topics: `meters/outbound/{customer}/{subscription}/{meter}`."""

from __future__ import annotations

from typing import Final

from ..common import MAX_NAME_LENGTH

TOPIC_PREFIX: Final = "meters/outbound"


def _check_id(name: str, value: str) -> None:
    """Raise ValueError unless value can be one level of a topic filter."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if any(char in value for char in "/+#\x00"):
        raise ValueError(f"{name} must not contain '/', '+', '#' or NUL")


def subscription_filter(customer_id: str, subscription_id: str | None) -> str:
    """Return the topic filter for a customer and one subscription (None or "": all of them)."""
    _check_id("customer_id", customer_id)
    if subscription_id:
        _check_id("subscription_id", subscription_id)
    return f"{TOPIC_PREFIX}/{customer_id}/{subscription_id or '+'}/+"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """Return (customer, subscription, meter) of a reading topic, or None."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "meters" or parts[1] != "outbound":
        return None
    customer, subscription, meter = parts[2], parts[3], parts[4]
    if not (
        0 < len(customer) <= MAX_NAME_LENGTH
        and 0 < len(subscription) <= MAX_NAME_LENGTH
        and 0 < len(meter) <= MAX_NAME_LENGTH
    ):
        return None
    return customer, subscription, meter
