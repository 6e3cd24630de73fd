"""The Ainsite MQTT connection (AinsiteConnection, async_validate) against a real mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
import logging
from pathlib import Path
import ssl
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
import pytest

from custom_components.energy_telemetry.protocol import ainsite
from custom_components.energy_telemetry.protocol.ainsite import (
    AinsiteAuthError,
    AinsiteConnection,
    AinsiteConnectionError,
    async_validate,
    client as ainsite_client,
    parse_payload,
    parse_topic,
)
from custom_components.energy_telemetry.protocol.common import ParseStats
from simulator.ainsite_publisher import PublisherStats, payload_v1, run_publisher
from simulator.processes import free_port
from tests.helpers.brokers import AckWithholdingProxy, Mosquitto
from tests.helpers.waiting import wait_for

CUSTOMER = "cust-1"
SUBSCRIPTION = "sub-1"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
HOST = "127.0.0.1"  # pytest-socket only lets tests connect to 127.0.0.1


# --- helpers of the connection ----------------------------------------------------------


def test_suback_failure_detection() -> None:
    """A granted QoS of 0x80 (or an MQTT 5 failure code) is a refused subscription."""
    granted = ainsite_client._granted_failed
    assert not granted([ReasonCode(PacketTypes.SUBACK, identifier=1)])
    assert not granted((0,))
    assert granted([ReasonCode(PacketTypes.SUBACK, identifier=0x80)])
    assert granted((0x80,))
    assert granted([])


def test_backoff_is_capped_full_jitter() -> None:
    """Delays stay within [0, min(cap, initial * 2**attempt)]."""
    conn = _connection(0, backoff_initial=1.0, backoff_max=60.0)
    for attempt in range(40):
        ceiling = min(60.0, 2.0**attempt)
        delays = [conn._next_delay(attempt) for _ in range(50)]
        assert all(0 <= delay <= ceiling for delay in delays)
    assert max(conn._next_delay(10) for _ in range(200)) > 30


def test_repr_hides_password() -> None:
    """The password never shows in the connection's repr."""
    conn = _connection(1883)
    assert PASSWORD not in repr(conn)
    assert "client-1" in repr(conn)


# --- a real broker ----------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path, socket_enabled: None) -> Iterator[Mosquitto]:
    """A running mosquitto with TLS and one customer account."""
    mosquitto = Mosquitto(tmp_path / "broker")
    mosquitto.add_user(USERNAME, PASSWORD, CUSTOMER)
    mosquitto.add_user("bob", "bob-password", "cust-2")
    with mosquitto:
        yield mosquitto


@pytest.fixture
def tls(broker: Mosquitto) -> ssl.SSLContext:
    """A client TLS context that trusts the test broker."""
    return broker.client_tls_context()


