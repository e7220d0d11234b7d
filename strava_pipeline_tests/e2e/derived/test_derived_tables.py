"""Derived tables on the simulator's athlete: complete, consistent with the typed layer, views that read."""

from __future__ import annotations

import re
from datetime import date, timedelta

import polars as pl

from strava_pipeline.defs import build_definitions
from strava_pipeline.defs.partitions import daily_partitions
from strava_pipeline.storage.parquet_store import ParquetStore

END = date(2024, 1, 31)  # the last day the small athlete (conftest) has activities

CHECK_NAMES = {
    "unique_activity_ids", "raw_and_typed_row_counts_agree", "every_activity_has_streams",
    "streams_have_equal_length", "heartrate_in_range", "export_files_readable", "summaries_storable",
    "stores_agree",
}


def test_derived_tables_are_complete_and_checks_pass(backfilled) -> None:
    p, report = backfilled()
    store = ParquetStore(p.settings.parquet_dir)

    # One activity_metrics row per activity with streams, in both stores, with the activity's sport.
    with_streams = sorted(r[0] for r in p.query("SELECT activity_id FROM strava.streams_raw WHERE status = 'ok'"))
    assert with_streams, "the synthetic month has activities with streams"
    assert p.ids("activity_metrics") == with_streams
    assert sorted(store.read("activity_metrics").get_column("activity_id").to_list()) == with_streams
    assert p.query(
        "SELECT count(*) FROM strava.activity_metrics m JOIN strava.activities a USING (activity_id) "
        "WHERE m.sport_type IS DISTINCT FROM a.sport_type OR m.activity_date <> a.activity_date") == [(0,)]
    assert p.query("SELECT count(*) FROM strava.activity_metrics WHERE moving_time_s > 0") == [(len(with_streams),)]
    assert p.query("SELECT count(*) FROM strava.activity_metrics WHERE load IS NOT NULL")[0][0] > 0

    # Daily training load: every day from the first activity through the last partition (today), no gaps.
    first = p.query("SELECT min(activity_date) FROM strava.activities")[0][0]
    last = date.fromisoformat(
        daily_partitions(p.settings.history_start, p.settings.timezone).get_last_partition_key())
    days = [r[0] for r in p.query("SELECT date FROM strava.daily_training_load ORDER BY date")]
    assert days[0] == first and days[-1] == last
    assert days == [first + timedelta(days=i) for i in range((last - first).days + 1)]
    total_load = p.query("SELECT sum(load) FROM strava.activity_metrics")[0][0]
    assert abs(p.query("SELECT sum(load) FROM strava.daily_training_load")[0][0] - total_load) < 1e-6
    assert p.query("SELECT count(*) FROM strava.daily_training_load WHERE date > %s AND load <> 0", END) == [(0,)]
    parquet_days = store.read("daily_training_load")
    assert parquet_days.height == len(days)

    # Weekly summary: every activity counted once, distances add up.
    n, distance = p.query("SELECT count(*), sum(distance_m) FROM strava.activities")[0]
    assert p.query("SELECT sum(activity_count)::int, sum(distance_m) FROM strava.weekly_summary")[0][0] == n
    assert abs(p.query("SELECT sum(distance_m) FROM strava.weekly_summary")[0][0] - distance) < 1e-3
    weekly_load = p.query("SELECT sum(load) FROM strava.weekly_summary")[0][0]
    assert abs(weekly_load - total_load) < 1e-6

    # Views answer the everyday questions.
    runs = p.query("SELECT distance_km, pace_min_per_km, pace_per_km, moving_time FROM strava.runs")
    assert runs
    for km, pace, text, _ in runs:
        if km and km > 0:
            minutes, seconds = text.split(":")
            assert re.fullmatch(r"\d+:[0-5]\d", text)
            assert abs(int(minutes) + int(seconds) / 60 - float(pace)) < 0.02
    assert p.query("SELECT count(*) FROM strava.fitness") == [(len(days),)]
    rides = p.query("SELECT count(*) FROM strava.activities WHERE sport_type IN ('Ride', 'MountainBikeRide', "
                    "'GravelRide', 'EBikeRide', 'EMountainBikeRide', 'VirtualRide')")[0][0]
    assert rides > 0 and p.query("SELECT count(*) FROM strava.rides") == [(rides,)]
    assert p.query("SELECT sum(activity_count)::int FROM strava.weekly_volume") == [(n,)]

    # Every check ran on every batch and passed on the simulator's athlete.
    evaluated = {e.check_name for e in report.checks}
    assert evaluated == CHECK_NAMES == {c.name for c in _check_defs(p)}
    failed = [(e.check_name, e.metadata) for e in report.checks if not e.passed]
    assert failed == []

    # Parquet and PostgreSQL agree on the columns.
    columns = [r[0] for r in p.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'strava' "
        "AND table_name = 'activity_metrics' ORDER BY ordinal_position")]
    assert store.read("activity_metrics").columns == columns
    assert store.read("activity_metrics").schema["load_source"] == pl.String

    # The report landed where the README says.
    assert (p.settings.data_dir / "reports" / "training_report.html").is_file()


def _check_defs(p) -> list:
    return [c for d in build_definitions(p.settings).asset_checks for c in d.check_specs]
