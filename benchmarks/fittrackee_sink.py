"""FitTrackee uploads per minute, within FitTrackee's default rate limit (300 requests per 5 minutes per route).

What is measured: ``fittrackee.sync.run_sync`` uploading N activities, each with a GPX track (a 30-minute run,
one point every 5 s, ~30 kB), to a real FitTrackee (the test instance: its own virtualenv, a database on the
embedded PostgreSQL, Redis so that its rate limit is enforced, gunicorn with one worker) on loopback, from a
new user's first upload to the last, then a second run over the same activities (no request expected).
With N above 300 the upload route's window runs out and the sink waits for FitTrackee's reset (it never
gets a 429 of its own making), so the rate converges to at most 60 a minute; below, FitTrackee's processing
time per upload (parsing, the static map) is what limits it.

    .venv/bin/python benchmarks/fittrackee_sink.py [--activities 120] [--rate-limits "300 per 5 minutes"]

Last line: ``RESULT uploads_per_min=<n> activities=<n> seconds=<s> waits=<n>``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strava_pipeline.fittrackee import Activity, WorkoutTable, run_sync
from strava_pipeline.storage.databases import create_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
from strava_pipeline.storage.migrations import apply_migrations

# The FitTrackee instance (virtualenv, Redis, tiles, set-up) is the tests' one: import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strava_pipeline_tests.fittrackee.helpers import connect, write_gpx
from strava_pipeline_tests.fittrackee.instance import (
    FITTRACKEE_VERSION,
    fittrackee_instance,
    fittrackee_venv,
    redis_server,
    tile_server,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=120)
    parser.add_argument("--rate-limits", default="300 per 5 minutes", help="FitTrackee's API_RATE_LIMITS")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fittrackee-bench-"))
    try:
        started = time.monotonic()
        venv = fittrackee_venv()
        print(f"FitTrackee {FITTRACKEE_VERSION} virtualenv ready in {time.monotonic() - started:.1f}s ({venv})")
        with start_embedded_postgres(work / "pg") as pg, redis_server(venv) as redis, tile_server() as tiles:
            ft_db = create_database(pg.url, "fittrackee")
            ours = create_database(pg.url, "pipeline")
            apply_migrations(ours)
            with fittrackee_instance(ft_db, redis, tiles, rate_limits=args.rate_limits, venv=venv) as instance:
                user = connect(instance, work / "tokens.json")
                files = work / "files"
                start = datetime(2024, 1, 1, 7, tzinfo=UTC)
                rows = []
                for i in range(args.activities):
                    when = start + timedelta(days=i)
                    path = files / f"{when.year}" / f"{when.date().isoformat()}_{10_000 + i}_run.gpx"
                    length, seconds = write_gpx(path, when, seconds=1800, step_s=5, lat=45 + i / 1000)
                    rows.append({"activity_id": 10_000 + i, "activity_date": when.date(), "start_date": when,
                                 "name": f"Run {i} 🏃", "sport_type": "Run", "distance_m": length,
                                 "moving_time_s": seconds, "elapsed_time_s": seconds})
                activities = [Activity.from_row(row, files) for row in rows]
                size = sum(a.file.stat().st_size for a in activities if a.file) / len(activities)
                table = WorkoutTable(ours, instance.url)
                with user.client() as client:
                    t0 = time.monotonic()
                    report = run_sync(client, table, activities)
                    seconds = time.monotonic() - t0
                with user.client() as client:
                    t1 = time.monotonic()
                    again = run_sync(client, table, activities)
                    rerun = time.monotonic() - t1
        rate = report.uploads / seconds * 60
        print(f"{report.uploads} uploads of {size / 1024:.0f} kB GPX files in {seconds:.1f}s "
              f"({seconds / max(report.uploads, 1):.2f}s each), {report.rate_limit_waits} rate-limit waits "
              f"({report.rate_limit_waited_s:.0f}s), {report.rate_limited} 429s, "
              f"{sum(report.requests.values())} requests ({dict(report.requests)})")
        print(f"re-run: {again.unchanged} unchanged, {sum(again.requests.values())} requests in {rerun:.2f}s")
        print(f"RESULT uploads_per_min={rate:.1f} activities={args.activities} seconds={seconds:.1f} "
              f"waits={report.rate_limit_waits}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
