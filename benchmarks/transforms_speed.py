"""CPU time of the per-sample transforms a backfill runs, on the simulator's streams, without Dagster or I/O.

Fetches N one-hour activities' streams from an in-process simulator once (0 ms latency), then times, best
of ``--repeat``: ``streams_frame`` (raw payloads -> typed samples, what ``activity_streams`` computes),
``activity_metrics_frame`` (what ``activity_metrics`` computes) and ``unstorable_reason`` (the check every
fetched body passes before it lands).

    .venv/bin/python benchmarks/transforms_speed.py [--activities 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta

import polars as pl
import requests

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.transforms.metrics import AthleteSettings
from strava_pipeline.transforms.streams import STREAMS_RAW_SCHEMA, streams_frame, unstorable_reason
from strava_pipeline.transforms.training import activity_metrics_frame

STREAM_KEYS = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"


def raw_streams(activities: int) -> tuple[pl.DataFrame, pl.DataFrame, list[bytes]]:
    """(streams_raw rows, activity ids with sport types, response bodies) of a simulated athlete."""
    end = datetime.now(UTC).date() - timedelta(days=1)
    config = SimulatorConfig(seed=3, start_date=end - timedelta(days=730), end_date=end, activities=activities,
                             activity_seconds=3600, read_limit=(10**6, 10**7), overall_limit=(10**6, 10**7))
    rows, sports, bodies = [], [], []
    with StravaSimulator(config) as sim, requests.Session() as session:
        token = sim.authorize()["access_token"]
        for summary in sim.activities():
            response = session.get(f"{sim.base_url}/api/v3/activities/{summary['id']}/streams",
                                   params={"keys": STREAM_KEYS, "key_by_type": "true"},
                                   headers={"Authorization": f"Bearer {token}"}, timeout=60)
            day = date.fromisoformat(summary["start_date_local"][:10])
            sports.append({"activity_id": summary["id"], "activity_date": day, "sport_type": summary["sport_type"]})
            if response.status_code != 200:
                continue
            bodies.append(response.content)
            rows.append({"activity_id": summary["id"], "activity_date": day, "summary_fingerprint": "",
                         "status": "ok", "fetched_at": datetime.now(UTC), "payload": response.text})
    return pl.DataFrame(rows, schema=STREAMS_RAW_SCHEMA), pl.DataFrame(sports), bodies


def best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        began = time.process_time()
        fn()
        times.append(time.process_time() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw, activities, bodies = raw_streams(args.activities)
    samples = streams_frame(raw)
    settings = AthleteSettings(ftp_w=250)
    print(f"{raw.height} activities with streams, {samples.height:,} samples; CPU seconds, best of {args.repeat}:")
    timed = {
        "streams_frame": lambda: streams_frame(raw),
        "activity_metrics_frame": lambda: activity_metrics_frame(samples, activities, settings),
        "unstorable_reason": lambda: [unstorable_reason(b, "streams") for b in bodies],
    }
    for name, fn in timed.items():
        print(f"  {name:<24}{best_of(args.repeat, fn):6.2f} s")


if __name__ == "__main__":
    main()
