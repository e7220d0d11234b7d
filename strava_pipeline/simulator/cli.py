"""`strava-pipeline simulate`: run the simulator in the foreground until Ctrl-C.

The banner prints the only secrets the simulator ever shows (client secret and a refresh token),
so a user can point the pipeline at it without any Strava account.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date

from strava_pipeline.simulator.config import SimulatorConfig
from strava_pipeline.simulator.faults import FaultSpecError, parse
from strava_pipeline.simulator.sim import StravaSimulator


def _pair(text: str) -> tuple[int, int]:
    try:
        short, daily = (int(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected 15MIN,DAILY (two integers), got {text!r}") from err
    return short, daily


def _faults(text: str) -> str:
    try:
        parse(text)
    except FaultSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default 8765)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic athlete (default 1)")
    parser.add_argument("--start-date", type=date.fromisoformat, default=date(2024, 1, 1),
                        help="first day of generated activities, YYYY-MM-DD (default 2024-01-01)")
    parser.add_argument("--activities", type=int, default=200, help="number of activities (default 200)")
    parser.add_argument("--latency-ms", type=float, default=0, help="added latency per request")
    parser.add_argument("--read-limit", type=_pair, default=(100, 1000), metavar="15MIN,DAILY",
                        help="read rate limit (default 100,1000)")
    parser.add_argument("--overall-limit", type=_pair, default=(200, 2000), metavar="15MIN,DAILY",
                        help="overall rate limit (default 200,2000)")
    parser.add_argument("--window-seconds", type=int, default=900,
                        help="length of the short rate-limit window; the daily one is 96 times it")
    parser.add_argument("--faults", type=_faults, default="", metavar="SPEC",
                        help="fault injection, e.g. 'streams:500=0.3,athlete/activities:reset=0.1' "
                             "(grammar: strava_pipeline/simulator/faults.py)")


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        seed=args.seed, start_date=args.start_date, activities=args.activities, latency_ms=args.latency_ms,
        read_limit=args.read_limit, overall_limit=args.overall_limit, window_seconds=args.window_seconds,
        faults=args.faults, host=args.host, port=args.port,
    )


def run(args: argparse.Namespace) -> int:
    sim = StravaSimulator(config_from(args))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sim:
        tokens = sim.authorize()
        print(f"Strava simulator listening on {sim.base_url}", flush=False)
        print(f"  api base url:   {sim.base_url}/api/v3")
        print(f"  oauth:          {sim.base_url}/oauth/authorize, {sim.base_url}/oauth/token")
        print(f"  athlete id:     {sim.athlete_id} ({len(sim.activity_ids())} activities)")
        print(f"  client id:      {sim.client_id}")
        print(f"  client secret:  {sim.client_secret}")
        print(f"  refresh token:  {tokens['refresh_token']}  (scope read,activity:read_all,profile:read_all)")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("simulator stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strava-simulator", description="Run the Strava simulator.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
