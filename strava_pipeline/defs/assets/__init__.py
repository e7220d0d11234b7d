"""Dagster assets, built for a given configuration (partitions start at STRAVA_HISTORY_START)."""

from __future__ import annotations

import warnings

import dagster as dg

from strava_pipeline.defs.assets.activities import build_activity_assets
from strava_pipeline.defs.assets.activity_files import build_activity_file_assets
from strava_pipeline.defs.assets.athlete import athlete, athlete_raw, gear
from strava_pipeline.defs.assets.export import build_export_archive_asset, build_export_assets
from strava_pipeline.defs.assets.fittrackee import build_fittrackee_asset
from strava_pipeline.defs.assets.report import training_report
from strava_pipeline.defs.assets.streams import build_stream_assets
from strava_pipeline.defs.assets.training import build_training_assets
from strava_pipeline.settings import Settings


def _export_after_listing(partitions: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """activities_raw, then export_activities_raw (it files archive rows under the API's dates), then activities."""
    activities_raw, activities = build_activity_assets(partitions)
    return [activities_raw, *build_export_assets(partitions), activities]


def build_assets(settings: Settings, partitions: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Every asset of the pipeline, in dependency order.

    The partitioned assets carry backfill policies (a year of summaries or a quarter of streams per run),
    which Dagster still marks beta: that choice is made here once, so loading the definitions (the UI,
    the daemon, every CLI command) does not repeat the warning for each asset.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")
        assets = [
            athlete_raw, athlete, gear, build_export_archive_asset(settings), *_export_after_listing(partitions),
            *build_stream_assets(partitions), *build_training_assets(partitions), training_report,
            *build_activity_file_assets(partitions),
        ]
        # The FitTrackee sink goes last: it uploads each activity with the file `activity_files` wrote, if any.
        has_files = any(a.key.to_user_string() == "activity_files" for a in assets)
        return [*assets, build_fittrackee_asset(has_activity_files=has_files)]
