"""A minimal MQTT 3.1.1 broker that accepts a connection and then refuses the subscription.

mosquitto grants subscriptions outside a user's ACL (and silently delivers nothing), while Ainsite
refuses them or drops the session. This peer answers a SUBSCRIBE the way Ainsite may: with a SUBACK
failure code (0x80), or by closing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Self


def _connect_username(body: bytes) -> str | None:
    """Return the username of an MQTT 3.1.1 CONNECT packet's body, if it has one."""
    name_length = int.from_bytes(body[0:2], "big")
    flags = body[2 + name_length + 1]
    offset = 2 + name_length + 4  # protocol name, level, flags, keep alive
    fields = 1 + (2 if flags & 0x04 else 0)  # client id, will topic and message
    for _ in range(fields):
        offset += 2 + int.from_bytes(body[offset : offset + 2], "big")
    if not flags & 0x80:
        return None
    length = int.from_bytes(body[offset : offset + 2], "big")
    return body[offset + 2 : offset + 2 + length].decode()


class RefusingBroker:
    """Accepts CONNECT, then refuses (SUBACK 0x80) or drops the session on SUBSCRIBE.

    Subscriptions of the users in `granted_users`, or all of them in mode "grant", are granted
    (and nothing is ever delivered).
    """

    def __init__(self, mode: Literal["refuse", "drop", "grant"]) -> None:
        """Choose how a subscription is refused."""
        self.mode = mode
        self.granted_users: set[str] = set()
        self.port = 0
        self.subscriptions: list[bytes] = []
        self.connections = 0
        self.open_connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # a client that never closes must not hold the test
            writer.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        username: str | None = None
        self.connections += 1
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(1)
                length = 0
                for shift in range(0, 28, 7):
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length)
                kind = header[0] >> 4
                if kind == 1:  # CONNECT
                    username = _connect_username(body)
                    writer.write(b"\x20\x02\x00\x00")
                elif kind == 8:  # SUBSCRIBE
                    self.subscriptions.append(body[2:])
                    if self.mode == "grant" or username in self.granted_users:
                        writer.write(b"\x90\x03" + body[:2] + b"\x01")
                    elif self.mode == "drop":
                        break
                    else:
                        writer.write(b"\x90\x03" + body[:2] + b"\x80")
                elif kind == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()
