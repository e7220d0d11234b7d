"""API requests spent by a full-history backfill, by endpoint, against the bound the design promises.

The bound (issue 3): 1 athlete + 1 zones + 1 per bike/shoe, plus ceil(N_b/200)+1 listing requests per
batch of partitions (N_b = activities in that batch's window), plus exactly one streams request per
non-manual activity; a second backfill of the same range must spend no streams request at all.

    .venv/bin/python benchmarks/api_cost.py [--activities 1000] [--days 1095]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline_env import pipeline_env

from strava_pipeline.cli.backfill import date_batches, run_backfill
from strava_pipeline.defs.partitions import MAX_PARTITIONS_PER_RUN
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.databases import create_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
from strava_pipeline.transforms.activities import listing_window


def _endpoint(path: str) -> str:
    parts = path.split("/")
    if path.endswith("/streams"):
        return "streams"
    if path.startswith("/api/v3/gear/"):
        return "gear"
    return "/".join(parts[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1095)
    args = parser.parse_args()
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    config = SimulatorConfig(seed=5, start_date=start, end_date=end, activities=args.activities,
                             read_limit=(1_000_000, 10_000_000), overall_limit=(1_000_000, 10_000_000))
    with tempfile.TemporaryDirectory() as tmp, start_embedded_postgres(Path(tmp) / "pg") as pg, \
            StravaSimulator(config) as sim:
        os.environ.update(pipeline_env(sim, tmp, start, create_database(pg.url, f"cost_{uuid.uuid4().hex[:8]}")))
        settings = Settings.from_env()
        select = ["athlete_raw", "athlete", "gear", "activities_raw", "activities", "streams_raw", "activity_streams"]
        summaries = sim.activities()
        sim.clear_request_log()
        run_backfill(settings, start, end, select=select, progress=lambda _: None)
        counts = Counter(_endpoint(e.path) for e in sim.request_log if e.path.startswith("/api/v3/"))
        epochs = [int(datetime.fromisoformat(s["start_date"].replace("Z", "+00:00")).timestamp()) for s in summaries]
        listing_bound = 0
        batches = list(date_batches(start, end, MAX_PARTITIONS_PER_RUN))
        for first, last in batches:
            after, before = listing_window(first, last)
            in_window = sum(1 for t in epochs if after < t < before)
            listing_bound += math.ceil(in_window / 200) + 1
        non_manual = sum(1 for s in summaries if not s["manual"])
        gear = counts.get("gear", 0)
        print(f"{len(summaries)} activities over {args.days} days ({non_manual} with streams), "
              f"{len(batches)} batches of up to {MAX_PARTITIONS_PER_RUN} days")
        for endpoint, n in sorted(counts.items()):
            print(f"  {endpoint:<22} {n:>6}")
        print(f"  {'total':<22} {sum(counts.values()):>6}")
        print(f"bound: athlete 1 + zones 1 + gear {gear} + listing {listing_bound} "
              f"(ceil(N/200)+1 = {math.ceil(len(summaries) / 200) + 1} per batch at most) + streams {non_manual}"
              f" = {2 + gear + listing_bound + non_manual}")
        ok = (counts["athlete"] == 1 and counts["athlete/zones"] == 1 and counts["athlete/activities"] <= listing_bound
              and counts["streams"] == non_manual)
        print(f"within bound: {ok}")
        sim.clear_request_log()
        run_backfill(settings, start, end, select=select, progress=lambda _: None)
        again = Counter(_endpoint(e.path) for e in sim.request_log if e.path.startswith("/api/v3/"))
        print(f"second backfill of the same range: {dict(sorted(again.items()))} (streams: {again.get('streams', 0)})")


if __name__ == "__main__":
    main()
