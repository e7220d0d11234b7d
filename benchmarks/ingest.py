"""End-to-end ingest benchmark: our pipeline vs the sequential notebook approach, side by side.

Against the simulator (real HTTP, configurable latency, default 100 ms per request) with N one-hour
activities (default 1,000), each side runs in its own child process so its peak RSS is its own:

- ours: what ``strava-pipeline backfill`` does over the whole history (Dagster runs recorded in the
  persistent instance, listing, concurrent stream requests through the shared rate limiter, typed
  tables, PostgreSQL + Parquet);
- baseline: what a typical notebook does: plain ``requests``, one request at a time, then one
  ``INSERT`` per sample row (``executemany``) into an equivalent table.

Prints requests per activity, wall time, samples loaded per second, peak RSS, and the speed-up.

    .venv/bin/python benchmarks/ingest.py [--activities 1000] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from queue import Empty

import psycopg
import requests
from pipeline_env import pipeline_env

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres

STREAM_KEYS = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"
BASELINE_DDL = """
CREATE TABLE notebook_streams (
    activity_id bigint, sample_index integer, time_s integer, lat double precision, lng double precision,
    altitude_m double precision, distance_m double precision, velocity_mps double precision,
    heartrate_bpm smallint, cadence_rpm double precision, watts smallint, temp_c smallint, moving boolean,
    grade_pct double precision)
