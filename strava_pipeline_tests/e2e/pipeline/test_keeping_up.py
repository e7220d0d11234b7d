"""Keeping up without a person watching: the daily schedule's run request and the late-upload sensor."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.defs import build_definitions, build_resources

SUMMARY = ["activities_raw", "activities"]


def test_daily_schedule_requests_the_lookback_window_in_the_athletes_timezone(make_pipeline) -> None:
    p = make_pipeline(STRAVA_PIPELINE_TIMEZONE="America/Los_Angeles", STRAVA_SYNC_LOOKBACK_DAYS="4")
    from strava_pipeline.settings import Settings

    defs = build_definitions(Settings.from_env())
    schedule = defs.resolve_schedule_def("daily_sync")
    assert schedule.execution_timezone == "America/Los_Angeles"
    # 04:00 local on 2024-03-10 is 11:00 UTC; the run covers the 4 local days ending that day.
    when = datetime(2024, 3, 10, 11, 0, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "2024-03-07"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-03-10"
    del p


def _evaluate_sensor(p) -> dg.SensorResult:
    defs = build_definitions(p.settings)
    sensor = defs.resolve_sensor_def("new_or_changed_activities")
    with dg.build_sensor_context(resources=build_resources(p.settings), definitions=defs) as context:
        return sensor.evaluate_tick(context)


def test_sensor_on_an_empty_mirror_asks_for_a_backfill_instead_of_a_run_per_day(make_pipeline) -> None:
    p = make_pipeline()
    result = _evaluate_sensor(p)
    assert result.run_requests == [] and "backfill first" in result.skip_message
    assert p.sim.request_log == [], "nothing to compare with: the listing is not even requested"


def test_sensor_picks_up_late_upload_edit_and_deletion_for_one_request(make_pipeline) -> None:
    p = make_pipeline()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 3, 31), select=SUMMARY, progress=lambda _: None)
    p.sim.clear_request_log()
    quiet = _evaluate_sensor(p)
    assert quiet.run_requests == []
    assert [e.path for e in p.sim.request_log] == ["/api/v3/athlete/activities"]

    newest = sorted(p.sim.activities(), key=lambda s: s["start_date_local"])
    edited, deleted = newest[-1], newest[-3]
    late = p.sim.add_activity(start_date_local="2024-03-02T18:00:00", zone="Europe/Paris")  # uploaded days late
    p.sim.update_activity(edited["id"], name="edited after the fact")
    p.sim.delete_activity(deleted["id"])
    p.sim.update_activity(newest[-2]["id"], kudos_count=999)  # social noise is not a change
    p.sim.clear_request_log()

    result = _evaluate_sensor(p)

    assert len(p.sim.request_log) == 1
    expected = {"2024-03-02", edited["start_date_local"][:10], deleted["start_date_local"][:10]}
    assert {r.partition_key for r in result.run_requests} == expected
    for key in sorted(expected):
        run_backfill(p.settings, date.fromisoformat(key), date.fromisoformat(key), select=SUMMARY,
                     progress=lambda _: None)
    assert late in p.ids("activities")
    assert deleted["id"] not in p.ids("activities")
    assert _evaluate_sensor(p).run_requests == []
