"""One summary PostgreSQL's jsonb cannot store (NaN, a \\u0000 escape) must not sink the listing's whole batch."""

from __future__ import annotations

import json
import math
from datetime import date

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.storage.parquet_store import ParquetStore

START, END = date(2024, 1, 1), date(2024, 3, 31)


def test_unstorable_summaries_land_raw_rejected_and_the_rest_of_the_batch_lands(make_pipeline) -> None:
    p = make_pipeline()
    ids = sorted(p.sim.activity_ids())
    with_nan, with_nul = ids[3], ids[-4]
    p.sim.update_activity(with_nan, average_speed=float("nan"))
    p.sim.update_activity(with_nul, name="Morning\u0000Ride")

    report = run_backfill(p.settings, START, END, select=["activities_raw", "activities"], progress=lambda _: None)

    assert p.ids("activities") == [i for i in ids if i not in (with_nan, with_nul)]
    assert p.ids("activities_raw") == ids
    rejected = dict(p.query("SELECT activity_id, rejected FROM strava.activities_raw WHERE rejected IS NOT NULL"))
    assert sorted(rejected) == [with_nan, with_nul]
    assert "NaN" in rejected[with_nan]
    assert "\\u0000" in rejected[with_nul]
    # The summary is kept verbatim as text; the jsonb payload holds only the id.
    kept = dict(p.query("SELECT activity_id, payload_text FROM strava.activities_raw WHERE rejected IS NOT NULL"))
    assert math.isnan(json.loads(kept[with_nan])["average_speed"])
    assert json.loads(kept[with_nul])["name"] == "Morning\u0000Ride"
    payload = p.query("SELECT payload FROM strava.activities_raw WHERE activity_id = %s", with_nan)
    assert payload == [({"id": with_nan},)]

    # The check fails on exactly the days of the two rejected summaries, naming each; the counts agree.
    failed = [e for e in report.checks if e.check_name == "summaries_storable" and not e.passed]
    days = dict(p.query("SELECT activity_id, activity_date::text FROM strava.activities_raw"))
    assert {e.partition for e in failed} == {days[with_nan], days[with_nul]}
    described = " ".join(e.description for e in failed)
    assert str(with_nan) in described and str(with_nul) in described
    assert all(e.passed for e in report.checks if e.check_name == "raw_and_typed_row_counts_agree")

    store = ParquetStore(p.settings.parquet_dir)
    for table in ("activities_raw", "activities"):
        assert store.read(table).height == p.query(f"SELECT count(*) FROM strava.{table}")[0][0]
    raw = store.read("activities_raw")
    assert sorted(raw.filter(raw["rejected"].is_not_null())["activity_id"].to_list()) == [with_nan, with_nul]


def test_the_sensor_compares_a_rejected_summary_by_its_verbatim_text(make_pipeline) -> None:
    """Otherwise the {"id": ...} placeholder differs from the listing and the day looks edited on every tick."""
    import dagster as dg

    from strava_pipeline.defs import build_definitions, build_resources

    p = make_pipeline()
    newest = max(p.sim.activities(), key=lambda s: s["start_date_local"])["id"]
    p.sim.update_activity(newest, average_speed=float("nan"))
    run_backfill(p.settings, START, END, select=["activities_raw", "activities"], progress=lambda _: None)
    defs = build_definitions(p.settings)
    with dg.build_sensor_context(resources=build_resources(p.settings), definitions=defs) as context:
        result = defs.resolve_sensor_def("new_or_changed_activities").evaluate_tick(context)
    assert result.run_requests == []
