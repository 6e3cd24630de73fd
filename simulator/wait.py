"""Waiting for a condition of a running system: poll until it holds, or fail saying what is missing.

The rule: a wait never returns quietly. When the timeout passes, it raises WaitTimeoutError with the
caller's description of what was still missing (text, or a function that reads it at that
moment). Timeouts only guard against a hang: a busy machine is slow, not wrong, so callers
give generous ones and prove the condition, never how soon it held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import time

type Missing = str | Callable[[], object]
"""What was still missing: text, or a function returning it (called only on timeout)."""


class WaitTimeoutError(TimeoutError):
    """A condition did not hold in time; the message says what was missing."""


def _timed_out(what: Missing, timeout: float) -> WaitTimeoutError:
    text = what() if callable(what) else what
    return WaitTimeoutError(f"still missing after {timeout:g} s: {text}")


async def wait_for[T](
    predicate: Callable[[], T], *, timeout: float, what: Missing, interval: float = 0.02
) -> T:
    """Poll predicate() until it returns something truthy, letting the event loop run; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := predicate()):
        if loop.time() > deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)
    return result


async def poll[T](
    ask: Callable[[], Awaitable[T | None]], *, timeout: float, what: Missing, interval: float = 1.0
) -> T:
    """As wait_for, with a question that must be awaited (an API call): ask until truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await ask()
        if result:
            return result
        if loop.time() > deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)


def wait_until[T](
    predicate: Callable[[], T], *, timeout: float, what: Missing, interval: float = 0.02
) -> T:
    """As wait_for, blocking: for code outside an event loop (starting a broker, a thread)."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        time.sleep(interval)
    return result
