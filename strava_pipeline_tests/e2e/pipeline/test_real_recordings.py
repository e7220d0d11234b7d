"""Real-world input: 1,132 recorded Strava activities replayed over HTTP land completely and verbatim."""

from __future__ import annotations

import json
from datetime import date

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline_tests.recordings import all_recorded_activities


def test_replayed_recording_lands_all_1132_activities_verbatim(make_pipeline) -> None:
    recorded = all_recorded_activities()
    first_day = min(date.fromisoformat(s["start_date_local"][:10]) for s in recorded)
    last_day = max(date.fromisoformat(s["start_date_local"][:10]) for s in recorded)
    p = make_pipeline(SimulatorConfig(seed=1, activities=0), history_start=first_day)
    p.sim.replay_activities(recorded)

    run_backfill(p.settings, first_day, last_day, select=["activities_raw", "activities"], progress=lambda _: None)

    by_id = {s["id"]: s for s in recorded}
    landed = dict(p.query("SELECT activity_id, payload::text FROM strava.activities_raw"))
    assert len(landed) == len(by_id) == 1132
    assert {i: json.loads(t) for i, t in landed.items()} == by_id
    assert p.query("SELECT count(*) FROM strava.activities")[0][0] == 1132
    # ceil(1132/200)+1 listing requests per batch of up to 366 days.
    batches = -(-((last_day - first_day).days + 1) // 366)
    listing = [e for e in p.sim.request_log if e.path == "/api/v3/athlete/activities"]
    assert len(listing) <= batches + 1132 // 200 + 1 + batches
