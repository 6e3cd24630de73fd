"""The protocols of Sourceful Novacore and Ainsite, free of Home Assistant.

Laid out as a library that could be published on its own: `novacore` (REST, SSE stream, reading
parser, routing and sign rules), `ainsite` (MQTT client, topics, payload parser) and `common`
(what both share). Nothing in this package imports Home Assistant; a test enforces it.
"""
