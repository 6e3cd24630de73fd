"""The scale scenario's tools: its publisher process, the probe's answers, and py-spy.

- PublisherProcess: bench/scale_publisher.py in a child process, a round per command.
- ProbeEvents: the events of the bench_probe component's watches, waited for by name.
- PySpy: samples a Home Assistant process during one phase, the thread holding the GIL each time;
  writes collapsed stacks (speedscope and flamegraph.pl read them) and a text top-N of functions
  by cumulative and by own samples.

The rule, as everywhere in the tools: every wait polls for what it needs and fails saying what
was still missing; a child process goes with its parent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
import contextlib
import json
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
from typing import Any

from simulator.processes import die_with_parent
from simulator.wait import WaitTimeoutError, wait_for

ROOT = Path(__file__).resolve().parent.parent
PASSWORD_VARIABLE = "BENCH_PUBLISHER_PASSWORD"  # noqa: S105 - a variable's name
"""The publisher's broker password comes in this environment variable, not on its command line."""
PY_SPY_RATE = 250
"""Samples a second."""


class PublisherProcess:
    """bench/scale_publisher.py in a child process: `ready`, then one answer per round."""

    def __init__(
        self,
        *,
        port: int,
        username: str,
        password: str,
        customer: str,
        subscription: str,
        meters: int,
        registers: Sequence[str],
        log_path: Path,
    ) -> None:
        """Prepare; start() runs it."""
        self.args = [
            sys.executable, "-m", "bench.scale_publisher", "--port", str(port),
            "--username", username, "--customer", customer, "--subscription", subscription,
            "--meters", str(meters), "--registers", ",".join(registers),
        ]  # fmt: skip
        self.password = password
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 120.0) -> None:
        """Start the process and wait until it is connected to the broker."""
        env = {**os.environ, PASSWORD_VARIABLE: self.password}
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        line = await self._line(timeout, "the scale publisher connected (its `ready`)")
        if line != "ready":
            raise RuntimeError(f"scale publisher: unexpected first line {line!r}")

    async def publish_round(self, number: int, timeout: float) -> dict[str, Any]:
        """Publish round `number`; return its answer once the broker acknowledged all of it."""
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(f"round {number}\n".encode())
        await self.process.stdin.drain()
        answer: dict[str, Any] = json.loads(
            await self._line(timeout, f"round {number} acknowledged by the broker")
        )
        return answer

    async def _line(self, timeout: float, what: str) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                raw = await self.process.stdout.readline()
        except TimeoutError:
            raise WaitTimeoutError(
                f"still missing after {timeout:g} s: {what}; its log ends:\n{self.log_tail()}"
            ) from None
        if not raw:
            raise RuntimeError(f"the scale publisher exited before {what}:\n{self.log_tail()}")
        return raw.decode().strip()

    def log_tail(self, lines: int = 20) -> str:
        """Return the end of the publisher's error output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, timeout: float = 30.0) -> None:
        """Ask it to quit; kill it if it does not within timeout."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            assert process.stdin is not None
            process.stdin.write(b"quit\n")
            await process.stdin.drain()
            process.stdin.close()
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


class ProbeEvents:
    """The events of bench_probe's watches (see bench/floor_component/bench_probe), by name."""

    def __init__(self) -> None:
        """Hold no events yet."""
        self.events: dict[str, list[dict[str, Any]]] = {}

    def on_event(self, event: dict[str, Any], now: float) -> None:
        """The websocket's event callback: keep the probe's events."""
        name = event.get("watch")
        if isinstance(name, str):
            self.events.setdefault(name, []).append(event)

    def done(self, name: str) -> dict[str, Any] | None:
        """Return the watch's `done` event, if it came."""
        return next((e for e in self.events.get(name, ()) if e.get("kind") == "done"), None)

    async def wait_done(self, name: str, target: int, timeout: float, what: str) -> dict[str, Any]:
        """Wait for the watch's `done` event; on timeout say how far it got."""

        def missing() -> str:
            seen = self.events.get(name) or [{}]
            return f"{what}: {seen[-1].get('count', 0)} of {target} entities"

        event = await wait_for(
            lambda: self.done(name), timeout=timeout, what=missing, interval=0.05
        )
        assert event is not None
        return event


