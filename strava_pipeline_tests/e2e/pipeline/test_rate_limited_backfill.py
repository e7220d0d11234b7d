"""A backfill under a tiny read budget: the limiter waits for the window instead of hammering 429s."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.simulator import SimulatorConfig


def test_multi_day_backfill_under_a_tiny_read_limit_completes_without_429_storms(
    make_pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    config = SimulatorConfig(seed=11, start_date=date(2024, 1, 1), end_date=date(2024, 1, 31), activities=24,
                             read_limit=(8, 10_000), overall_limit=(16, 20_000), window_seconds=2)
    p = make_pipeline(config)
    caplog.set_level(logging.WARNING, logger="strava_pipeline.strava")

    run_backfill(p.settings, date(2024, 1, 1), date(2024, 1, 31),
                 select=["athlete_raw", "activities_raw", "activities", "streams_raw", "activity_streams"],
                 progress=lambda _: None)

    assert p.ids("activities") == sorted(p.sim.activity_ids())
    with_streams = sorted(s["id"] for s in p.sim.activities() if not s["manual"])
    assert [r[0] for r in p.query("SELECT activity_id FROM strava.streams_raw ORDER BY 1")] == with_streams
    statuses = [e.status for e in p.sim.request_log if e.path.startswith("/api/v3/")]
    assert len(statuses) > 8 * 2, "the run needed several windows' worth of requests"
    assert statuses.count(429) <= 1
    waits = [r for r in caplog.records if r.name.startswith("strava_pipeline.strava") and "resum" in r.getMessage()]
    assert waits, "the limiter logged its waits (with the time it resumes)"
