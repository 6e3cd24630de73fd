"""The benchmark's command line, with the standard library only.

scripts/bench answers --help from here with any python3, before it prepares a virtual
environment; bench/run.py parses its arguments with the same parser.
"""

from __future__ import annotations

import argparse
import sys

SCENARIOS = (
    "ainsite",
    "baseline",
    "novacore",
    "floor",
    "stats_on",
    "stats_off",
    "scale",
    "scale_floor",
)
DESCRIPTION = (
    "What a reading costs: the integration against Home Assistant's own MQTT sensors and a "
    "floor, each scenario in its own real Home Assistant process, printed as one table."
)
EPILOG = (
    "scripts/bench prepares .venv the way scripts/test does (plus Home Assistant's frontend) "
    "and mosquitto, and with --profile, py-spy into .venv-tools. "
    "BENCH_HA_PYTHON=/path/to/python runs Home Assistant with that interpreter."
)


def build_parser(prog: str = "scripts/bench") -> argparse.ArgumentParser:
    """Return the parser of scripts/bench (bench/run.py)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    parser.add_argument("--repeat", type=int, help="Home Assistant processes per scenario")
    parser.add_argument("--n", type=int, help="readings in the CPU/latency phase")
    parser.add_argument(
        "--meters", type=int, help="meters of the statistics scenarios (default 1000)"
    )
    parser.add_argument(
        "--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)} (default all)"
    )
    parser.add_argument(
        "--scale-meters",
        type=int,
        help="meters (10 registers each) of the scale scenarios (default 1000; --quick 20)",
    )
    parser.add_argument(
        "--scale-recorder",
        action="store_true",
        help="run the scale scenarios with the recorder (default: without, as the others)",
    )
    parser.add_argument(
        "--profile",
        metavar="SCENARIOS",
        help="sample Home Assistant with py-spy during these scale scenarios (scale,scale_floor)"
        " and print where the profiles are; figures of a profiled run are marked as such",
    )
    parser.add_argument(
        "--profile-dir", help="where --profile writes (default: a new directory under /tmp)"
    )
    return parser


if __name__ == "__main__":  # python3 -m bench.cli --help
    build_parser().parse_args(sys.argv[1:])