"""


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(env: dict[str, str], start: str, end: str, profile: str | None, queue: mp.Queue) -> None:
    """Child process: what ``strava-pipeline backfill`` does, streams included.

    The clock includes setting up the database and Dagster's persistent instance (its tables, in the
    same PostgreSQL database), which a first backfill pays too.
    """
    os.environ.update(env)
    from strava_pipeline.cli.backfill import run_backfill
    from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
    from strava_pipeline.settings import Settings

    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    began = time.perf_counter()
    steps: list[str] = []

    def progress(message: str) -> None:
        steps.append(f"{time.perf_counter() - began:7.1f} s  {message}")

    with pipeline_environment(Settings.from_env()) as settings, dagster_instance() as instance:
        progress("database and Dagster instance ready")
        run_backfill(
            settings, date.fromisoformat(start), date.fromisoformat(end), instance=instance,
            select=["activities_raw", "activities", "streams_raw", "activity_streams"], progress=progress,
        )
    elapsed = time.perf_counter() - began
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    with psycopg.connect(env["STRAVA_PIPELINE_DATABASE_URL"]) as conn:
        samples = conn.execute("SELECT count(*) FROM strava.activity_streams").fetchone()[0]
    queue.put({"seconds": elapsed, "samples": samples, "peak_rss_mib": _peak_rss_mib(), "steps": steps})


def run_baseline(base_url: str, client_id: str, secret: str, refresh: str, db_url: str, queue: mp.Queue) -> None:
    """Child process: sequential requests and row-by-row inserts, as in the common notebook."""
    began = time.perf_counter()
    session = requests.Session()
    token = session.post(f"{base_url}/oauth/token", data={
        "client_id": client_id, "client_secret": secret, "grant_type": "refresh_token", "refresh_token": refresh,
    }, timeout=60).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    activities, page = [], 1
    while True:
        items = session.get(f"{base_url}/api/v3/athlete/activities", params={"per_page": 200, "page": page},
                            headers=headers, timeout=60).json()
        if not items:
            break
        activities.extend(items)
        page += 1
    samples = 0
    with psycopg.connect(db_url) as conn:
        conn.execute(BASELINE_DDL)
        for activity in activities:
            if activity.get("manual"):
                continue
            response = session.get(f"{base_url}/api/v3/activities/{activity['id']}/streams",
                                   params={"keys": STREAM_KEYS, "key_by_type": "true"}, headers=headers, timeout=60)
            if response.status_code == 404:
                continue
            streams = response.json()
            n = len(streams["time"]["data"])

            def col(name: str, n: int = n, streams: dict = streams) -> list:
                return streams.get(name, {}).get("data") or [None] * n

            latlng = col("latlng")
            rows = [
                (activity["id"], i, t, (ll or [None, None])[0], (ll or [None, None])[1], alt, dist, vel, hr, cad, w,
                 temp, mov, grade)
                for i, (t, ll, alt, dist, vel, hr, cad, w, temp, mov, grade) in enumerate(zip(
                    col("time"), latlng, col("altitude"), col("distance"), col("velocity_smooth"),
                    col("heartrate"), col("cadence"), col("watts"), col("temp"), col("moving"),
                    col("grade_smooth"), strict=True))
            ]
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO notebook_streams VALUES "
                                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
            conn.commit()
            samples += n
    queue.put({"seconds": time.perf_counter() - began, "samples": samples, "peak_rss_mib": _peak_rss_mib()})


def _warm_up(sim: StravaSimulator, ids: list[int]) -> None:
    """Have the simulator generate (and cache) every stream first: generating synthetic samples is the
    simulator's cost, not Strava's, and must not be charged to whichever side runs first."""
    token = sim.authorize()["access_token"]
    latency = sim.config.latency_ms
    sim.config.latency_ms = 0
    try:
        with requests.Session() as session:
            for activity_id in ids:
                session.get(f"{sim.base_url}/api/v3/activities/{activity_id}/streams",
                            params={"keys": STREAM_KEYS, "key_by_type": "true"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=60).raise_for_status()
    finally:
        sim.config.latency_ms = latency


def _child(target, *args) -> dict:  # type: ignore[no-untyped-def]
    """Run one side in a fresh process (its own peak RSS); a crashed child is an error, not a hang."""
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=target, args=(*args, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not proc.is_alive():
                raise RuntimeError(f"{target.__name__} exited with code {proc.exitcode} without a result") from None
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--days", type=int, default=730, help="history length the activities are spread over")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--steps", action="store_true", help="print when each of our runs finished")
    parser.add_argument("--profile", metavar="PATH", help="write a cProfile of our side to PATH (slows it down)")
    args = parser.parse_args()

    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days)
    config = SimulatorConfig(seed=3, start_date=start, end_date=end, activities=args.activities,
                             activity_seconds=3600, latency_ms=args.latency_ms,
                             read_limit=(1_000_000, 10_000_000), overall_limit=(1_000_000, 10_000_000))
    with tempfile.TemporaryDirectory() as tmp, start_embedded_postgres(Path(tmp) / "pg") as pg, \
            StravaSimulator(config) as sim:
        summaries = sim.activities()
        non_manual = sum(1 for s in summaries if not s["manual"])
        names = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        ours_db, base_db = (create_database(pg.url, n) for n in names)
        try:
            env = pipeline_env(sim, tmp, start, ours_db)
            print(f"simulator: {len(summaries)} one-hour activities ({non_manual} with streams), "
                  f"{args.latency_ms:g} ms latency per request")
            _warm_up(sim, [s["id"] for s in summaries if not s["manual"]])
            sim.clear_request_log()
            ours = _child(run_ours, env, start.isoformat(), end.isoformat(), args.profile)
            if args.steps:
                print("\n".join(ours.pop("steps")))
            else:
                ours.pop("steps")
            log = sim.request_log
            stream_requests = sum(1 for e in log if e.path.endswith("/streams"))
            listing = sum(1 for e in log if e.path == "/api/v3/athlete/activities")
            print(f"ours:     {ours['seconds']:8.1f} s  {ours['samples'] / ours['seconds']:10.0f} samples/s  "
                  f"peak RSS {ours['peak_rss_mib']:6.0f} MiB  requests: {len(log)} "
                  f"({listing} listing + {stream_requests} streams = "
                  f"{len(log) / len(summaries):.3f} per activity)")
            if not args.skip_baseline:
                base = _child(run_baseline, sim.base_url, str(sim.client_id), sim.client_secret,
                              sim.authorize()["refresh_token"], base_db)
                print(f"baseline: {base['seconds']:8.1f} s  {base['samples'] / base['seconds']:10.0f} samples/s  "
                      f"peak RSS {base['peak_rss_mib']:6.0f} MiB")
                print(f"speed-up: {base['seconds'] / ours['seconds']:.1f}x over a sequential script (skilled "
                      f"peers: benchmarks/peers.py); samples {ours['samples']} vs {base['samples']}")
            print(json.dumps({"ours": ours}))
        finally:
            for n in names:
                drop_database(pg.url, n)


if __name__ == "__main__":
    main()
