"""Lines a test module adds to pytest's terminal report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest


def write_lines(config: pytest.Config, *lines: str) -> None:
    """Write lines to the terminal report, after an empty one (nothing when it is not shown)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    reporter.write_line("")
    for line in lines:
        reporter.write_line(line)


def tried_report(tried: Counter[str]) -> Any:
    """Return a module fixture that prints how many inputs each test tried, once they all ran.

    A module assigns it to a name: `report_tried = tried_report(TRIED)`.
    """

    @pytest.fixture(scope="module", autouse=True)
    def report_tried(request: pytest.FixtureRequest) -> Iterator[None]:
        yield
        if tried:
            counts = ", ".join(f"{name}={count}" for name, count in sorted(tried.items()))
            write_lines(request.config, f"fuzz inputs tried: {sum(tried.values())} {counts}")

    return report_tried
