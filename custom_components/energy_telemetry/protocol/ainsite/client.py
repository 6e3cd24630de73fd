"""The MQTT client of an Ainsite session: aiomqtt with paho's socket handling made safe.

aiomqtt leaves a few of paho's edges open (sockets registered after they closed, a pending
SUBSCRIBE that never fails, messages acknowledged before they are applied); the functions here
close them. `async_validate` checks settings with a throwaway session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import logging
import ssl
import threading
from typing import Any, Final, cast
import uuid
import weakref

import aiomqtt
from paho.mqtt.enums import MQTTErrorCode

from .errors import (
    AinsiteAuthError,
    AinsiteCertificateError,
    AinsiteConnectionError,
    AinsiteError,
    AinsiteSubscribeError,
)
from .topics import subscription_filter

_LOGGER = logging.getLogger(__name__)

DEFAULT_HOST: Final = "mqtt.ainsite.io"
DEFAULT_PORT: Final = 8883
DEFAULT_KEEPALIVE: Final = 60
QOS: Final = 1

# MQTT 3.1.1 CONNACK return codes 4 and 5, and the MQTT 5 reason codes paho maps them to.
_AUTH_CONNACK_CODES: Final = frozenset({4, 5, 0x86, 0x87})
_AUTH_CONNACK_NAMES: Final = frozenset({"bad user name or password", "not authorized"})
_SUBACK_FAILURE: Final = 0x80
READ_SIZE: Final = 65536
"""Bytes taken from the socket at once."""
PACKETS_PER_WAKE_UP: Final = 256
"""Packets handled before the event loop runs something else (the rest follow next turn)."""


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """Log paho's and aiomqtt's messages at DEBUG: outages are reported through callbacks."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at DEBUG whatever the level."""
        super().log(logging.DEBUG, msg, *args, **kwargs)


_MQTT_LOGGER: Final = cast("logging.Logger", _QuietLogger(_LOGGER.getChild("mqtt")))


def _reason_code(error: aiomqtt.MqttCodeError) -> int | None:
    """Return the numeric return/reason code of an aiomqtt error."""
    rc: Any = error.rc
    if rc is None:
        return None
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def _is_auth_failure(error: aiomqtt.MqttError) -> bool:
    """Whether a connect error is the broker refusing the credentials."""
    if isinstance(error, aiomqtt.MqttCodeError):
        if _reason_code(error) in _AUTH_CONNACK_CODES:
            return True
        name = str(getattr(error.rc, "getName", lambda: "")()).lower()
        if name in _AUTH_CONNACK_NAMES:
            return True
    text = str(error).lower()
    return any(name in text for name in _AUTH_CONNACK_NAMES)


def _connect_error(error: aiomqtt.MqttError) -> AinsiteError:
    """Translate an aiomqtt connect error into an Ainsite error."""
    if _is_auth_failure(error):
        return AinsiteAuthError(f"Broker refused the credentials: {error}")
    if "certificate verify failed" in str(error).lower():
        return AinsiteCertificateError(f"The broker's TLS certificate is not trusted: {error}")
    return AinsiteConnectionError(f"Cannot connect to the broker: {error}")


def _granted_failed(granted: Any) -> bool:
    """Whether a SUBACK's granted QoS list holds a failure (0x80 or above)."""
    codes = granted if isinstance(granted, (list, tuple)) else [granted]
    if not codes:
        return True
    for code in codes:
        value = getattr(code, "value", code)
        if not isinstance(value, int) or value >= _SUBACK_FAILURE:
            return True
    return False


def make_client(
    host: str,
    port: int,
    username: str,
    password: str,
    client_id: str,
    tls_context: ssl.SSLContext | None,
    keepalive: int,
    timeout: float,
    *,
    clean_session: bool = False,
    on_message: Callable[[Any, Any, Any], None] | None = None,
) -> aiomqtt.Client:
    """Return an MQTT 3.1.1 client with a persistent session.

    With on_message, messages are handed over as paho decodes them, on the event loop, instead
    of through aiomqtt's queue and iterator: paho sends the PUBACK of a QoS 1 message only after
    on_message has returned, so a message is never acknowledged before it has been applied, and
    nothing waits in a queue that a disconnect or an unload could drop.
    """
    client = aiomqtt.Client(
        host,
        port,
        username=username,
        password=password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=clean_session,
        keepalive=keepalive,
        tls_context=tls_context,
        timeout=timeout,
        logger=_MQTT_LOGGER,
    )
    _guard_socket_registration(client)
    if on_message is not None:
        client._client.on_message = on_message  # noqa: SLF001
    return client


