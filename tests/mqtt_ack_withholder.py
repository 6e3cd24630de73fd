"""A TLS front for mosquitto that withholds the client's PUBACKs: a peer that never hears them.

The client talks TLS to this proxy (with the broker's own certificate), the proxy talks plain
MQTT to the broker's loopback listener. Everything passes through, except that while `withhold`
is set the PUBACK packets the client sends are dropped and counted: the broker keeps those QoS 1
messages in flight, as if the acknowledgements had never left the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
import ssl
from typing import Self

PUBACK = 4


class AckWithholdingProxy:
    """Listens on a free loopback port; one upstream connection per client connection."""

    def __init__(self, upstream_port: int, certfile: Path, keyfile: Path) -> None:
        """Forward to 127.0.0.1:upstream_port; serve TLS with this certificate and key."""
        self.upstream_port = upstream_port
        self.port = 0
        self.withhold = True
        self.withheld = 0
        self.forwarded_acks = 0
        self._changed = asyncio.Event()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certfile, keyfile)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        """Start listening."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening and close every connection."""
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def wait_withheld(self, count: int, timeout: float = 60.0) -> None:
        """Wait until count PUBACKs have been withheld."""
        async with asyncio.timeout(timeout):
            while self.withheld < count:
                self._changed.clear()
                await self._changed.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
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
            for stream in (writer, up_writer):
                with contextlib.suppress(Exception):
                    stream.close()
            self._tasks.discard(task)

    async def _client_to_broker(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward whole MQTT packets, minus the PUBACKs while withholding."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(1)
                length_bytes = b""
                length = 0
                for shift in range(0, 28, 7):
                    byte = await reader.readexactly(1)
                    length_bytes += byte
                    length |= (byte[0] & 0x7F) << shift
                    if not byte[0] & 0x80:
                        break
                body = await reader.readexactly(length)
                if header[0] >> 4 == PUBACK:
                    if self.withhold:
                        self.withheld += 1
                        self._changed.set()
                        continue
                    self.forwarded_acks += 1
                writer.write(header + length_bytes + body)
                await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
