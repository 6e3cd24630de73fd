"""The options of `scripts/chaos` beyond pytest's own; light, so that `--help` answers at once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import random
import sys

FUZZ_ENV = "CHAOS_FUZZ"
"""Number of inputs of the fuzz campaign (unset: the test suite's short run)."""
SEED_ENV = "CHAOS_SEED"
"""Seed of the fuzz campaign (unset: the test suite's fixed seed)."""
FUZZ_TEST = "tests/tools/test_chaos_fuzz.py"

USAGE = """usage: scripts/chaos [--fuzz N [--seed S]] [pytest arguments]

Without --fuzz: every chaos scenario (faults of both services against real peers on loopback)
with its long parameters, then the table of results.

  --fuzz N   only the fuzz campaign: N generated and mutated inputs (Novacore on the documented
             and the legacy wire over SSE, Ainsite over MQTT) through running entries, every
             entity checked against an independent oracle after each batch (e.g. --fuzz 100000)
  --seed S   the campaign's seed (default: a random one; the report prints it)
  -h, --help this text

Other arguments go to pytest (e.g. scripts/chaos -k mqtt).
"""


def arguments(argv: list[str]) -> list[str]:
    """Return the arguments for pytest; `--fuzz N` selects the campaign (set in the environment)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--fuzz", type=int)
    parser.add_argument("--seed", type=int)
    known, rest = parser.parse_known_args(argv)
    if known.help:
        sys.stdout.write(USAGE)
        raise SystemExit(0)
    if known.fuzz is None:
        if known.seed is not None:
            parser.error("--seed needs --fuzz")
        return rest
    if known.fuzz < 1:
        parser.error("--fuzz needs a positive number of inputs")
    seed = known.seed if known.seed is not None else random.randrange(1, 2**31)
    os.environ[FUZZ_ENV] = str(known.fuzz)
    os.environ[SEED_ENV] = str(seed)
    root = Path(__file__).resolve().parent.parent
    # About 500 inputs a second; the test's own timeout must not cut a long campaign short.
    timeout = max(900, known.fuzz // 100)
    return [str(root / FUZZ_TEST), "-k", "test_fuzz_campaign", "-o", f"timeout={timeout}", *rest]
