"""A real mosquitto for the tests, the demo, the chaos scenarios and the benchmark.

It has what Ainsite's broker has: passwords, per-account topic ACLs, a persistent session store
(what a client's session holds survives a restart), and a TLS listener with a certificate of its
own test CA, next to a plain 127.0.0.1 listener for the upstream publisher and the tools. The
rule: the process is the tools' child (see simulator/processes.py) and every wait on it fails
loudly, saying what it waited for.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
import contextlib
from dataclasses import dataclass
import datetime as dt
import hashlib
import ipaddress
import logging
import os
from pathlib import Path
import re
import secrets
import shutil
import signal
import ssl
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ainsite_publisher import Message, MqttPublisher
from .processes import Child, free_port, listening
from .wait import wait_for, wait_until

ADMIN_USERNAME = "admin"
PBKDF2_ITERATIONS = 101
"""What mosquitto_passwd 2.0 writes for "$7$" (PBKDF2-SHA512) hashes."""
RELOADED = "Reloading config."
"""What mosquitto logs when a SIGHUP makes it read its password and ACL files again."""


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Return a mosquitto 2.0 password-file hash ("$7$", PBKDF2-SHA512) for a password."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"$7${PBKDF2_ITERATIONS}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def find_mosquitto() -> str:
    """Return the path of the mosquitto binary (FileNotFoundError when it is not installed)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")


# --- certificates ---------------------------------------------------------------------------


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """A CA's key usage (signs certificates) or a TLS server's (signs and agrees keys)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def write_certificates(directory: Path) -> None:
    """Write ca.crt, server.crt and server.key (localhost, 127.0.0.1) into directory."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Energy Telemetry Test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    server_key = ec.generate_private_key(ec.SECP256R1())

    def builder(subject: x509.Name, key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
        )

    ca_cert = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            server_key.public_key(),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(_key_usage(cert_sign=False), critical=True)
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


# --- the broker -----------------------------------------------------------------------------


class _PortTakenError(Exception):
    """A listener port was taken by another process."""


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """A broker account and the topic patterns it may read and write."""

    username: str
    password: str
    patterns: tuple[str, ...]


