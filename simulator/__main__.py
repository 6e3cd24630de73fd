"""Run only the simulators, for your own Home Assistant: `python -m simulator --help`."""

from __future__ import annotations

import sys

from .demo import main

if __name__ == "__main__":
    sys.exit(main(["--simulators-only", *sys.argv[1:]], prog="python -m simulator"))
