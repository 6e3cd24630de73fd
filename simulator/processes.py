"""Child processes and loopback ports for the peers and Home Assistant processes the tools start.

The rule: a child never outlives what started it. It runs in its own process group, stopped as a
whole (SIGTERM, then SIGKILL), and the kernel sends it SIGTERM if its parent dies first (Linux).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import contextlib
import ctypes
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Return whether 127.0.0.1:port can be listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listening(port: int) -> bool:
    """Return whether something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    """In a child, between fork and exec: get SIGTERM when the parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A child process in its own process group, its output appended to a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Prepare the command; start() runs it."""
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = None if env is None else dict(env)
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Return the process id (None before the start)."""
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        """Return whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Return the exit status once the process has exited."""
        return None if self.process is None else self.process.poll()

    def start(self) -> None:
        """Start the process in a new session, its output appended to the log file."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the tools' own fixed commands
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - only prctl, no locks
                env=self.env,
                cwd=self.cwd,
            )

    def send_signal(self, sig: signal.Signals) -> None:
        """Send a signal to the process (not its group), if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the process's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self, timeout: float) -> None:
        """SIGTERM the process group, wait up to timeout, then SIGKILL what is left (blocking).

        The timeout only guards against a hang: a process killed after it would lose what it had
        not saved yet.
        """
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group and collect the process (blocking)."""
        process = self.process
        if process is None:
            return
        # The group may hold helpers of the main process: they go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    async def stop(self, timeout: float) -> None:
        """As terminate(), without blocking the event loop."""
        await asyncio.to_thread(self.terminate, timeout)