# --- py-spy ------------------------------------------------------------------------------------


def find_py_spy() -> str | None:
    """Return py-spy from PATH or .venv-tools (scripts/bench --profile installs it there)."""
    found = shutil.which("py-spy")
    if found:
        return found
    tools = ROOT / ".venv-tools" / "bin" / "py-spy"
    return str(tools) if os.access(tools, os.X_OK) else None


def py_spy_command(
    pid: int, output: Path, *, duration: float | None = None, gil: bool = False
) -> list[str]:
    """Return the py-spy command sampling pid into output (until SIGINT without a duration).

    The output is collapsed stacks, each starting with its thread; `gil`: only the samples of the
    thread holding the GIL (Python's CPU work, without the threads that only wait).
    """
    py_spy = find_py_spy()
    if py_spy is None:
        raise FileNotFoundError(
            "py-spy is not installed: scripts/bench --profile installs it into .venv-tools"
            " (python3 -m venv .venv-tools && .venv-tools/bin/pip install py-spy)"
        )
    args = [
        py_spy, "record", "--pid", str(pid), "--rate", str(PY_SPY_RATE), "--format", "raw",
        "--threads", "--output", str(output),
    ]  # fmt: skip
    if gil:
        args.append("--gil")
    # More of py-spy's options, e.g. BENCH_PYSPY_ARGS=--native (C frames: the garbage collector).
    args += os.environ.get("BENCH_PYSPY_ARGS", "").split()
    if duration is not None:
        args += ["--duration", str(max(1, round(duration + 0.5)))]
    return args


class PySpy:
    """py-spy sampling one process from start() until stop(): a phase, however long it takes."""

    def __init__(self, pid: int, output: Path) -> None:
        """Prepare; the profile goes to output (collapsed stacks), its summary beside it."""
        self.pid = pid
        self.output = output
        self.log_path = output.with_suffix(".log")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Start sampling; return once py-spy says it samples (so the phase is all in it)."""
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *py_spy_command(self.pid, self.output, gil=True),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )

        def sampling() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"py-spy exited: {self.log_path.read_text(errors='replace')}")
            return "Sampling process" in self.log_path.read_text(errors="replace")

        await wait_for(
            sampling, timeout=timeout, what=f"py-spy sampling pid {self.pid}", interval=0.05
        )

    async def stop(self, timeout: float = 120.0) -> Path:
        """Stop sampling (SIGINT: py-spy writes what it has); write the summary; return its path."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {self.log_path.read_text()}")
        summary = self.output.with_suffix(".top.txt")
        summary.write_text(summarize_collapsed(self.output.read_text(errors="replace")))
        return summary


_LINE_NUMBER = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """`name (path/file.py:12)` -> `name (path/file.py)`: a function, whatever its line."""
    return _LINE_NUMBER.sub(")", frame.strip())


def summarize_collapsed(text: str, top: int = 40) -> str:
    """Return the functions with the most samples, inclusive (cumulative) and exclusive (self).

    `text` is py-spy's raw output: a stack per line, frames from the outermost joined by `;`,
    then the number of samples.
    """
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        if frames[0].startswith(("thread", "process")):
            threads[frames[0]] += count
        for function in set(frames):
            inclusive[function] += count
        exclusive[frames[-1]] += count
    seconds = total / PY_SPY_RATE
    lines = [f"{total} samples at {PY_SPY_RATE}/s holding the GIL: about {seconds:.1f} s of CPU"]

    def table(title: str, counts: Mapping[str, int]) -> None:
        lines.extend(["", title])
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        lines.extend(
            f"{count:>8} {count / total if total else 0:>6.1%}  {function}"
            for function, count in ranked
        )

    if threads:
        table("by thread:", threads)
    table(f"top {top} by cumulative samples (the function or what it called):", inclusive)
    table(f"top {top} by own samples:", exclusive)
    return "\n".join(lines) + "\n"
