"""Ainsite (Smarteo) MQTT meter readings: topics, payload parsing and a reconnecting client."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
import logging
import math
import random
import ssl
import threading
import time
from typing import Any, Final, cast
import uuid
import weakref

import aiomqtt

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8883
DEFAULT_KEEPALIVE: Final = 60
TOPIC_PREFIX: Final = "meters/outbound"
QOS: Final = 1

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_ABS_VALUE: Final = 1e15
MIN_TIMESTAMP: Final = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_FUTURE_SECONDS: Final = 86400.0
_REPR_LIMIT: Final = 200

# MQTT 3.1.1 CONNACK return codes 4 and 5, and the MQTT 5 reason codes paho maps them to.
_AUTH_CONNACK_CODES: Final = frozenset({4, 5, 0x86, 0x87})
_AUTH_CONNACK_NAMES: Final = frozenset({"bad user name or password", "not authorized"})
_SUBACK_FAILURE: Final = 0x80


class AinsiteError(Exception):
    """Base error of the Ainsite MQTT client."""


class AinsiteAuthError(AinsiteError):
    """The broker refused the username or password."""


class AinsiteConnectionError(AinsiteError):
    """The broker could not be reached, TLS failed or the connection was lost."""


class AinsiteCertificateError(AinsiteConnectionError):
    """The broker's TLS certificate is not trusted."""


class AinsiteSubscribeError(AinsiteError):
    """The broker refused the subscription (SUBACK return code 0x80)."""


# --- topics ---------------------------------------------------------------------------


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
    if not customer or not subscription or not meter:
        return None
    return customer, subscription, meter


# --- payloads -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """One meter register reading."""

    register_id: str
    value: float
    timestamp: datetime
    start: datetime | None
    version: int


@dataclass(slots=True)
class ParseStats:
    """How many payloads were accepted, and rejected by reason."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class _Reject(Exception):  # noqa: N818
    """A payload is rejected for the given reason."""

    def __init__(self, reason: str) -> None:
        """Store the reason."""
        super().__init__(reason)
        self.reason = reason


def _number(raw: Any) -> float:
    """Return a finite, plausible float from a JSON value."""
    if raw is None:
        raise _Reject("missing_value")
    if isinstance(raw, bool):
        raise _Reject("invalid_value")
    if isinstance(raw, float):
        value = raw
    elif isinstance(raw, int):
        if abs(raw) > MAX_ABS_VALUE:
            raise _Reject("absurd_value")
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise _Reject("invalid_value") from None
    else:
        raise _Reject("invalid_value")
    if not math.isfinite(value):
        raise _Reject("non_finite_value")
    if abs(value) > MAX_ABS_VALUE:
        raise _Reject("absurd_value")
    return value


def _register(raw: Any) -> str:
    """Return a register id as a string: 2, 2.0 and "2" all give "2"."""
    if raw is None:
        raise _Reject("missing_register")
    if isinstance(raw, bool):
        raise _Reject("invalid_register")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if raw.is_integer():
            return str(int(raw))
        raise _Reject("invalid_register")
    if isinstance(raw, str):
        text = raw.strip()
        if not text or len(text) > 64:
            raise _Reject("invalid_register")
        if text.isdigit():
            return str(int(text))
        return text
    raise _Reject("invalid_register")


def _timestamp(raw: Any, now: float) -> datetime:
    """Return an aware UTC datetime from an ISO-8601 string within the plausible range."""
    if raw is None:
        raise _Reject("missing_timestamp")
    if not isinstance(raw, str) or len(raw) > 64:
        raise _Reject("invalid_timestamp")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise _Reject("invalid_timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    elif parsed.utcoffset():
        parsed = parsed.astimezone(UTC)
    else:
        parsed = parsed.replace(tzinfo=UTC)
    epoch = parsed.timestamp()
    if epoch < MIN_TIMESTAMP:
        raise _Reject("timestamp_too_old")
    if epoch > now + MAX_FUTURE_SECONDS:
        raise _Reject("timestamp_in_future")
    return parsed


def _decode(payload: bytes | str, now: float) -> Reading:
    """Return the reading in a payload or raise _Reject."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _Reject("too_large")
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise _Reject("not_utf8") from None
    elif isinstance(payload, str):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _Reject("too_large")
        text = payload
    else:
        raise _Reject("not_bytes")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _Reject("not_json") from None
    if not isinstance(data, dict):
        raise _Reject("not_object")
    version = data.get("smarteo_payload_schema_version")
    if version is None:
        raise _Reject("missing_version")
    if isinstance(version, bool) or not isinstance(version, int | float | str):
        raise _Reject("unknown_version")  # a list or an object (unhashable), true, false
    if version in {1, "1"}:
        return Reading(
            register_id=_register(data.get("register_id")),
            value=_number(data.get("meter_reading")),
            timestamp=_timestamp(data.get("data_timestamp_utc"), now),
            start=None,
            version=1,
        )
    if version in {2, "2"}:
        register_id = _register(data.get("register_id"))
        value = _number(data.get("value"))
        start = _timestamp(data.get("measurement_start_timestamp_utc"), now)
        end = _timestamp(data.get("measurement_end_timestamp_utc"), now)
        if end < start:
            raise _Reject("end_before_start")
        return Reading(register_id=register_id, value=value, timestamp=end, start=start, version=2)
    raise _Reject("unknown_version")