class Recorder:
    """Collects what an AinsiteConnection reports."""

    def __init__(self) -> None:
        """Start empty."""
        self.messages: list[tuple[str, bytes]] = []
        self.connected = 0
        self.disconnected: list[Exception | None] = []
        self._changed = asyncio.Event()

    def on_message(self, topic: str, payload: bytes) -> None:
        """Record a message."""
        self.messages.append((topic, payload))
        self._changed.set()

    def on_connected(self) -> None:
        """Record a connect."""
        self.connected += 1
        self._changed.set()

    def on_disconnected(self, error: Exception | None) -> None:
        """Record a disconnect."""
        self.disconnected.append(error)
        self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        """Wait until predicate() is true."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_messages(self, count: int, timeout: float = 60.0) -> None:
        """Wait until count messages have arrived."""
        await self.wait_for(lambda: len(self.messages) >= count, timeout)


def _connection(
    port: int,
    recorder: Recorder | None = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    client_id: str = "client-1",
    password: str = PASSWORD,
    customer: str = CUSTOMER,
    subscription: str | None = None,
    backoff_initial: float = 0.05,
    backoff_max: float = 0.2,
) -> AinsiteConnection:
    """Return a connection to the test broker reporting to recorder."""
    recorder = recorder or Recorder()
    return AinsiteConnection(
        HOST,
        port,
        USERNAME,
        password,
        client_id,
        customer,
        subscription,
        tls_context,
        recorder.on_message,
        recorder.on_connected,
        recorder.on_disconnected,
        backoff_initial=backoff_initial,
        backoff_max=backoff_max,
    )


async def _establish_session(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """Connect once as client-1, so that the broker keeps its session while it is away."""
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls)
    async with Running(conn):
        await recorder.wait_for(lambda: conn.connected)


class Running:
    """An AinsiteConnection running in a task for the length of a with block."""

    def __init__(self, conn: AinsiteConnection) -> None:
        """Wrap conn."""
        self.conn = conn
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> asyncio.Task[None]:
        """Start run()."""
        self.task = asyncio.create_task(self.conn.run())
        return self.task

    async def __aexit__(self, *exc: object) -> None:
        """Close the connection."""
        await self.conn.close()
        assert self.task is not None
        assert self.task.done()


def _messages(count: int, meter: str = "m1", customer: str = CUSTOMER) -> list[tuple[str, bytes]]:
    """Return count distinct schema 1 messages for one meter."""
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        (
            f"meters/outbound/{customer}/{SUBSCRIPTION}/{meter}",
            payload_v1(1000.0 + index, start + timedelta(seconds=index)),
        )
        for index in range(count)
    ]


async def test_validate_ok(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """Valid credentials connect, subscribe at QoS 1 and disconnect cleanly."""
    await async_validate(HOST, broker.tls_port, USERNAME, PASSWORD, CUSTOMER, SUBSCRIPTION, tls)
    log = broker.wait_for_log("Received DISCONNECT from ha-energy-telemetry-check-")
    assert f"meters/outbound/{CUSTOMER}/{SUBSCRIPTION}/+ (QoS 1)" in log
    # MQTT 3.1.1 is "p2" in mosquitto 2.0's log, "p4" (the protocol level) in 2.1; c1: a clean,
    # throwaway session that takes over nothing
    connects = [line for line in log.splitlines() if " as ha-energy-telemetry-check-" in line]
    assert connects or "mosquitto version 2.0" not in log
    for line in connects:
        assert "(p2, c1," in line or "(p4, c1," in line
    assert PASSWORD not in log


async def test_validate_wrong_password(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """mosquitto answers a wrong password with CONNACK 5 (not authorized): an auth error."""
    with pytest.raises(AinsiteAuthError):
        await async_validate(HOST, broker.tls_port, USERNAME, "wrong", CUSTOMER, None, tls)
    with pytest.raises(AinsiteAuthError):
        await async_validate(HOST, broker.tls_port, "nobody", "x", CUSTOMER, None, tls)


async def test_validate_unreachable(socket_enabled: None) -> None:
    """A closed port is a connection error."""
    with pytest.raises(AinsiteConnectionError):
        await async_validate(HOST, free_port(), USERNAME, PASSWORD, CUSTOMER, None, None)


async def test_validate_untrusted_certificate(broker: Mosquitto) -> None:
    """A server certificate the context does not trust is a connection error."""
    with pytest.raises(AinsiteConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await async_validate(
            HOST,
            broker.tls_port,
            USERNAME,
            PASSWORD,
            CUSTOMER,
            None,
            ssl.create_default_context(),
        )


async def test_validate_times_out(broker: Mosquitto) -> None:
    """Plain MQTT against the TLS port never gets a CONNACK: a timeout, as a connection error."""
    with pytest.raises(AinsiteConnectionError):
        await async_validate(HOST, broker.tls_port, USERNAME, PASSWORD, CUSTOMER, None, None, 1)


async def test_validate_rejects_bad_ids(socket_enabled: None) -> None:
    """Ids are checked before anything is sent."""
    with pytest.raises(ValueError, match="customer_id"):
        await async_validate(HOST, 1, USERNAME, PASSWORD, "#", None, None)


async def test_acl_violation(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """Subscribing outside the ACL.

    mosquitto 2.0.11 grants such a subscription in the SUBACK (QoS 1, not 0x80) and keeps the
    client connected, but never delivers a message the ACL denies. Ainsite instead drops the
    session; the code handles both (a refused SUBACK raises AinsiteSubscribeError).
    """
    await async_validate(HOST, broker.tls_port, USERNAME, PASSWORD, "cust-2", None, tls)
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls, customer="cust-2")
    async with Running(conn):
        await recorder.wait_for(lambda: conn.connected)
        await broker.apublish_many(_messages(3, customer="cust-2"))
        await asyncio.sleep(0.5)
        assert conn.connected
    assert recorder.messages == []
    assert recorder.disconnected == []


async def test_receive(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """Messages on the filter arrive in order with topic and raw payload; others do not."""
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls, subscription=SUBSCRIPTION)
    async with Running(conn):
        await recorder.wait_for(lambda: conn.connected)
        assert recorder.connected == 1
        await broker.apublish("meters/outbound/cust-1/other-sub/m1", b"not for us")
        await broker.apublish("meters/outbound/cust-2/sub-1/m1", b"not for us")
        await broker.apublish("meters/outbound/cust-1/sub-1/m1/extra", b"not for us")
        expected = _messages(20)
        await broker.apublish_many(expected)
        await recorder.wait_messages(20)
        await asyncio.sleep(0.2)
    assert recorder.messages == expected
    assert conn.messages == 20
    assert conn.connects == 1
    assert not conn.connected
    assert recorder.disconnected == []
    readings = [parse_payload(payload) for _, payload in recorder.messages]
    assert all(reading is not None and reading.register_id == "2" for reading in readings)
    broker.wait_for_log("Received DISCONNECT from client-1")  # close() said goodbye


async def test_callback_errors_do_not_stop_delivery(
    broker: Mosquitto, tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in on_message is logged and the next message still arrives."""
    recorder = Recorder()

    def on_message(topic: str, payload: bytes) -> None:
        recorder.on_message(topic, payload)
        if len(recorder.messages) == 1:
            raise RuntimeError("boom")

    conn = _connection(broker.tls_port, recorder, tls_context=tls)
    conn._on_message = on_message
    async with Running(conn):
        await recorder.wait_for(lambda: conn.connected)
        await broker.apublish_many(_messages(3))
        await recorder.wait_messages(3)
    assert conn.callback_errors == 1
    assert "boom" in caplog.text
    assert recorder.disconnected == []