@dataclass(slots=True)
class _SocketGuard:
    """What the loop knows of a client's socket, which paho opens in an executor thread."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the thread has opened the socket."""
    abandoned: bool = False
    """Set when the connection attempt was given up: its socket is never read or written."""


_GUARDS: weakref.WeakKeyDictionary[aiomqtt.Client, _SocketGuard] = weakref.WeakKeyDictionary()


def _guard_socket_registration(client: aiomqtt.Client) -> None:
    """Register paho's socket reader and writer only if the socket is still open by then.

    aiomqtt defers the registrations with call_soon_threadsafe (paho opens the socket in an
    executor thread) but removes them at once; a socket closed in between (the broker dropped
    the connection or refused it, a reconnect, an unload) would otherwise be registered closed
    and raise EBADF inside the event loop.
    """
    paho_client = client._client  # noqa: SLF001
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    guard = _SocketGuard()
    _GUARDS[client] = guard

    def current(sock: Any) -> bool:
        return bool(
            not guard.abandoned and sock.fileno() >= 0 and paho_client._sock is sock  # noqa: SLF001
        )

    def failed(exc: Exception) -> None:
        disconnected = client._disconnected  # noqa: SLF001
        if not disconnected.done():
            disconnected.set_exception(exc)

    # paho reads a packet in several small reads (its type, each byte of its length, its
    # body): they are served from one read of the socket, and every packet that came in is
    # handled in one wake-up, so one write carries all their acknowledgements.
    data = b""
    offset = 0
    data_sock: Any = None

    def recv(size: int) -> bytes:
        nonlocal data, offset, data_sock
        sock = paho_client._sock  # noqa: SLF001
        if sock is None:
            raise ConnectionError("the socket is closed")
        if sock is not data_sock:
            data, offset, data_sock = b"", 0, sock
        if offset >= len(data):
            try:
                data = sock.recv(READ_SIZE)
            except ssl.SSLWantReadError as err:
                raise BlockingIOError from err
            except ssl.SSLWantWriteError as err:
                paho_client._call_socket_register_write()  # noqa: SLF001
                raise BlockingIOError from err
            offset = 0
        chunk = data[offset : offset + size]
        offset += len(chunk)
        return chunk

    paho_client._sock_recv = recv  # type: ignore[method-assign,assignment]  # noqa: SLF001

    def read() -> None:  # as aiomqtt's reader, for every packet that came in
        try:
            for _ in range(PACKETS_PER_WAKE_UP):
                if paho_client._sock is None:  # noqa: SLF001
                    return
                rc = paho_client._packet_read()  # noqa: SLF001
                if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                    return  # all read
                if rc > 0:
                    paho_client._loop_rc_handle(rc)  # noqa: SLF001
                    return
            loop.call_soon(read)  # more, maybe already read from the socket: next turn
        except Exception as exc:  # noqa: BLE001 - as aiomqtt: the connection broke
            failed(exc)

    def write() -> None:
        try:
            paho_client.loop_write()
        except Exception as exc:  # noqa: BLE001 - as aiomqtt: the connection broke
            failed(exc)

    def opened(_client: Any, _userdata: Any, sock: Any) -> None:
        def add() -> None:
            guard.opened.set()
            if current(sock):
                loop.add_reader(sock.fileno(), read)
                client._misc_task = loop.create_task(client._misc_loop())  # noqa: SLF001

        loop.call_soon_threadsafe(add)

    def flush(sock: Any) -> None:
        """Write what paho queued (a PUBACK, mostly) at once; wait for the socket if it is full."""
        if current(sock):
            write()
            if paho_client.want_write() and current(sock):
                loop.add_writer(sock.fileno(), write)

    def register(_client: Any, _userdata: Any, sock: Any) -> None:
        if threading.get_ident() == loop_thread:
            # On the loop (the usual case: a PUBACK queued while reading): no cross-thread wake-up.
            loop.call_soon(flush, sock)
            return

        def add() -> None:
            if current(sock):
                loop.add_writer(sock.fileno(), write)

        loop.call_soon_threadsafe(add)

    paho_client.on_socket_open = opened
    paho_client.on_socket_register_write = register


async def _settle() -> None:
    """Let the loop run the reader/writer registrations paho scheduled from other threads.

    paho asks for them with call_soon_threadsafe; closing the socket before they ran would leave
    them to register a closed file descriptor.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _discard(client: aiomqtt.Client) -> None:
    """Close the socket of a client whose connection attempt failed or was cancelled.

    aiomqtt leaves paho's socket (and its event-loop reader) open when the broker refuses the
    CONNACK; its later close would then reach a callback of the abandoned client.
    """
    await _settle()
    paho_client = client._client  # noqa: SLF001
    with contextlib.suppress(Exception):
        paho_client._sock_close()  # noqa: SLF001
    # Why the connection ended is reported where it matters; an unread one would be logged.
    client._disconnected.add_done_callback(_retrieve)  # noqa: SLF001


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a future's exception as retrieved."""
    if not future.cancelled():
        future.exception()


