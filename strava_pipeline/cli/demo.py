"""The five-minute demo: a simulated athlete, the embedded database, a full backfill, a summary.

Nothing here needs a Strava account: the simulator speaks Strava's API over HTTP on 127.0.0.1 and the
pipeline is configured exactly as for Strava, with only the base URL changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.cli.importing import run_import
from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
from strava_pipeline.defs.assets.report import report_path
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator

#: A year of a synthetic athlete, on fixed dates so every run of the demo sees the same athlete (a rerun
#: re-materialises the same partitions and reuses every landed stream): enough to show every sport, time
#: zone and edge case.
DEMO_START = date(2025, 10, 1)
DEMO_END = date(2026, 9, 30)
DEMO_ACTIVITIES = 200
DEMO_SEED = 42
#: Strava's default budget (100 reads per 15 minutes) with the 15 minutes compressed to 15 seconds, so the
#: demo shows the limiter pacing requests without making a new user wait half an hour.
DEMO_WINDOW_SECONDS = 15
#: The demo's export archive was "requested" on this day: older activities come from its original files,
#: newer ones from the API (the usual situation of a user who imported their archive, then keeps syncing).
DEMO_ARCHIVE_BEFORE = date(2026, 8, 15)
DEMO_TABLES = (
    "athlete_raw", "athlete", "gear", "export_activities_raw", "activities_raw", "activities", "streams_raw",
    "activity_streams", "activity_metrics", "daily_training_load", "weekly_summary",
)


def demo_simulator_config() -> SimulatorConfig:
    """The demo athlete."""
    return SimulatorConfig(
        seed=DEMO_SEED, start_date=DEMO_START, end_date=DEMO_END, activities=DEMO_ACTIVITIES,
        window_seconds=DEMO_WINDOW_SECONDS,
    )


def demo_data_dir(settings: Settings) -> Path:
    """Where the demo keeps its data: beside, never inside, a real mirror's tables and files."""
    return settings.data_dir / "demo"


@contextmanager
def demo_simulator(settings: Settings) -> Iterator[StravaSimulator]:
    """Run the simulator and point the pipeline's environment at it, with a fresh authorisation.

    The demo has its own data dir and embedded database (``<data dir>/demo``), so trying the demo never
    mixes simulated activities into a real athlete's mirror. Its token store is re-seeded from a new
    grant each time, because a simulator started afresh does not know the tokens an earlier one issued.
    """
    config = demo_simulator_config()
    data_dir = demo_data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    with StravaSimulator(config) as sim:
        tokens = sim.authorize(scope="read,profile:read_all,activity:read_all")
        token_file = data_dir / "tokens.json"
        token_file.unlink(missing_ok=True)
        os.environ.pop("STRAVA_PIPELINE_DATABASE_URL", None)
        os.environ.update(
            {
                "STRAVA_PIPELINE_DATA_DIR": str(data_dir),
                "STRAVA_BASE_URL": sim.base_url,
                "STRAVA_CLIENT_ID": str(sim.client_id),
                "STRAVA_CLIENT_SECRET": sim.client_secret,
                "STRAVA_REFRESH_TOKEN": tokens["refresh_token"],
                "STRAVA_TOKEN_FILE": str(token_file),
                "STRAVA_HISTORY_START": config.start_date.isoformat(),
                "STRAVA_RATE_WINDOW_SECONDS": str(config.window_seconds),
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


def conn_query(database_url: str, query: str) -> list[tuple]:
    """Rows of one query (the demo's summary lines)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def check_summary(evaluations: list[dg.AssetCheckEvaluation]) -> dict[str, tuple[int, int]]:
    """Per check, in first-seen order: (days that passed, days checked). A check records one evaluation per
    day of each run; a day checked by two runs (the import, then the backfill) passed only if both passed."""
    days: dict[str, dict[str | None, bool]] = {}
    for e in evaluations:
        verdicts = days.setdefault(f"{e.asset_key.to_user_string()}.{e.check_name}", {})
        verdicts[e.partition] = verdicts.get(e.partition, True) and e.passed
    return {name: (sum(verdicts.values()), len(verdicts)) for name, verdicts in days.items()}


def run_demo() -> int:
    """Backfill the simulated athlete's whole history and print where everything landed."""
    base = Settings.from_env()
    base.data_dir.mkdir(parents=True, exist_ok=True)
    with (
        demo_simulator(base) as sim,
        pipeline_environment(Settings.from_env()) as settings,
        dagster_instance() as instance,
    ):
        print(f"Simulated Strava at {sim.base_url} with {len(sim.activity_ids())} activities; its rate limits "
              f"are Strava's, with the 15-minute window compressed to {DEMO_WINDOW_SECONDS} s.")
        archive = sim.write_export(settings.data_dir / "downloads", before=DEMO_ARCHIVE_BEFORE.isoformat())
        print(f"Importing its export archive ({archive.path.name}, activities before {DEMO_ARCHIVE_BEFORE}) ...")
        imported = run_import(settings, archive.path, instance=instance)
        print(f"Backfilling {settings.history_start}..today from the API into {settings.data_dir} ...")
        today = datetime.now(UTC).date()
        backfill = run_backfill(settings, settings.history_start, today + timedelta(days=1), instance=instance)
        backfill.checks[:0] = imported.backfill.checks if imported.backfill else []
        assert settings.database_url is not None
        counts = table_counts(settings.database_url)
        landed = {r[0] for r in conn_query(settings.database_url, "SELECT activity_id FROM strava.activities")}
        truth = sim.activity_ids()
        print("\nRows per table (PostgreSQL schema 'strava'):")
        for table, count in counts.items():
            print(f"  {table:<20} {count:>8}")
        api = [e for e in sim.request_log if e.path.startswith("/api/v3/")]
        streams = sum(1 for e in api if e.path.endswith("/streams"))
        print(f"\nStrava API requests: {len(api)} ({streams} streams, {len(api) - streams} other), "
              f"{sum(1 for e in api if e.status == 429)} answered 429")
        sources = dict(conn_query(settings.database_url, "SELECT source, count(DISTINCT activity_id) "
                                                          "FROM strava.activity_streams GROUP BY 1"))
        print(f"Samples of {sources.get('export', 0)} activities came from the export archive's original files "
              f"(0 requests), of {sources.get('api', 0)} from the API's streams")
        verdict = "match" if landed == truth else f"DIFFER ({len(truth - landed)} missing)"
        print(f"\nActivity ids vs the simulator's ground truth: {verdict}")
        print(f"Parquet files: {settings.parquet_dir}/<asset>/date=YYYY-MM-DD/part.parquet")
        print("\nAsset checks (every day of the import and the backfill):")
        for name, (passed, total) in check_summary(backfill.checks).items():
            print(f"  {name:<48} {'passed' if passed == total else 'FAILED'} ({passed}/{total} days)")
        print(f"\nTraining report: {report_path(settings.data_dir)}")
        print("Open the Dagster UI on the same database and simulator with:  strava-pipeline ui  (make ui)")
        checks_ok = all(e.passed for e in backfill.checks)
        return 0 if landed == truth and checks_ok else 1
