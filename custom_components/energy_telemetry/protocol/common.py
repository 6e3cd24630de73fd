"""What both protocols share: parse statistics and reconnect backoff."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import random
from typing import Final

MAX_NAME_LENGTH: Final = 255
"""Longer field names, type words and identifiers from a peer are not used (as Home Assistant's
states, at most 255 characters)."""
MAX_IGNORED_NAMES: Final = 100
"""Ignored fields are counted by name up to this many names, the rest as `OTHER_IGNORED`."""
OTHER_IGNORED: Final = "<other>"
BACKOFF_INITIAL: Final = 1.0
"""Seconds before the first reconnect attempt (at most)."""
BACKOFF_MAX: Final = 60.0
"""The longest wait between reconnect attempts."""


@dataclass(slots=True)
class ParseStats:
    """What a parser accepted, and why it dropped or ignored the rest."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    """Inputs dropped whole, by reason."""
    ignored: Counter[str] = field(default_factory=Counter)
    """Fields of accepted inputs that were not usable values, by name."""

    def reject(self, reason: str) -> None:
        """Count one dropped input."""
        self.rejected[reason] += 1

    def ignore(self, name: str) -> bool:
        """Count one ignored field; return True the first time its name is counted."""
        ignored = self.ignored
        name = name[:MAX_NAME_LENGTH]
        if name in ignored:
            ignored[name] += 1
            return False
        if len(ignored) >= MAX_IGNORED_NAMES:
            ignored[OTHER_IGNORED] += 1
            return ignored[OTHER_IGNORED] == 1
        ignored[name] = 1
        return True


def backoff_delay(
    attempt: int,
    initial: float = BACKOFF_INITIAL,
    cap: float = BACKOFF_MAX,
    rng: random.Random | None = None,
) -> float:
    """Return the wait before reconnect attempt `attempt` (0: the first retry).

    Capped exponential backoff with equal jitter: between half and all of
    `min(cap, initial * 2**attempt)`, so clients that lost the same server spread out, yet
    none retries at once.
    """
    ceiling = min(cap, initial * (2 ** min(attempt, 30)))
    return (rng or random).uniform(ceiling / 2, ceiling)