async def test_run_wrong_password_raises(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """run() gives up on refused credentials, after reporting the outage once."""
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls, password="wrong")
    with pytest.raises(AinsiteAuthError):
        await conn.run()
    assert len(recorder.disconnected) == 1
    assert isinstance(recorder.disconnected[0], AinsiteAuthError)
    assert recorder.connected == 0


async def test_run_retries_unreachable_and_reports_once(
    tmp_path: Path, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    """While the broker is down run() keeps trying; on_disconnected is called once."""
    caplog.set_level(logging.DEBUG, logger=ainsite.__name__)
    broker = Mosquitto(tmp_path / "late")
    broker.add_user(USERNAME, PASSWORD, CUSTOMER)
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=broker.client_tls_context())

    def retries() -> int:
        return sum("Reconnecting to Ainsite" in record.getMessage() for record in caplog.records)

    try:
        async with Running(conn):
            await wait_for(lambda: retries() >= 3, timeout=30)  # three failed attempts
            assert len(recorder.disconnected) == 1
            assert isinstance(recorder.disconnected[0], AinsiteConnectionError)
            assert not conn.connected
            broker.start()
            await recorder.wait_for(lambda: conn.connected)
            assert recorder.connected == 1
            assert len(recorder.disconnected) == 1
    finally:
        broker.stop()
    assert broker.log_text().count("New connection from") >= 1


async def test_close_before_and_while_backing_off(socket_enabled: None) -> None:
    """close() stops a run() that is waiting to retry, and a closed connection does not run."""
    recorder = Recorder()
    conn = _connection(free_port(), recorder, backoff_initial=30, backoff_max=30)
    task = asyncio.create_task(conn.run())
    await recorder.wait_for(lambda: bool(recorder.disconnected))
    await conn.close()
    assert task.done()
    await conn.run()  # returns at once: the connection is closed


async def test_persistent_session(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """Messages published while the client is away arrive when it returns with its id."""
    await _establish_session(broker, tls)
    offline = _messages(10)
    await broker.apublish_many(offline)  # queued in the session the validation created
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls)
    async with Running(conn):
        await recorder.wait_messages(10)
    assert recorder.messages == offline

    more = _messages(5, meter="m2")
    await broker.apublish_many(more)
    recorder2 = Recorder()
    conn2 = _connection(broker.tls_port, recorder2, tls_context=tls)
    async with Running(conn2):
        await recorder2.wait_messages(5)
        await asyncio.sleep(0.3)
    assert recorder2.messages == more

    # Another client id has a session of its own: nothing queued for it.
    recorder3 = Recorder()
    conn3 = _connection(broker.tls_port, recorder3, tls_context=tls, client_id="client-2")
    async with Running(conn3):
        await recorder3.wait_for(lambda: conn3.connected)
        await asyncio.sleep(0.3)
    assert recorder3.messages == []


