"""A persistent-session MQTT subscription to Ainsite's meter topics that reconnects by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging
import random
import ssl
from typing import Any

import aiomqtt

from ..common import BACKOFF_INITIAL, BACKOFF_MAX, backoff_delay
from .client import DEFAULT_KEEPALIVE, connect, disconnect, make_client, subscribe
from .errors import AinsiteAuthError, AinsiteConnectionError, AinsiteError, AinsiteSubscribeError
from .topics import subscription_filter

_LOGGER = logging.getLogger(__name__)


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
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
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
        """Return the wait before reconnect attempt `attempt` (0-based)."""
        return backoff_delay(attempt, self._backoff_initial, self._backoff_max, self._random)

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
        client = make_client(
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
        await connect(client)
        try:
            self._up()
            try:
                await subscribe(client, self.topic_filter)
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
            await disconnect(client)

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
