"""No API access (no credentials, or Strava's 403 Inactive): a named error, and automation that skips."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.defs import build_definitions, build_resources
from strava_pipeline.strava import StravaAppInactiveError

SUMMARY = ["activities_raw", "activities"]


def test_403_inactive_is_a_named_error_pointing_to_the_archive(make_pipeline) -> None:
    p = make_pipeline()
    p.sim.set_faults("*:inactive=1")
    with pytest.raises(Exception) as raised:
        run_backfill(p.settings, date(2024, 1, 1), date(2024, 1, 31), select=SUMMARY, progress=lambda _: None)
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or getattr(error, "original_exc", None) or getattr(error, "user_exception", None)
    message = " ".join(str(e) for e in chain)
    assert any(isinstance(e, StravaAppInactiveError) for e in chain) or "403 Inactive" in message
    assert "subscription" in message and "strava-pipeline import" in message


def test_the_sensor_skips_with_the_reason_instead_of_failing_every_tick(make_pipeline) -> None:
    p = make_pipeline()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 1, 31), select=SUMMARY, progress=lambda _: None)
    p.sim.set_faults("*:inactive=1")
    p.sim.clear_request_log()
    defs = build_definitions(p.settings)
    sensor = defs.resolve_sensor_def("new_or_changed_activities")
    with dg.build_sensor_context(resources=build_resources(p.settings), definitions=defs) as context:
        first = sensor.evaluate_tick(context)
    assert first.run_requests == [] and "403 Inactive" in first.skip_message
    assert len(p.sim.request_log) == 1, "one request found out; the next tick makes none"
    with dg.build_sensor_context(resources=build_resources(p.settings), definitions=defs,
                                 cursor=first.cursor) as context:
        second = sensor.evaluate_tick(context)
    assert "403 Inactive" in second.skip_message and len(p.sim.request_log) == 1
    # The daily schedule skips too while the refusal is fresh.
    schedule = defs.resolve_schedule_def("daily_sync")
    with dg.build_schedule_context(scheduled_execution_time=datetime.now(UTC)) as context:
        data = schedule.evaluate_tick(context)
    assert not data.run_requests and "403 Inactive" in data.skip_message


def test_without_credentials_the_schedule_and_sensor_skip(make_pipeline) -> None:
    p = make_pipeline(STRAVA_CLIENT_ID="", STRAVA_CLIENT_SECRET="", STRAVA_REFRESH_TOKEN="")
    defs = build_definitions(p.settings)
    with dg.build_schedule_context(scheduled_execution_time=datetime.now(UTC)) as context:
        data = defs.resolve_schedule_def("daily_sync").evaluate_tick(context)
    assert not data.run_requests and "no Strava API credentials" in data.skip_message
    with dg.build_sensor_context(resources=build_resources(p.settings), definitions=defs) as context:
        sensed = defs.resolve_sensor_def("new_or_changed_activities").evaluate_tick(context)
    assert "no Strava API credentials" in sensed.skip_message
    assert p.sim.request_log == []
