"""Dagster assets, built for a given configuration (partitions start at STRAVA_HISTORY_START)."""

from __future__ import annotations

import warnings

import dagster as dg

from strava_pipeline.defs.assets.activities import build_activity_assets
from strava_pipeline.defs.assets.athlete import athlete, athlete_raw, gear
from strava_pipeline.defs.assets.export import build_export_archive_asset, build_export_assets
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
        return [
            athlete_raw, athlete, gear, build_export_archive_asset(settings), *_export_after_listing(partitions),
            *build_stream_assets(partitions), *build_training_assets(partitions), training_report,
        ]
