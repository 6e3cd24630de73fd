"""Two small MQTT peers that behave as Ainsite may and mosquitto cannot be made to.

- AckWithholdingProxy: a TLS front for mosquitto that drops the client's PUBACKs, so the broker
  keeps those QoS 1 messages in flight as if the acknowledgements had never left the client.
- RefusingBroker: accepts a connection, then refuses the subscription (SUBACK 0x80) or drops the
  session; mosquitto grants subscriptions outside a user's ACL and silently delivers nothing.

The rule: both listen on a free loopback port (`port`, once entered) and close every connection
on the way out; they read whole MQTT 3.1.1 packets, never a byte stream's luck.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
import ssl
from typing import Literal, Self

from .wait import wait_for

CONNECT = 1
PUBACK = 4
SUBSCRIBE = 8
PINGREQ = 12
DISCONNECT = 14


async def read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes, bytes]:
    """Read one MQTT packet: its fixed header byte, its encoded remaining length, its body."""
    header = await reader.readexactly(1)
    length_bytes = b""
    length = 0
    for shift in range(0, 28, 7):
        byte = await reader.readexactly(1)
        length_bytes += byte
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
    return header, length_bytes, await reader.readexactly(length)


class _LoopbackServer:
    """An asyncio server on a free loopback port that tracks its connections."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.port = 0
        self._context = context
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(
            self._connected, "127.0.0.1", 0, ssl=self._context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening and close every connection (a client that never closes must not hold)."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
            self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class AckWithholdingProxy(_LoopbackServer):
    """Forwards TLS clients to the broker's plain listener, minus their PUBACKs while `withhold`.

    The client talks TLS to this proxy (with the broker's own certificate); each client
    connection gets one upstream connection. Withheld PUBACKs are counted.
    """

    def __init__(self, upstream_port: int, certfile: Path, keyfile: Path) -> None:
        """Forward to 127.0.0.1:upstream_port; serve TLS with this certificate and key."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
        super().__init__(context)
        self.upstream_port = upstream_port
        self.withhold = True
        self.withheld = 0
        self.forwarded_acks = 0

    async def wait_withheld(self, count: int, timeout: float = 60.0) -> None:
        """Wait until count PUBACKs have been withheld."""
        await wait_for(
            lambda: self.withheld >= count,
            timeout=timeout,
            what=lambda: f"{count} withheld PUBACKs (withheld {self.withheld})",
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            return
        pumps = [
            asyncio.create_task(self._client_to_broker(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            with contextlib.suppress(Exception):
                up_writer.close()

    async def _client_to_broker(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward whole MQTT packets, minus the PUBACKs while withholding."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header, length, body = await read_packet(reader)
                if header[0] >> 4 == PUBACK:
                    if self.withhold:
                        self.withheld += 1
                        continue
                    self.forwarded_acks += 1
                writer.write(header + length + body)
                await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()


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


class RefusingBroker(_LoopbackServer):
    """Accepts CONNECT, then refuses (SUBACK 0x80) or drops the session on SUBSCRIBE.

    Subscriptions of the users in `granted_users`, or all of them in mode "grant", are granted
    (and nothing is ever delivered).
    """

    def __init__(self, mode: Literal["refuse", "drop", "grant"]) -> None:
        """Choose how a subscription is refused."""
        super().__init__()
        self.mode = mode
        self.granted_users: set[str] = set()
        self.subscriptions: list[bytes] = []
        self.connections = 0
        self.open_connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        username: str | None = None
        self.connections += 1
        self.open_connections += 1
        try:
            while True:
                header, _, body = await read_packet(reader)
                kind = header[0] >> 4
                if kind == CONNECT:
                    username = _connect_username(body)
                    writer.write(b"\x20\x02\x00\x00")
                elif kind == SUBSCRIBE:
                    self.subscriptions.append(body[2:])
                    if self.mode == "grant" or username in self.granted_users:
                        writer.write(b"\x90\x03" + body[:2] + b"\x01")
                    elif self.mode == "drop":
                        break
                    else:
                        writer.write(b"\x90\x03" + body[:2] + b"\x80")
                elif kind == PINGREQ:
                    writer.write(b"\xd0\x00")
                elif kind == DISCONNECT:
                    break
                await writer.drain()
        finally:
            self.open_connections -= 1
