"""Ainsite in Home Assistant: a subscription's coordinator, descriptions, settings check.

The protocol (MQTT client, topics, payload parsing) is in `protocol/ainsite`.
"""
