"""STRAVA_EXPORT_PATH: a folder the user drops archives into, picked up by the UI's sensor and asset."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg

from strava_pipeline.defs import build_definitions, build_resources
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig


def test_a_dropped_archive_is_staged_once_and_its_days_requested(make_pipeline, tmp_path: Path) -> None:
    drop = tmp_path / "archives"
    drop.mkdir()
    p = make_pipeline(SimulatorConfig(seed=3, start_date=date(2024, 3, 1), end_date=date(2024, 3, 31),
                                      activities=8), STRAVA_EXPORT_PATH=str(drop))
    settings = Settings.from_env()
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("new_export_archive")
    with dg.build_sensor_context(definitions=defs) as context:
        empty = sensor.evaluate_tick(context)
    assert not empty.run_requests and "no archive" in empty.skip_message

    p.sim.write_export(drop)
    with dg.build_sensor_context(definitions=defs) as context:
        first = sensor.evaluate_tick(context)
    assert len(first.run_requests) == 1
    with dg.build_sensor_context(definitions=defs, cursor=first.cursor) as context:
        assert not sensor.evaluate_tick(context).run_requests, "the same archive is requested once"

    def stage() -> dict:
        result = dg.materialize([defs.get_assets_def("export_archive")], resources=build_resources(settings))
        event = result.asset_materializations_for_node("export_archive")[0]
        return {k: v.value for k, v in event.metadata.items()}

    p.sim.clear_request_log()
    staged = stage()
    days = json.loads(json.dumps(staged["changed_days"]))
    assert days and min(days) >= "2024-03-01" and staged["archives_imported"] == 1
    assert p.sim.request_log == [], "staging never calls Strava"
    again = stage()
    assert again["archives_imported"] == 0 and again["changed_days"] == []
