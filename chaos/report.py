"""Results of chaos scenarios: one row per scenario, saved as JSON lines and printed as a table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import os
from pathlib import Path
from typing import Any

REPORT_ENV = "CHAOS_REPORT"
"""Path of the JSON-lines file results are appended to (unset: results are not saved)."""
FULL_ENV = "CHAOS_FULL"
"""Set to 1 for the long parameters of `scripts/chaos`; otherwise the short test ones."""


@dataclass(slots=True)
class ScenarioResult:
    """What one scenario sent, what Home Assistant recorded, and whether the targets held."""

    name: str
    fault: str
    sent: int = 0
    recorded: int = 0
    lost: int = 0
    duplicates_delivered: int = 0
    duplicates_applied: int = 0
    wrong: int = 0
    backwards: int = 0
    recovery_s: float | None = None
    reconnect_s: float | None = None
    """Seconds from the fault's end to the connection being up again, when measured."""
    bound_s: float | None = None
    errors_logged: int = 0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether every target held."""
        return not self.failures

    def check(self, condition: bool, failure: str) -> None:
        """Record a failed target."""
        if not condition:
            self.failures.append(failure)

    def check_targets(self) -> None:
        """Apply the common targets: nothing lost, wrong, applied twice or moved backwards."""
        self.check(self.lost == 0, f"{self.lost} readings lost")
        self.check(self.wrong == 0, f"{self.wrong} wrong values")
        self.check(self.duplicates_applied == 0, f"{self.duplicates_applied} duplicates applied")
        self.check(self.backwards == 0, f"{self.backwards} totals moved backwards")
        self.check(self.errors_logged == 0, f"{self.errors_logged} errors logged")
        if self.bound_s is not None:
            measured, what = (
                (self.recovery_s, "recovery")
                if self.reconnect_s is None
                else (self.reconnect_s, "reconnect")
            )
            self.check(
                measured is not None and measured <= self.bound_s,
                f"{what} {measured} s over the bound {self.bound_s} s",
            )

    def to_json(self) -> str:
        """Return the row as one JSON line."""
        return json.dumps(asdict(self))


def save(result: ScenarioResult) -> None:
    """Append a result to the report file named by CHAOS_REPORT, if any."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with Path(path).open("a", encoding="utf-8") as file:
            file.write(result.to_json() + "\n")


def load(path: Path) -> list[ScenarioResult]:
    """Read the results saved in a report file."""
    results = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                data: dict[str, Any] = json.loads(line)
                results.append(ScenarioResult(**data))
    return results


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


COLUMNS = (
    "scenario",
    "sent",
    "recorded",
    "lost",
    "dup dlv/appl",
    "wrong",
    "backw",
    "errors",
    "recovery s",
    "reconn s",
    "bound s",
    "wall s",
    "result",
)


def format_table(results: list[ScenarioResult]) -> str:
    """Return the results as a fixed-width table, then each scenario's fault and notes."""
    rows = [
        (
            result.name,
            str(result.sent),
            str(result.recorded),
            str(result.lost),
            f"{result.duplicates_delivered}/{result.duplicates_applied}",
            str(result.wrong),
            str(result.backwards),
            str(result.errors_logged),
            _seconds(result.recovery_s),
            _seconds(result.reconnect_s),
            _seconds(result.bound_s),
            f"{result.duration_s:.1f}",
            "PASS" if result.passed else "FAIL",
        )
        for result in results
    ]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(COLUMNS), "-+-".join("-" * width for width in widths)]
    out.extend(line(row) for row in rows)
    out.append("")
    for result in results:
        out.append(f"{result.name}: {result.fault}")
        out.extend(f"    {note}" for note in result.notes)
        out.extend(f"    FAILED: {failure}" for failure in result.failures)
    passed = sum(result.passed for result in results)
    out.append("")
    out.append(f"{passed}/{len(results)} scenarios met every target")
    return "\n".join(out)