class Mosquitto:
    """A mosquitto process: a plain 127.0.0.1 listener, a TLS one (unless tls=False), persistence.

    Ports are picked free unless given; an `admin` account may read and write every topic.
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        admin_password: str | None = None,
        max_queued_messages: int = 100000,
        tls: bool = True,
        plain_port: int = 0,
    ) -> None:
        """Prepare the broker's files in base_dir; call start() to run it."""
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self._fixed_port = plain_port != 0
        self.plain_port = plain_port or free_port()
        self.tls_port = 0
        if tls:
            while self.tls_port in (0, self.plain_port):
                self.tls_port = free_port()
        self.admin_password = admin_password or secrets.token_urlsafe(16)
        self.max_queued_messages = max_queued_messages
        self.persistence_dir = self.base_dir / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self.config_path = self.base_dir / "mosquitto.conf"
        self.password_path = self.base_dir / "passwd"
        self.acl_path = self.base_dir / "acl"
        self.log_path = self.base_dir / "mosquitto.log"
        self._users: dict[str, BrokerUser] = {
            ADMIN_USERNAME: BrokerUser(ADMIN_USERNAME, self.admin_password, ("#",))
        }
        self._child: Child | None = None
        self._started = False
        if tls:
            write_certificates(self.base_dir)
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
        lines = [
            # A root broker would drop to the mosquitto user, which cannot read a private
            # temporary directory; any other user ignores this line.
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
            f"listener {self.plain_port} 127.0.0.1",
            "",
        ]
        if self.tls:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {base / 'ca.crt'}",
                f"certfile {base / 'server.crt'}",
                f"keyfile {base / 'server.key'}",
                "require_certificate false",
                "",
            ]
        self.config_path.write_text("\n".join(lines))

    @property
    def ports(self) -> list[int]:
        """Return the listener ports."""
        return [self.plain_port, self.tls_port] if self.tls else [self.plain_port]

    # --- process ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._child is not None and self._child.running

    @property
    def pid(self) -> int | None:
        """Process id of the running broker."""
        return self._child.pid if self._child is not None and self.running else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker and wait until every listener accepts connections.

        If another process took a picked port before the first start, new ports are picked.
        """
        if self.running:
            return
        for _ in range(4):
            try:
                self._start(timeout)
            except _PortTakenError:
                if self._started or self._fixed_port:
                    raise RuntimeError(f"mosquitto: a port of {self.ports} is taken") from None
                self.plain_port = free_port()
                if self.tls:
                    self.tls_port = free_port()
                self._write_config()
            else:
                self._started = True
                return
        raise RuntimeError("mosquitto could not bind its ports")

    def _start(self, timeout: float) -> None:
        """Start the process once and wait for the listeners."""
        log_size = self.log_size()
        child = Child(
            "mosquitto",
            [find_mosquitto(), "-c", str(self.config_path)],
            self.base_dir / "mosquitto.out",
        )
        child.start()
        self._child = child

        def up() -> bool:
            if not child.running:
                if "Address already in use" in self.log_text(log_size):
                    self._child = None
                    raise _PortTakenError
                raise RuntimeError(
                    f"mosquitto exited with {child.returncode}:\n{child.log_tail()}\n"
                    f"{self.log_text(log_size)}"
                )
            return all(listening(port) for port in self.ports)

        try:
            wait_until(up, timeout=timeout, what=f"mosquitto listening on {self.ports}")
        except TimeoutError:
            self.kill()
            raise

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the broker with SIGTERM and wait; persistence is written on the way out.

        The timeout only guards against a hang: a broker killed after it would lose what it had
        not saved yet, which no test expects.
        """
        if self._child is not None:
            self._child.terminate(timeout)
        self._child = None

    def kill(self) -> None:
        """Kill the broker with SIGKILL (only what autosave already wrote survives)."""
        if self._child is not None:
            self._child.kill()
        self._child = None

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again on the same ports with the same persistence."""
        self.stop(timeout)
        self.start(timeout)

    def reload(self, timeout: float = 30.0) -> None:
        """Make a running broker re-read its password and ACL files (SIGHUP), and wait for it.

        mosquitto reads them in its main loop right after logging that it does: a connection
        made once the line is in the log meets the new accounts.
        """
        if self._child is None or not self._child.running:
            return
        since = self.log_size()
        self._child.send_signal(signal.SIGHUP)
        self.wait_for_log(RELOADED, timeout, since=since)

    def log_size(self) -> int:
        """Return the size of the log so far, in bytes (an offset for `since`)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        """Return the broker's log so far, from byte offset `since` on."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(since)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_with(self, text: str, count: int = 1, since: int = 0) -> str:
        """Return the log (from `since`) if it holds text count times, else an empty string."""
        log = self.log_text(since)
        return log if log.count(text) >= count else ""

    async def await_log(
        self, text: str, count: int = 1, timeout: float = 60.0, *, since: int = 0
    ) -> str:
        """Wait, letting the event loop run, until text is in the log (from `since`) count times."""
        return await wait_for(
            lambda: self._log_with(text, count, since),
            timeout=timeout,
            what=lambda: (
                f"{text!r} {count} times in the mosquitto log (found "
                f"{self.log_text(since).count(text)})"
            ),
        )

    def subscribers(
        self, topic_filter: str, *, persistent: bool = False, since: int = 0
    ) -> set[str]:
        """Return the client ids that subscribed to topic_filter (in the log from `since`).

        `persistent`: only clients with a persistent session (connected with clean session
        off), whose subscription the broker keeps, and queues for, across reconnects.
        """
        log = self.log_text(since)
        subscribed = set(
            re.findall(rf"^\S+: (\S+) \d {re.escape(topic_filter)}$", log, re.MULTILINE)
        )
        if not persistent:
            return subscribed
        kept = set(re.findall(r"New client connected from \S+ as (\S+) \(p\d, c0,", log))
        return subscribed & kept

    async def await_subscribed(
        self, topic_filter: str, *, persistent: bool = False, since: int = 0, timeout: float = 60.0
    ) -> set[str]:
        """Wait until a client subscribed to topic_filter (see subscribers); return the ids."""
        kind = "a persistent session" if persistent else "a client"
        return await wait_for(
            lambda: self.subscribers(topic_filter, persistent=persistent, since=since),
            timeout=timeout,
            what=f"{kind} subscribed to {topic_filter}",
            interval=0.05,
        )

    async def await_persisted(self, payloads: Iterable[bytes], timeout: float = 60.0) -> None:
        """Wait until the saved database holds every payload (an autosave after they came)."""
        database = self.persistence_dir / "mosquitto.db"
        wanted = list(payloads)

        def unsaved() -> list[bytes]:
            saved = b""
            with contextlib.suppress(FileNotFoundError):
                saved = database.read_bytes()
            return [payload for payload in wanted if payload not in saved]

        await wait_for(
            lambda: not unsaved(),
            timeout=timeout,
            what=lambda: f"{len(unsaved())} of {len(wanted)} payloads in {database}",
            interval=0.05,
        )

    def wait_for_log(self, text: str, timeout: float = 30.0, *, since: int = 0) -> str:
        """Wait until the log (from `since`) contains text; return the log. Blocking."""
        return wait_until(
            lambda: self._log_with(text, since=since),
            timeout=timeout,
            what=f"{text!r} in the mosquitto log",
        )

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

    def publisher(
        self, *, window: int = 20, timeout: float = 10.0, logger: logging.Logger | None = None
    ) -> MqttPublisher:
        """Return a publisher as the admin over the plain listener (see MqttPublisher)."""
        return MqttPublisher(
            self.plain_port,
            ADMIN_USERNAME,
            self.admin_password,
            window=window,
            timeout=timeout,
            logger=logger,
        )

    async def apublish(self, topic: str, payload: bytes | str) -> None:
        """Publish one message at QoS 1 as the admin; return once the broker acknowledged it."""
        await self.apublish_many([(topic, payload)])

    async def apublish_many(
        self, messages: Iterable[tuple[str, bytes | str]], timeout: float = 60.0
    ) -> int:
        """Publish messages in order at QoS 1 as the admin, each acknowledged; return how many."""
        batch = [Message(topic, payload) for topic, payload in messages]
        async with self.publisher(window=100) as publisher:
            publisher.put(batch)
            await publisher.drain(timeout)
        return len(batch)
