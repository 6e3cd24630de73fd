"""Waiting for a condition while the event loop runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02
) -> Any:
    """Wait until predicate() is truthy, letting the event loop run.

    The timeout only guards against a hang (a busy machine is slow, not wrong): what a test
    proves is the condition, never how soon it held.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if result := predicate():
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
