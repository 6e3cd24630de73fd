"""Guard for ever-increasing totals: no glitch, stale or replayed reading moves one backwards.

This module does not depend on Home Assistant.
"""

from __future__ import annotations

RESET_FRACTION = 0.5
"""A drop to below this fraction of the last value may be a meter reset; smaller drops are glitches."""
MAX_PENDING = 100


class TotalGuard:
    """Decides which readings of a total may be applied.

    - A reading older than (or as old as) the last applied one is stale or a duplicate: dropped.
    - A higher or equal value is applied.
    - A small drop is a glitch: dropped.
    - A large drop is a meter reset only when the next newer reading confirms it (it is also
      below the old value and not below the first one); a lone low reading is a glitch.

    Until `seed` is called with the value restored from the last run, readings are held back, so
    readings replayed after a restart are judged against what was already shown.
    """

    __slots__ = ("_candidate", "_pending", "rejected", "resets", "start", "timestamp", "value")

    def __init__(self) -> None:
        """Start unseeded."""
        self.value: float | None = None
        self.start: float | None = None
        """Where this run started: the value restored from the last run, else the first applied."""
        self.timestamp: float | None = None
        self.resets = 0
        self.rejected = 0
        self._candidate: tuple[float, float | None] | None = None
        self._pending: list[tuple[float, float | None]] | None = []

    @property
    def seeded(self) -> bool:
        """Return True once the restored value is known."""
        return self._pending is None

    @property
    def candidate(self) -> tuple[float, float | None] | None:
        """Return the low reading (value, timestamp) held as a possible meter reset, if any."""
        return self._candidate

    def seed(self, value: float | None, timestamp: float | None) -> bool:
        """Set the restored value and apply the readings held back; return True if value changed."""
        pending = self._pending or []
        self._pending = None
        if value is not None:
            self.value = self.start = value
            self.timestamp = timestamp
        changed = False
        for item in pending:
            changed = self.accept(*item) or changed
        return changed or value is not None

    def accept(self, value: float, timestamp: float | None) -> bool:
        """Return True when the reading was applied (the value may be unchanged)."""
        if self._pending is not None:
            if len(self._pending) >= MAX_PENDING:
                del self._pending[0]
            self._pending.append((value, timestamp))
            return False
        last = self.value
        if last is None:
            self.value = self.start = value
            self.timestamp = timestamp
            return True
        last_ts = self.timestamp
        if timestamp is not None and last_ts is not None and timestamp <= last_ts:
            self.rejected += 1
            return False
        if value >= last:
            self.value = value
            self.timestamp = timestamp
            self._candidate = None
            return True
        if value >= last * RESET_FRACTION:
            self.rejected += 1
            return False
        candidate = self._candidate
        if (
            candidate is not None
            and value >= candidate[0]
            and (timestamp is None or candidate[1] is None or timestamp > candidate[1])
        ):
            self.value = value
            self.timestamp = timestamp
            self._candidate = None
            self.resets += 1
            return True
        self._candidate = (value, timestamp)
        self.rejected += 1
        return False


class NetGrowth:
    """The net growth of energy counters that count with a sign, handed out only when positive.

    Each counter adds its growth times its sign (+1: energy into what is measured, -1: out of
    it); a confirmed reset (the counter starting again from zero) adds its new value. A negative
    balance (counters that report at different moments) is kept and paid back by later growth,
    so a total built from `take` never goes down and, over time, loses nothing.
    """

    __slots__ = ("_last", "balance")

    def __init__(self) -> None:
        """Start with no counter known."""
        self._last: dict[str, float] = {}
        self.balance = 0.0
        """Growth not handed out yet; negative while some counters have not caught up."""

    def known(self, key: str) -> bool:
        """Return True once a counter has a starting value."""
        return key in self._last

    def add(self, key: str, sign: float, value: float) -> None:
        """Take a counter's value; the first value of a counter is its starting point."""
        last = self._last.get(key)
        self._last[key] = value
        if last is not None and value != last:
            self.balance += sign * (value - last if value > last else value)

    def forget(self, key: str) -> None:
        """Forget a counter (its DER left)."""
        self._last.pop(key, None)

    def take(self) -> float:
        """Return the growth to add to the total now (0.0 while the balance is not positive)."""
        if self.balance <= 0.0:
            return 0.0
        growth, self.balance = self.balance, 0.0
        return growth
