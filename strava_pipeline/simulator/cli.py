"""`strava-pipeline simulate`: run the simulator in the foreground until Ctrl-C.

The banner prints the only secrets the simulator ever shows (client secret and a refresh token),
so a user can point the pipeline at it without any Strava account. With `--export PATH` it instead
writes the athlete's bulk-export archive (the same athlete the server would serve) and exits, so the
archive import can be tried without an account too.
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


def _formats(text: str) -> str | dict[str, float]:
    from strava_pipeline.simulator.export import FORMATS

    try:
        mix = {k.strip(): float(v) for k, v in (p.split("=") for p in text.split(","))} if "=" in text else None
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected FORMAT or FORMAT=WEIGHT,..., got {text!r}") from err
    unknown = set(mix or {text}) - set(FORMATS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    return mix if mix is not None else text


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
    export = parser.add_argument_group("bulk export (write the athlete's export_<id>.zip and exit)")
    export.add_argument("--export", metavar="PATH", default=None,
                        help="folder to write export_<athlete id>.zip into (or a path ending in .zip)")
    export.add_argument("--export-language", choices=("en", "de"), default="en",
                        help="account language of activities.csv (default en)")
    export.add_argument("--export-layout", choices=("2025", "2026", "2018"), default="2025",
                        help="activities.csv header: 2025 (default), 2026 (wider) or 2018 (pre-2019, English)")
    export.add_argument("--export-formats", type=_formats, default=None, metavar="MIX",
                        help="file formats, e.g. 'fit.gz' or 'fit.gz=0.8,gpx=0.1,tcx.gz=0.1' (default: like a real "
                             "archive, mostly .fit.gz)")
    export.add_argument("--export-missing-file", action="store_true",
                        help="leave one listed activity file out of the archive")
    export.add_argument("--export-unpacked", action="store_true",
                        help="write the unpacked folder export_<athlete id>/ instead of the zip")


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        seed=args.seed, start_date=args.start_date, activities=args.activities, latency_ms=args.latency_ms,
        read_limit=args.read_limit, overall_limit=args.overall_limit, window_seconds=args.window_seconds,
        faults=args.faults, host=args.host, port=args.port,
    )


def export(args: argparse.Namespace) -> int:
    """Write the archive of the athlete the server would serve with the same options, then exit."""
    sim = StravaSimulator(config_from(args))
    manifest = sim.write_export(
        args.export, language=args.export_language, layout=args.export_layout, formats=args.export_formats,
        missing_files=1 if args.export_missing_file else 0, unpacked=args.export_unpacked,
    )
    info = manifest.summary()
    formats = ", ".join(f"{n} .{k}" for k, n in info["formats"].items())
    print(f"Wrote {manifest.path}")
    print(f"  athlete id:     {info['athlete_id']}")
    print(f"  activities:     {info['activities']} rows in activities.csv ({info['manual']} manual, no file)")
    print(f"  files:          {info['files']} ({formats})")
    for gone in info["missing"]:
        print(f"  missing file:   {gone['filename']} (activity {gone['activity_id']}, listed but left out)")
    return 0


def export_lines(base_url: str, client_id: int, client_secret: str, refresh_token: str,
                 window_seconds: int) -> list[str]:
    """Shell lines that point the pipeline at this simulator, pasteable as printed.

    STRAVA_BASE_URL is the bare server URL because the client appends /api/v3 (and /oauth) itself;
    the rate window is exported only when compressed, since the pipeline's default is Strava's 900 s.
    """
    lines = [
        "To point the pipeline at this simulator, paste:",
        f"  export STRAVA_BASE_URL={base_url}",
        f"  export STRAVA_CLIENT_ID={client_id}",
        f"  export STRAVA_CLIENT_SECRET={client_secret}",
        f"  export STRAVA_REFRESH_TOKEN={refresh_token}",
    ]
    if window_seconds != 900:
        lines.append(f"  export STRAVA_RATE_WINDOW_SECONDS={window_seconds}")
    lines += [
        "The refresh token rotates on first use, as on Strava: the first process saves the new one in its token",
        "store (STRAVA_TOKEN_FILE); a second process must share that token store, not reuse this env value.",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    if getattr(args, "export", None):
        return export(args)
    sim = StravaSimulator(config_from(args))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sim:
        tokens = sim.authorize()
        print(f"Strava simulator listening on {sim.base_url}", flush=False)
        print(f"  api:            {sim.api_url} (the client adds /api/v3 itself)")
        print(f"  oauth:          {sim.base_url}/oauth/authorize, {sim.base_url}/oauth/token")
        print(f"  athlete id:     {sim.athlete_id} ({len(sim.activity_ids())} activities)")
        print(f"  client id:      {sim.client_id}")
        print(f"  client secret:  {sim.client_secret}")
        print(f"  refresh token:  {tokens['refresh_token']}  (scope read,activity:read_all,profile:read_all)")
        for line in export_lines(sim.base_url, sim.client_id, sim.client_secret, tokens["refresh_token"],
                                 args.window_seconds):
            print(line)
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
