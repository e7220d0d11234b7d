"""The first vertical slice end to end: simulator -> rate-limited client -> Dagster -> PostgreSQL + Parquet."""

from __future__ import annotations

from datetime import date

from strava_pipeline.cli.backfill import run_backfill
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


def _day_with_activities(p, minimum: int) -> date:
    by_day: dict[str, list[int]] = {}
    for summary in p.sim.activities():
        by_day.setdefault(summary["start_date_local"][:10], []).append(summary["id"])
    day = next(d for d, ids in sorted(by_day.items()) if len(ids) >= minimum)
    return date.fromisoformat(day)


def test_rematerialising_a_day_shows_exactly_the_new_state(make_pipeline) -> None:
    p = make_pipeline()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 3, 31), select=SUMMARY_ASSETS, progress=lambda _: None)
    day = _day_with_activities(p, 2)
    on_day = [s["id"] for s in p.sim.activities() if s["start_date_local"].startswith(day.isoformat())]
    renamed, deleted = on_day[0], on_day[1]
    p.sim.update_activity(renamed, name="Renamed 🚴 ride")
    p.sim.delete_activity(deleted)
    added = p.sim.add_activity(start_date_local=f"{day.isoformat()}T06:15:00", zone="Europe/Paris")
    others_before = p.query("SELECT activity_id, name FROM strava.activities WHERE activity_date <> %s ORDER BY 1", day)

    run_backfill(p.settings, day, day, select=["activities_raw", "activities"], progress=lambda _: None)

    expected = sorted(i for i in [*on_day, added] if i != deleted)
    assert sorted(r[0] for r in p.query("SELECT activity_id FROM strava.activities WHERE activity_date = %s", day)) \
        == expected
    assert p.query("SELECT name FROM strava.activities WHERE activity_id = %s", renamed) == [("Renamed 🚴 ride",)]
    parquet_day = ParquetStore(p.settings.parquet_dir).read("activities", [day])
    assert sorted(parquet_day["activity_id"].to_list()) == expected
    assert p.query("SELECT activity_id, name FROM strava.activities WHERE activity_date <> %s ORDER BY 1", day) \
        == others_before
    assert p.ids("activities") == sorted(p.sim.activity_ids())
    for table in ("activities", "activities_raw"):
        assert p.query(f"SELECT count(*) - count(DISTINCT activity_id) FROM strava.{table}") == [(0,)]
    parquet_all = ParquetStore(p.settings.parquet_dir).read("activities")
    assert parquet_all["activity_id"].is_unique().all()


def test_late_evening_in_utc_minus_8_lands_on_its_local_date(make_pipeline) -> None:
    p = make_pipeline()
    late = p.sim.add_activity(start_date_local="2024-02-10T23:30:00", zone="America/Los_Angeles")
    summary = next(s for s in p.sim.activities() if s["id"] == late)
    assert summary["start_date"].startswith("2024-02-11")  # next day in UTC
    run_backfill(p.settings, date(2024, 2, 10), date(2024, 2, 11), select=["activities_raw", "activities"],
                 progress=lambda _: None)
    assert p.query("SELECT activity_date FROM strava.activities WHERE activity_id = %s", late) == \
        [(date(2024, 2, 10),)]
    parquet = ParquetStore(p.settings.parquet_dir).read("activities", [date(2024, 2, 10)])
    assert late in parquet["activity_id"].to_list()


def test_a_backfill_records_every_day_but_plans_each_asset_once(make_pipeline, monkeypatch, dagster_instance) -> None:
    """The UI sees each day materialised, while the instance is spared one planned event per asset and day."""
    import os

    import dagster as dg

    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    p = make_pipeline()
    instance = dagster_instance
    report = run_backfill(p.settings, date(2024, 1, 1), date(2024, 3, 31), select=["activities_raw", "activities"],
                          instance=instance, progress=lambda _: None)
    (run_id,) = report.run_ids
    planned_events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    days = {f"2024-{m:02d}-{d:02d}" for m, last in ((1, 31), (2, 29), (3, 31)) for d in range(1, last + 1)}
    for asset in ("activities_raw", "activities"):
        key = dg.AssetKey(asset)
        assert instance.get_materialized_partitions(key) == days
        planned = [e for e in planned_events if e.dagster_event and e.dagster_event.asset_key == key]
        assert len(planned) == 1, f"{asset}: {len(planned)} planned events for one 91-day run"
    # The switches are Dagster-wide environment variables: the backfill puts them back as they were.
    assert "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS" not in os.environ
    assert "DAGSTER_EVENT_BATCH_SIZE" not in os.environ