async def test_broker_restart_mid_stream(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """The client reconnects by itself and the persisted session loses nothing."""
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls, backoff_initial=0.5)
    async with Running(conn):
        await recorder.wait_for(lambda: conn.connected)
        first = _messages(10)
        await broker.apublish_many(first)
        await recorder.wait_messages(10)
        # restart() blocks the event loop, and whatever the broker has not seen acknowledged by
        # then comes again after the restart (with DUP set), as QoS 1 allows: wait until it has
        # received every PUBACK (mosquitto logs each one).
        await broker.await_log("Received PUBACK from client-1", count=10)

        broker.restart()  # SIGTERM: the session and its subscription are saved
        second = _messages(10, meter="m2")
        await broker.apublish_many(second)  # probably before the client is back: queued
        await recorder.wait_messages(20)
        await recorder.wait_for(lambda: conn.connected)
        await asyncio.sleep(0.3)
    assert recorder.messages == first + second
    assert recorder.connected == 2
    assert len(recorder.disconnected) == 1
    assert conn.connects == 2


async def test_queued_messages_survive_restart_and_kill(
    broker: Mosquitto, tls: ssl.SSLContext
) -> None:
    """Messages queued for an offline client survive SIGTERM, and SIGKILL after an autosave."""
    await _establish_session(broker, tls)
    queued = _messages(10)
    await broker.apublish_many(queued)
    broker.restart()
    killed = _messages(5, meter="m2")
    await broker.apublish_many(killed)
    # SIGKILL keeps only what an autosave (autosave_interval 1) wrote: wait for the one that
    # holds these messages.
    await broker.await_persisted(payload for _, payload in killed)
    broker.kill()
    broker.start()
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls)
    async with Running(conn):
        await recorder.wait_messages(15)
        await asyncio.sleep(0.3)
    assert recorder.messages == queued + killed


async def test_simulator_end_to_end(broker: Mosquitto, tls: ssl.SSLContext) -> None:
    """The simulator's stream arrives complete and parses, duplicates included."""
    recorder = Recorder()
    conn = _connection(broker.tls_port, recorder, tls_context=tls, subscription=SUBSCRIPTION)
    async with Running(conn):
        await recorder.wait_for(lambda: conn.connected)
        stats = await run_publisher(
            HOST,
            broker.tls_port,
            USERNAME,
            PASSWORD,
            CUSTOMER,
            SUBSCRIPTION,
            interval=60,
            speed=6000,
            duplicate_rate=0.3,
            tls_context=tls,
            seed=1,
            cycles=5,
            start=datetime.now(UTC) - timedelta(hours=1),
        )
        assert isinstance(stats, PublisherStats)
        assert stats.published == 5 * 2 * 3
        assert stats.duplicates > 0
        total = stats.published + stats.duplicates
        await recorder.wait_messages(total)
    stats_parse = ParseStats()
    readings = [parse_payload(payload, stats_parse) for _, payload in recorder.messages]
    assert stats_parse.accepted == total
    assert {reading.register_id for reading in readings if reading} == {"2", "7", "12"}
    assert {parse_topic(topic) for topic, _ in recorder.messages} == {
        (CUSTOMER, SUBSCRIPTION, "mtr-1001"),
        (CUSTOMER, SUBSCRIPTION, "mtr-1002"),
    }
    totals = [
        reading.value
        for topic, payload in recorder.messages
        if topic.endswith("mtr-1001")
        and (reading := parse_payload(payload))
        and reading.version == 1
    ]
    assert totals == sorted(totals)
    assert len(set(totals)) == 5


async def test_unacked_messages_come_again_after_restart(
    broker: Mosquitto, tls: ssl.SSLContext
) -> None:
    """Messages received but not acknowledged when the broker stops arrive again.

    The client talks to the broker through a peer that withholds its PUBACKs, so the broker has
    all ten messages in flight when it stops, however fast or slow the machine is.
    """
    recorder = Recorder()
    proxy = AckWithholdingProxy(
        broker.plain_port, broker.base_dir / "server.crt", broker.base_dir / "server.key"
    )
    async with proxy:
        conn = _connection(proxy.port, recorder, tls_context=tls)
        async with Running(conn):
            await recorder.wait_for(lambda: conn.connected)
            first = _messages(10)
            await broker.apublish_many(first)
            await recorder.wait_messages(10)
            await proxy.wait_withheld(10)  # the client acknowledged all ten; none arrived
            proxy.withhold = False
            broker.restart()  # SIGTERM: the session is saved with the ten still in flight
            await recorder.wait_messages(20)
            await wait_for(lambda: proxy.forwarded_acks >= 10, timeout=30)  # acked this time
    assert recorder.messages == first + first
    assert recorder.connected == 2
    assert proxy.withheld == 10
