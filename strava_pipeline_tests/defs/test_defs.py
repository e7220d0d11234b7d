"""The code location loads and validates as Dagster would load it, for any configuration."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg

from strava_pipeline.defs import build_definitions
from strava_pipeline.settings import Settings

EXPECTED_ASSETS = {
    "athlete_raw", "athlete", "gear", "export_archive", "export_activities_raw", "activities_raw", "activities",
    "streams_raw", "activity_streams",
    "activity_metrics", "daily_training_load", "weekly_summary", "training_report", "activity_files",
    "fittrackee_workouts",
}


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        client_id=None, client_secret=None, refresh_token=None, base_url="http://127.0.0.1:9", data_dir=tmp_path,
        token_file=tmp_path / "tokens.json", history_start=date(2020, 1, 1), database_url=None,
        timezone="Europe/Berlin", rate_window_seconds=900, sync_lookback_days=3, sensor_interval_seconds=1800,
        request_timeout_seconds=60.0,
    )


def test_definitions_validate_and_hold_every_asset_check_and_automation(tmp_path: Path) -> None:
    defs = build_definitions(_settings(tmp_path))
    dg.Definitions.validate_loadable(defs)
    keys = {a.key.to_user_string() for a in defs.assets}
    assert keys == EXPECTED_ASSETS
    assert {c.key.name for d in defs.asset_checks for c in d.check_specs} == {
        "unique_activity_ids", "raw_and_typed_row_counts_agree", "every_activity_has_streams",
        "streams_have_equal_length", "heartrate_in_range", "export_files_readable", "summaries_storable",
        "stores_agree",
    }
    agree = {c.asset_key.to_user_string() for d in defs.asset_checks for c in d.check_specs if c.name == "stores_agree"}
    assert agree == {"activities_raw", "export_activities_raw", "activities", "streams_raw", "activity_streams",
                     "activity_metrics"}
    assert defs.resolve_schedule_def("daily_sync").execution_timezone == "Europe/Berlin"
    assert defs.resolve_sensor_def("new_or_changed_activities") is not None
    assert defs.resolve_sensor_def("new_export_archive") is not None
    assert set(defs.resources) == {"strava", "landed", "io_manager", "fittrackee", "sport_filter"}


def test_every_asset_is_described_grouped_by_module_and_stored_by_the_default_io_manager(tmp_path: Path) -> None:
    defs = build_definitions(_settings(tmp_path))
    graph = defs.resolve_asset_graph()
    groups = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        groups[key.to_user_string()] = node.group_name
    assert groups["activities_raw"] == groups["activities"] == "activities"
    assert groups["streams_raw"] == groups["activity_streams"] == "streams"
    for asset in defs.assets:
        for spec in asset.specs:
            if spec.key.to_user_string() not in {"training_report", "export_archive"}:
                assert asset.get_io_manager_key_for_asset_key(spec.key) == "io_manager"


def test_partitions_start_at_the_configured_history(tmp_path: Path) -> None:
    defs = build_definitions(_settings(tmp_path))
    activities = defs.get_assets_def("activities")
    assert activities.partitions_def.get_first_partition_key() == "2020-01-01"


def test_the_leaf_module_loads_as_dagster_loads_it(tmp_path: Path) -> None:
    """``strava_pipeline.definitions`` builds from the environment alone (what workspace.yaml points at)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STRAVA_PIPELINE_DATA_DIR": str(tmp_path / "data"),
           "STRAVA_HISTORY_START": "2021-05-01"}
    code = ("from strava_pipeline.definitions import defs\n"
            "print(defs.get_assets_def('activities').partitions_def.get_first_partition_key())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "2021-05-01"