def parse_payload(payload: bytes | str, stats: ParseStats | None = None) -> Reading | None:
    """Return the reading in an Ainsite payload (schema 1 or 2), or None if it is rejected."""
    try:
        reading = _decode(payload, time.time())
    except _Reject as err:
        if stats is not None:
            stats.rejected[err.reason] += 1
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("Rejected Ainsite payload (%s): %.200r", err.reason, payload)
        return None
    except Exception:  # never let a payload break the caller
        if stats is not None:
            stats.rejected["error"] += 1
        _LOGGER.debug("Rejected Ainsite payload (error): %.200r", payload, exc_info=True)
        return None
    if stats is not None:
        stats.accepted += 1
    return reading


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """Log paho's and aiomqtt's messages at DEBUG: outages are reported through callbacks."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at DEBUG whatever the level."""
        super().log(logging.DEBUG, msg, *args, **kwargs)


_MQTT_LOGGER: Final = cast("logging.Logger", _QuietLogger(_LOGGER.getChild("mqtt")))


# --- broker errors --------------------------------------------------------------------


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


def _make_client(
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

    def read() -> None:  # as aiomqtt's reader
        try:
            while True:
                paho_client.loop_read()
                # loop_read does not always consume every decoded byte of an SSL socket
                sock = paho_client._sock  # noqa: SLF001
                if sock is not None and hasattr(sock, "pending") and sock.pending() > 0:
                    continue
                break
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


async def _disconnect(client: aiomqtt.Client) -> None:
    """Disconnect cleanly (a DISCONNECT packet), whatever state the connection is in."""
    try:
        await _settle()
        with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
            await client.__aexit__(None, None, None)
    finally:
        await _discard(client)


async def _connect(client: aiomqtt.Client) -> None:
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


async def _subscribe(client: aiomqtt.Client, topic_filter: str) -> None:
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
    client = _make_client(
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
            await _connect(client)
            try:
                await _subscribe(client, topic_filter)
            except aiomqtt.MqttError as err:
                # Ainsite drops the session of a client subscribing outside its customer.
                raise AinsiteSubscribeError(f"Dropped while subscribing: {err}") from err
            finally:
                await _disconnect(client)
    except TimeoutError as err:
        raise AinsiteConnectionError(f"Timed out talking to {host}:{port}") from err
    except ssl.SSLCertVerificationError as err:
        raise AinsiteCertificateError(
            f"The TLS certificate of {host}:{port} is not trusted: {err}"
        ) from err
    except (OSError, ssl.SSLError) as err:
        raise AinsiteConnectionError(f"Cannot connect to {host}:{port}: {err}") from err


# --- reconnecting connection ----------------------------------------------------------


class AinsiteConnection:
    """A persistent-session MQTT subscription that reconnects by itself."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        client_id: str,
        customer_id: str,
        subscription_id: str | None,
        tls_context: ssl.SSLContext | None,
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], None],
        on_disconnected: Callable[[Exception | None], None],
        *,
        on_subscription: Callable[[int], None] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        keepalive: int = DEFAULT_KEEPALIVE,
        timeout: float = 10.0,
    ) -> None:
        """Store the settings; run() connects."""
        self.host = host
        self.port = port
        self.client_id = client_id
        self.topic_filter = subscription_filter(customer_id, subscription_id)
        self._username = username
        self._password = password
        self._tls_context = tls_context
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_subscription = on_subscription
        self.subscribe_refusals = 0
        """Subscriptions refused (or dropped) in a row; 0 once the broker grants one."""
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._keepalive = keepalive
        self._timeout = timeout
        self._random = random.Random()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._in_outage = False
        self._subscribed = False
        self.connected = False
        self.connects = 0
        self.messages = 0
        self.callback_errors = 0
        self.last_error: Exception | None = None

    def __repr__(self) -> str:
        """Describe the connection without its credentials."""
        return (
            f"<AinsiteConnection {self.client_id}@{self.host}:{self.port} "
            f"{self.topic_filter} connected={self.connected}>"
        )

    @property
    def closing(self) -> bool:
        """Whether close() has been called."""
        return self._closing

    def _next_delay(self, attempt: int) -> float:
        """Return a full-jitter delay for the given failed attempt (0-based)."""
        ceiling = min(self._backoff_max, self._backoff_initial * (2 ** min(attempt, 30)))
        return self._random.uniform(0, ceiling)

    def _report_outage(self, error: Exception | None) -> None:
        """Call on_disconnected once per outage."""
        self.connected = False
        if self._in_outage:
            return
        self._in_outage = True
        try:
            self._on_disconnected(error)
        except Exception:
            _LOGGER.exception("Error in the Ainsite disconnect callback")

    async def run(self) -> None:
        """Connect, subscribe and deliver messages until closed; AinsiteAuthError ends it."""
        self._task = asyncio.current_task()
        attempt = 0
        try:
            while not self._closing:
                try:
                    await self._session()
                except AinsiteAuthError as err:
                    self.last_error = err
                    self._report_outage(err)
                    raise
                except (AinsiteError, aiomqtt.MqttError, OSError) as err:
                    error: Exception = err
                    _LOGGER.debug("Ainsite session ended: %s", err)
                except Exception as err:  # keep running whatever paho or aiomqtt raise
                    error = err
                    _LOGGER.warning("Unexpected error in the Ainsite session", exc_info=True)
                else:  # pragma: no cover - _session only ends by raising
                    error = AinsiteConnectionError("Session ended")
                self.last_error = error
                if self.closing:
                    break
                if self._subscribed:
                    attempt = 0
                self._report_outage(error)
                delay = self._next_delay(attempt)
                attempt += 1
                _LOGGER.debug(
                    "Reconnecting to Ainsite %s:%s in %.1f s", self.host, self.port, delay
                )
                await asyncio.sleep(delay)
        finally:
            self.connected = False
            self._task = None

    async def _session(self) -> None:
        """Run one connection: connect, subscribe, deliver until it ends."""
        self._subscribed = False
        client = _make_client(
            self.host,
            self.port,
            self._username,
            self._password,
            self.client_id,
            self._tls_context,
            self._keepalive,
            self._timeout,
            on_message=self._on_paho_message,
        )
        was_out = self._in_outage
        await _connect(client)
        try:
            self._up()
            try:
                await _subscribe(client, self.topic_filter)
            except AinsiteSubscribeError:
                self.subscribe_refusals += 1
                self._notify_subscription()
                raise
            self._subscribed = True
            self.subscribe_refusals = 0
            self._notify_subscription()
            _LOGGER.debug(
                "Ainsite connected to %s:%s as %s, subscribed to %s%s",
                self.host,
                self.port,
                self.client_id,
                self.topic_filter,
                " after an outage" if was_out else "",
            )
            disconnected = client._disconnected  # noqa: SLF001
            await asyncio.wait([disconnected])  # never cancels aiomqtt's future
            error = None if disconnected.cancelled() else disconnected.exception()
            raise AinsiteConnectionError(f"Disconnected: {error}") from error
        finally:
            self.connected = False
            # on cancellation this still sends a clean DISCONNECT
            await _disconnect(client)

    def _up(self) -> None:
        """Report the connection up, once per connection.

        Up from the CONNACK on: the persistent session delivers what it kept right away, before
        the SUBACK, and a message may be decoded in the same read as the CONNACK, before the
        connect returns; its reading must find the connection up.
        """
        if self.connected:
            return
        self.connects += 1
        self.connected = True
        self._in_outage = False
        try:
            self._on_connected()
        except Exception:
            _LOGGER.exception("Error in the Ainsite connect callback")

    def _notify_subscription(self) -> None:
        if self._on_subscription is not None:
            try:
                self._on_subscription(self.subscribe_refusals)
            except Exception:
                _LOGGER.exception("Error in the Ainsite subscription callback")

    def _on_paho_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        """Apply a message as it arrives; paho acknowledges it (QoS 1) once this returns."""
        self.messages += 1
        self._up()
        try:
            self._on_message(message.topic, message.payload)
        except Exception:
            self.callback_errors += 1
            _LOGGER.exception("Error handling Ainsite message on %s", message.topic)

    async def close(self) -> None:
        """Disconnect cleanly and stop run()."""
        self._closing = True
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait([task])
