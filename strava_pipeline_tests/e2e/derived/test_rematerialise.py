"""Re-materialising one day updates exactly the derived rows that depend on it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.storage.parquet_store import ParquetStore

DAY_ASSETS = [
    "activities_raw", "activities", "streams_raw", "activity_streams", "activity_metrics",
    "daily_training_load", "weekly_summary",
]


def _rows(p, sql: str, *params: object) -> list[tuple]:
    return p.query(sql, *params)


def test_rematerialising_a_day_updates_only_dependent_derived_rows(backfilled) -> None:
    p, _ = backfilled()
    store = ParquetStore(p.settings.parquet_dir)
    day = p.query("SELECT activity_date FROM strava.activity_metrics GROUP BY 1 ORDER BY 1 OFFSET 2 LIMIT 1")[0][0]
    week_start = day - timedelta(days=day.weekday())
    metrics_sql = "SELECT * FROM strava.activity_metrics WHERE activity_date <> %s ORDER BY activity_id"
    before_other_days = _rows(p, metrics_sql, day)
    before_day = _rows(p, "SELECT * FROM strava.activity_metrics WHERE activity_date = %s ORDER BY 1", day)
    before_load = dict(_rows(p, "SELECT date, load FROM strava.daily_training_load"))
    before_pmc = _rows(p, "SELECT * FROM strava.daily_training_load WHERE date < %s ORDER BY date", day)
    before_weeks = _rows(p, "SELECT * FROM strava.weekly_summary WHERE week_start <> %s ORDER BY 3, 4", week_start)
    other_files = {d: store.partition_path("activity_metrics", d).stat().st_mtime_ns
                   for d in store.written_partitions("activity_metrics") if d != day}

    added = p.sim.add_activity(start_date_local=f"{day.isoformat()}T18:30:00", sport_type="Run",
                               zone="Europe/Paris", name="Evening tempo")
    run_backfill(p.settings, day, day, select=DAY_ASSETS, progress=lambda _: None)

    # activity_metrics: the day gained exactly the new activity; every other day is untouched, file and row.
    after_day = _rows(p, "SELECT * FROM strava.activity_metrics WHERE activity_date = %s ORDER BY 1", day)
    assert sorted(r[0] for r in after_day) == sorted([*(r[0] for r in before_day), added])
    assert [r for r in after_day if r[0] != added] == before_day
    assert _rows(p, metrics_sql, day) == before_other_days
    assert {d: store.partition_path("activity_metrics", d).stat().st_mtime_ns for d in other_files} == other_files
    new_load = p.query("SELECT load FROM strava.activity_metrics WHERE activity_id = %s", added)[0][0]
    assert new_load and new_load > 0

    # daily_training_load: days before are identical, the day's load grew by the new activity's load,
    # and fitness/fatigue of every later day moved (the recurrence carries the change forward).
    assert _rows(p, "SELECT * FROM strava.daily_training_load WHERE date < %s ORDER BY date", day) == before_pmc
    after_load = dict(_rows(p, "SELECT date, load FROM strava.daily_training_load"))
    assert after_load[day] == pytest.approx(before_load[day] + new_load)
    assert {d: v for d, v in after_load.items() if d != day} == {d: v for d, v in before_load.items() if d != day}
    later = _rows(p, "SELECT count(*) FROM strava.daily_training_load WHERE date > %s", day)[0][0]
    assert later > 0

    # weekly_summary: only the day's week changed, by one run.
    assert _rows(p, "SELECT * FROM strava.weekly_summary WHERE week_start <> %s ORDER BY 3, 4", week_start) \
        == before_weeks
    runs_that_week = _rows(p, "SELECT activity_count FROM strava.weekly_summary WHERE week_start = %s "
                              "AND sport_type = 'Run'", week_start)
    expected = p.query("SELECT count(*) FROM strava.activities WHERE sport_type = 'Run' AND activity_date "
                       "BETWEEN %s AND %s", week_start, week_start + timedelta(days=6))[0][0]
    assert runs_that_week == [(expected,)]
    # Parquet agrees with PostgreSQL on the re-materialised day.
    assert sorted(store.read("activity_metrics", [day]).get_column("activity_id").to_list()) == sorted(
        r[0] for r in after_day)
