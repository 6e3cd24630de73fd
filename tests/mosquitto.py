"""A real mosquitto broker with TLS, passwords, ACLs and persistence, for tests and scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
import contextlib
import ctypes
from dataclasses import dataclass
import datetime as dt
import ipaddress
from pathlib import Path
import secrets
import signal
import socket
import ssl
import subprocess
import time
from types import TracebackType
from typing import Self
import uuid

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from custom_components.energy_telemetry.protocol.ainsite.client import _guard_socket_registration
from simulator.broker import find_mosquitto, free_port, password_hash

ADMIN_USERNAME = "admin"


def _die_with_parent() -> None:
    """Have the kernel stop the broker when the test process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _PortTakenError(Exception):
    """A listener port was taken by another process."""


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """A broker account and the topic patterns it may read and write."""

    username: str
    password: str
    patterns: tuple[str, ...]


def _write_certificates(directory: Path) -> None:
    """Write ca.crt, server.crt and server.key (localhost, 127.0.0.1) into directory."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Energy Telemetry Test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.crt").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "server.key"
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


class Mosquitto:
    """A mosquitto process with a TLS listener, a plain 127.0.0.1 listener and persistence."""

    def __init__(
        self,
        base_dir: Path | str,
        *,
        admin_password: str | None = None,
        max_queued_messages: int = 100000,
    ) -> None:
        """Prepare the broker's files in base_dir; call start() to run it."""
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.tls_port = free_port()
        self.plain_port = free_port()
        while self.plain_port == self.tls_port:
            self.plain_port = free_port()
        self.admin_password = admin_password or secrets.token_urlsafe(16)
        self.max_queued_messages = max_queued_messages
        self.persistence_dir = self.base_dir / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self.config_path = self.base_dir / "mosquitto.conf"
        self.password_path = self.base_dir / "passwd"
        self.acl_path = self.base_dir / "acl"
        self.log_path = self.base_dir / "mosquitto.log"
        self.output_path = self.base_dir / "mosquitto.out"
        self._users: dict[str, BrokerUser] = {
            ADMIN_USERNAME: BrokerUser(ADMIN_USERNAME, self.admin_password, ("#",))
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False
        _write_certificates(self.base_dir)
        self._write_auth_files()
        self._write_config()

    # --- files -----------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        """Path of the CA certificate that signed the server certificate."""
        return self.base_dir / "ca.crt"

    @property
    def admin_username(self) -> str:
        """Username of the account allowed to publish and subscribe anywhere."""
        return ADMIN_USERNAME

    def add_user(
        self,
        username: str,
        password: str,
        customer_id: str | None = None,
        *,
        patterns: Iterable[str] = (),
    ) -> None:
        """Add (or replace) an account with readwrite access to its customer's topics."""
        topic_patterns = list(patterns)
        if customer_id is not None:
            topic_patterns.insert(0, f"meters/outbound/{customer_id}/#")
        self._users[username] = BrokerUser(username, password, tuple(topic_patterns))
        self._write_auth_files()
        self.reload()

    def _write_auth_files(self) -> None:
        """Write the password file and the ACL file for the current accounts."""
        self.password_path.write_text(
            "".join(
                f"{user.username}:{password_hash(user.password)}\n" for user in self._users.values()
            )
        )
        self.password_path.chmod(0o600)
        acl_lines: list[str] = []
        for user in self._users.values():
            acl_lines.append(f"user {user.username}")
            acl_lines.extend(f"topic readwrite {pattern}" for pattern in user.patterns)
            acl_lines.append("")
        self.acl_path.write_text("\n".join(acl_lines))

    def _write_config(self) -> None:
        """Write mosquitto.conf."""
        base = self.base_dir
        self.config_path.write_text(
            "\n".join(
                [
                    "user root",
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"password_file {self.password_path}",
                    f"acl_file {self.acl_path}",
                    "persistence true",
                    f"persistence_location {self.persistence_dir}/",
                    "autosave_interval 1",
                    f"max_queued_messages {self.max_queued_messages}",
                    "max_inflight_messages 100",
                    "queue_qos0_messages false",
                    f"log_dest file {self.log_path}",
                    "log_type all",
                    "log_timestamp true",
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                    "connection_messages true",
                    "",
                    f"listener {self.tls_port} 127.0.0.1",
                    f"cafile {base / 'ca.crt'}",
                    f"certfile {base / 'server.crt'}",
                    f"keyfile {base / 'server.key'}",
                    "require_certificate false",
                    "",
                    f"listener {self.plain_port} 127.0.0.1",
                    "",
                ]
            )
        )

    # --- process ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the running broker."""
        return self._process.pid if self.running and self._process else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker and wait until both listeners accept connections.

        If another process took one of the ports before the first start, new ports are picked.
        """
        if self.running:
            return
        for _ in range(4):
            try:
                self._start(timeout)
            except _PortTakenError:
                if self._started:
                    raise
                self.tls_port, self.plain_port = free_port(), free_port()
                self._write_config()
            else:
                self._started = True
                return
        msg = "mosquitto could not bind its ports"
        raise RuntimeError(msg)

    def _start(self, timeout: float) -> None:
        """Start the process once and wait for the listeners."""
        log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                [find_mosquitto(), "-c", str(self.config_path)],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
            )
        deadline = time.monotonic() + timeout
        pending = {self.tls_port, self.plain_port}
        while pending:
            if self._process.poll() is not None:
                if "Address already in use" in self.log_text()[log_size:]:
                    self._process = None
                    raise _PortTakenError
                raise RuntimeError(
                    f"mosquitto exited with {self._process.returncode}:\n"
                    f"{self.output_path.read_text(errors='replace')}\n{self.log_text()}"
                )
            for port in sorted(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        pending.discard(port)
                except OSError:
                    pass
            if pending:
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError(f"mosquitto did not listen on {sorted(pending)}")
                time.sleep(0.02)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the broker with SIGTERM and wait; persistence is written on the way out.

        The timeout only guards against a hang: a broker killed after it would lose what it had
        not saved yet, which no test expects.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the broker with SIGKILL (only what autosave already wrote survives)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._process = None

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again on the same ports with the same persistence."""
        self.stop(timeout)
        self.start(timeout)

    def reload(self) -> None:
        """Make a running broker re-read its password and ACL files (SIGHUP)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGHUP)
            time.sleep(0.2)

    def log_text(self) -> str:
        """Return the broker's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def await_log(self, text: str, count: int = 1, timeout: float = 60.0) -> str:
        """Wait, letting the event loop run, until text is in the log count times."""
        async with asyncio.timeout(timeout):
            while (log := self.log_text()).count(text) < count:  # noqa: ASYNC110 - a file
                await asyncio.sleep(0.02)
        return log

    async def await_persisted(self, payloads: Iterable[bytes], timeout: float = 60.0) -> None:
        """Wait until the saved database holds every payload (an autosave after they came)."""
        database = self.persistence_dir / "mosquitto.db"
        wanted = list(payloads)
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(FileNotFoundError):
                    saved = database.read_bytes()
                    if all(payload in saved for payload in wanted):
                        return
                await asyncio.sleep(0.05)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Wait until the log contains text (the broker logs asynchronously); return the log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log:
                return log
            if time.monotonic() > deadline:
                msg = f"{text!r} not in the mosquitto log"
                raise TimeoutError(msg)
            time.sleep(0.02)

    def __enter__(self) -> Self:
        """Start the broker."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker."""
        self.stop()

    # --- clients ---------------------------------------------------------------

    def client_tls_context(self) -> ssl.SSLContext:
        """Return a client TLS context trusting this broker's CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, *, retain: bool = False
    ) -> None:
        """Publish one message as the admin over the plain listener and wait for it to be acked."""
        self.publish_many([(topic, payload)], qos=qos, retain=retain)

    def publish_many(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        qos: int = 1,
        *,
        retain: bool = False,
        timeout: float = 30.0,
    ) -> int:
        """Publish messages in order as the admin (paho, blocking); return how many."""
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-publisher-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv311,
        )
        client.username_pw_set(ADMIN_USERNAME, self.admin_password)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", self.plain_port, keepalive=30)
        client.loop_start()
        count = 0
        try:
            infos = [
                client.publish(topic, payload, qos=qos, retain=retain)
                for topic, payload in messages
            ]
            deadline = time.monotonic() + timeout
            for info in infos:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                if not info.is_published():
                    raise TimeoutError(f"publish of message {info.mid} was not acknowledged")
                count += 1
        finally:
            client.disconnect()
            client.loop_stop()
        return count

    async def apublish(
        self, topic: str, payload: bytes | str, qos: int = 1, *, retain: bool = False
    ) -> None:
        """Publish one message as the admin over the plain listener (asyncio)."""
        await self.apublish_many([(topic, payload)], qos=qos, retain=retain)

    async def apublish_many(
        self,
        messages: Iterable[tuple[str, bytes | str]],
        qos: int = 1,
        *,
        retain: bool = False,
    ) -> int:
        """Publish messages in order as the admin (aiomqtt); return how many."""
        count = 0
        client = aiomqtt.Client(
            "127.0.0.1",
            self.plain_port,
            username=ADMIN_USERNAME,
            password=self.admin_password,
            identifier=f"test-publisher-{uuid.uuid4().hex[:12]}",
            protocol=aiomqtt.ProtocolVersion.V311,
        )
        # The integration's guard: on a busy machine aiomqtt's disconnect can otherwise register
        # the writer of a socket already closed, an EBADF in the loop that fails the test.
        _guard_socket_registration(client)
        async with client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=qos, retain=retain)
                count += 1
        return count
