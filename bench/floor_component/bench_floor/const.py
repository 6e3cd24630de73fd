"""Shared state of the floor integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sensor import FloorSensor

DOMAIN = "bench_floor"


@dataclass
class FloorData:
    """The sensors made so far and the callback that makes more."""

    entities: list[FloorSensor] = field(default_factory=list)
    add: Callable[[int], None] | None = None
