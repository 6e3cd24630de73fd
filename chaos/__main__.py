"""Run every chaos scenario with the long parameters and print the table of results.

Usage: scripts/chaos [--fuzz N [--seed S]] [pytest arguments, e.g. -k mqtt]
"""

from __future__ import annotations

import os
from pathlib import Path
import sys
import tempfile

import pytest

from .options import arguments
from .report import FULL_ENV, REPORT_ENV, format_table, load


def main() -> int:
    """Run the chaos tests with CHAOS_FULL=1 and print what each scenario measured."""
    root = Path(__file__).resolve().parent.parent
    args = arguments(sys.argv[1:])  # --fuzz N: the fuzz campaign only
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "chaos.jsonl"
        os.environ[FULL_ENV] = "1"
        os.environ[REPORT_ENV] = str(report)
        code = pytest.main(
            [
                str(root / "tests" / "tools" / "test_chaos.py"),
                str(root / "tests" / "tools" / "test_chaos_statistics.py"),
                "-q",
                "-p",
                "no:randomly",
                "-o",
                "timeout=900",
                "--no-header",
                "--tb=line",
                "--show-capture=no",
                *args,
            ]
        )
        results = load(report)
    sys.stdout.write("\n" + format_table(results) + "\n")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
