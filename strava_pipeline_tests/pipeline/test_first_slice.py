"""The first vertical slice end to end: simulator -> rate-limited client -> Dagster -> PostgreSQL + Parquet."""

from __future__ import annotations

from datetime import date

from strava_pipeline.backfill import run_backfill
from strava_pipeline.storage.parquet_store import ParquetStore

SUMMARY_ASSETS = ["athlete_raw", "athlete", "gear", "activities_raw", "activities"]


def test_backfill_lands_exactly_the_ground_truth_in_both_stores(make_pipeline) -> None:
    p = make_pipeline()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 3, 31), select=SUMMARY_ASSETS, progress=lambda _: None)
    truth = sorted(p.sim.activity_ids())
    assert p.ids("activities") == truth
    assert p.ids("activities_raw") == truth
    parquet = ParquetStore(p.settings.parquet_dir).read("activities")
    assert sorted(parquet["activity_id"].to_list()) == truth
    assert p.query("SELECT athlete_id FROM strava.athlete") == [(p.sim.athlete_id,)]
    assert p.query("SELECT count(*) FROM strava.gear")[0][0] > 0
