"""The `strava-pipeline` command.

Each subcommand lives with the layer it drives; this module only wires argparse to them so that
`strava-pipeline --help` is the one place a user discovers everything the product can do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; subcommand modules are imported lazily to keep `--help` fast."""
    parser = argparse.ArgumentParser(
        prog="strava-pipeline",
        description="Mirror a Strava athlete's training history into Parquet and PostgreSQL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    from strava_pipeline.simulator import cli as simulator_cli

    simulate = sub.add_parser(
        "simulate", help="Run the Strava-compatible simulator (no Strava account needed)."
    )
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=simulator_cli.run)

    from strava_pipeline import commands

    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
