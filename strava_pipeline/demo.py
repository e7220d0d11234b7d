"""The five-minute demo: a simulated athlete, the embedded database, a full backfill, a summary.

Nothing here needs a Strava account: the simulator speaks Strava's API over HTTP on 127.0.0.1 and the
pipeline is configured exactly as for Strava, with only the base URL changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg
from psycopg import sql

from strava_pipeline.assets.report import report_path
from strava_pipeline.backfill import run_backfill
from strava_pipeline.runtime import pipeline_environment
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator

#: Two years of a synthetic athlete: enough to show every sport, time zone and edge case.
DEMO_DAYS = 730
DEMO_ACTIVITIES = 300
DEMO_SEED = 42
DEMO_TABLES = (
    "athlete_raw", "athlete", "gear", "activities_raw", "activities",
    "activity_metrics", "daily_training_load", "weekly_summary",
)


def demo_simulator_config(today: date | None = None) -> SimulatorConfig:
    """The demo athlete: deterministic for a given day."""
    end = today or datetime.now(UTC).date()
    return SimulatorConfig(
        seed=DEMO_SEED, start_date=end - timedelta(days=DEMO_DAYS), end_date=end, activities=DEMO_ACTIVITIES
    )


@contextmanager
def demo_simulator(settings: Settings) -> Iterator[StravaSimulator]:
    """Run the simulator and point the pipeline's environment at it, with a fresh authorisation.

    The token store is the demo's own file, re-seeded from a new grant each time, because a simulator
    started afresh does not know the tokens an earlier one issued.
    """
    config = demo_simulator_config()
    with StravaSimulator(config) as sim:
        tokens = sim.authorize(scope="read,profile:read_all,activity:read_all")
        token_file = settings.data_dir / "demo_tokens.json"
        token_file.unlink(missing_ok=True)
        os.environ.update(
            {
                "STRAVA_BASE_URL": sim.base_url,
                "STRAVA_CLIENT_ID": str(sim.client_id),
                "STRAVA_CLIENT_SECRET": sim.client_secret,
                "STRAVA_REFRESH_TOKEN": tokens["refresh_token"],
                "STRAVA_TOKEN_FILE": str(token_file),
                "STRAVA_HISTORY_START": config.start_date.isoformat(),
            }
        )
        yield sim


def table_counts(database_url: str, tables: tuple[str, ...] = DEMO_TABLES) -> dict[str, int]:
    """Row counts of the pipeline's tables."""
    with psycopg.connect(database_url) as conn:
        counts = {}
        for table in tables:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("strava", table))
            counts[table] = conn.execute(query).fetchone()[0]
        return counts


def check_summary(evaluations: list[dg.AssetCheckEvaluation]) -> dict[str, tuple[int, int]]:
    """Per check: (evaluations that passed, evaluations), in first-seen order."""
    summary: dict[str, tuple[int, int]] = {}
    for e in evaluations:
        name = f"{e.asset_key.to_user_string()}.{e.check_name}"
        passed, total = summary.get(name, (0, 0))
        summary[name] = (passed + int(e.passed), total + 1)
    return summary


def run_demo() -> int:
    """Backfill the simulated athlete's whole history and print where everything landed."""
    base = Settings.from_env()
    base.data_dir.mkdir(parents=True, exist_ok=True)
    with demo_simulator(base) as sim, pipeline_environment(Settings.from_env()) as settings:
        print(f"Simulated Strava at {sim.base_url} with {len(sim.activity_ids())} activities.")
        print(f"Backfilling {settings.history_start}..today into {settings.data_dir} ...")
        backfill = run_backfill(settings, settings.history_start, datetime.now(UTC).date() + timedelta(days=1))
        assert settings.database_url is not None
        counts = table_counts(settings.database_url)
        with psycopg.connect(settings.database_url) as conn:
            landed = {r[0] for r in conn.execute("SELECT activity_id FROM strava.activities")}
        truth = sim.activity_ids()
        print("\nRows per table (PostgreSQL schema 'strava'):")
        for table, count in counts.items():
            print(f"  {table:<20} {count:>8}")
        verdict = "match" if landed == truth else f"DIFFER ({len(truth - landed)} missing)"
        print(f"\nActivity ids vs the simulator's ground truth: {verdict}")
        print(f"Parquet files: {settings.parquet_dir}/<asset>/date=YYYY-MM-DD/part.parquet")
        print("\nAsset checks (every batch of the backfill):")
        for name, (passed, total) in check_summary(backfill.checks).items():
            print(f"  {name:<48} {'passed' if passed == total else 'FAILED'} ({passed}/{total} runs)")
        print(f"\nTraining report: {report_path(settings.data_dir)}")
        print("Open the Dagster UI on the same database and simulator with:  make ui")
        checks_ok = all(e.passed for e in backfill.checks)
        return 0 if landed == truth and checks_ok else 1
