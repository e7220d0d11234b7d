"""The fixed cost of a daily partition: a backfill over days without a single activity.

Every day of every activity-level asset costs Dagster a materialisation event (written in bulk per run)
and the IO manager a partition replace in PostgreSQL and Parquet, whether or not the athlete trained. This
prints that floor, which bounds how fast any backfill over a long, sparse history can be. It runs what
``strava-pipeline backfill`` runs: runs recorded in the persistent instance in PostgreSQL.

    .venv/bin/python benchmarks/partition_overhead.py [--days 730]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline_env import pipeline_env

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.databases import create_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres

ASSETS = ["activities_raw", "activities", "streams_raw", "activity_streams"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=730)
    args = parser.parse_args()
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory() as tmp, start_embedded_postgres(Path(tmp) / "pg") as pg, \
            StravaSimulator(SimulatorConfig(seed=3, start_date=start, end_date=end, activities=0)) as sim:
        os.environ.update(pipeline_env(sim, tmp, start, create_database(pg.url, f"ovh_{uuid.uuid4().hex[:8]}")))
        logging.disable(logging.WARNING)
        with pipeline_environment(Settings.from_env()) as settings, dagster_instance() as instance:
            began = time.perf_counter()
            run_backfill(settings, start, end, select=ASSETS, instance=instance, progress=lambda _: None)
            elapsed = time.perf_counter() - began
        per = elapsed / (args.days * len(ASSETS)) * 1000
        print(f"{args.days} empty days x {len(ASSETS)} assets: {elapsed:.1f} s ({per:.1f} ms per asset-day)")


if __name__ == "__main__":
    main()