async def disconnect(client: aiomqtt.Client) -> None:
    """Disconnect cleanly (a DISCONNECT packet), whatever state the connection is in."""
    try:
        await _settle()
        with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
            await client.__aexit__(None, None, None)
    finally:
        await _discard(client)


async def connect(client: aiomqtt.Client) -> None:
    """Connect; on failure, leave nothing behind that could touch the socket later."""
    attempt = asyncio.ensure_future(client.__aenter__())
    try:
        await asyncio.shield(attempt)
    except aiomqtt.MqttError as err:
        await _discard(client)
        raise _connect_error(err) from err
    except asyncio.CancelledError:
        await _abandon(client, attempt)
        raise
    except BaseException:
        await _discard(client)
        raise


async def _abandon(client: aiomqtt.Client, attempt: asyncio.Future[Any]) -> None:
    """Close the socket of a cancelled connection attempt once paho's thread has opened it.

    Cancelling does not stop paho's socket connect, which runs in an executor thread: a socket
    closed now could be replaced by the one that thread opens a moment later, which would stay
    open. Nothing on the abandoned socket is read, so no message is applied, let alone
    acknowledged, by a connection that is going away: the persistent session keeps it.
    """
    guard = _GUARDS[client]
    guard.abandoned = True
    opened = asyncio.ensure_future(guard.opened.wait())
    await asyncio.wait(
        [attempt, opened], timeout=float(client.timeout), return_when=asyncio.FIRST_COMPLETED
    )
    for future in (attempt, opened):
        future.cancel()
    await asyncio.wait([attempt, opened])
    if not attempt.cancelled():
        attempt.exception()  # retrieved: why it failed no longer matters
    await _discard(client)


async def subscribe(client: aiomqtt.Client, topic_filter: str) -> None:
    """Subscribe at QoS 1; raise AinsiteSubscribeError if the broker refuses or drops us.

    aiomqtt does not fail a pending SUBSCRIBE when the connection closes, so the SUBACK is raced
    against the connection's end (Ainsite drops the session of a client subscribing outside its
    customer).
    """
    disconnected = client._disconnected  # noqa: SLF001
    subscribing = asyncio.ensure_future(client.subscribe(topic_filter, qos=QOS))
    waiting: list[asyncio.Future[Any]] = [subscribing, disconnected]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not subscribing.done():
            subscribing.cancel()
            with contextlib.suppress(BaseException):
                await subscribing
        if disconnected.done() and not disconnected.cancelled():
            disconnected.exception()  # retrieved: reported below, not as an orphan
    if subscribing.cancelled() or subscribing.exception() is not None:
        raise AinsiteSubscribeError(
            f"The broker closed the connection on subscribing to {topic_filter}"
        )
    granted = subscribing.result()
    if _granted_failed(granted):
        raise AinsiteSubscribeError(f"Broker refused the subscription to {topic_filter}: {granted}")


async def async_validate(
    host: str,
    port: int,
    username: str,
    password: str,
    customer_id: str,
    subscription_id: str | None,
    tls_context: ssl.SSLContext | None,
    timeout: float = 10,
) -> None:
    """Connect, subscribe at QoS 1 and disconnect, as a throwaway clean session.

    A client id of its own keeps the check from taking over (and so disconnecting) a running
    session of the same entry.
    """
    topic_filter = subscription_filter(customer_id, subscription_id)
    client = make_client(
        host,
        port,
        username,
        password,
        f"ha-energy-telemetry-check-{uuid.uuid4().hex[:16]}",
        tls_context,
        DEFAULT_KEEPALIVE,
        timeout,
        clean_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            await connect(client)
            try:
                await subscribe(client, topic_filter)
            except aiomqtt.MqttError as err:
                # Ainsite drops the session of a client subscribing outside its customer.
                raise AinsiteSubscribeError(f"Dropped while subscribing: {err}") from err
            finally:
                await disconnect(client)
    except TimeoutError as err:
        raise AinsiteConnectionError(f"Timed out talking to {host}:{port}") from err
    except ssl.SSLCertVerificationError as err:
        raise AinsiteCertificateError(
            f"The TLS certificate of {host}:{port} is not trusted: {err}"
        ) from err
    except (OSError, ssl.SSLError) as err:
        raise AinsiteConnectionError(f"Cannot connect to {host}:{port}: {err}") from err
