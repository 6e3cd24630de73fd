"""Sourceful Novacore in Home Assistant: a site's coordinator, device list, descriptions, check.

The protocol (REST, SSE stream, parsing, routing and sign rules) is in `protocol/novacore`.
"""
