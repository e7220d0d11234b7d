"""The Dagster code location: assets, checks, resources, the IO manager and automation, for one configuration.

``build_definitions`` is the only constructor: ``strava_pipeline.definitions`` (what ``workspace.yaml``
and ``dagster dev`` load) calls it once with the environment's settings, the CLI once per command with
its own, and the headless backfill takes assets, checks and resources from that same object.
"""

from __future__ import annotations

import dagster as dg

from strava_pipeline.defs.assets import build_assets
from strava_pipeline.defs.assets.fittrackee import fittrackee_resource
from strava_pipeline.defs.automation import (
    build_archive_jobs,
    build_archive_sensors,
    build_daily_schedule,
    build_new_activity_sensor,
    build_sync_job,
)
from strava_pipeline.defs.bookkeeping import lighten_dagster_bookkeeping
from strava_pipeline.defs.checks import build_checks
from strava_pipeline.defs.io_manager import WarehouseIOManager
from strava_pipeline.defs.partitions import daily_partitions
from strava_pipeline.defs.resources import LandedDataResource, SportFilterResource, optional_env, strava_resource
from strava_pipeline.ingest.api_access import api_unavailable_reason
from strava_pipeline.settings import Settings
from strava_pipeline.storage.files import keep_created_files_private
from strava_pipeline.transforms.sport_filter import parse_sport_types

__all__ = ["build_definitions", "build_resources", "keep_created_files_private", "lighten_dagster_bookkeeping"]


def build_resources(settings: Settings) -> dict[str, object]:
    """Resources for a configuration; secrets stay EnvVar references, never literal values.

    The warehouse IO manager is the default ``io_manager``: every table asset is stored in both stores
    without naming it.
    """
    return {
        "strava": strava_resource(settings),
        "landed": LandedDataResource(
            data_dir=str(settings.data_dir), database_url=optional_env("STRAVA_PIPELINE_DATABASE_URL")
        ),
        "sport_filter": SportFilterResource(sport_types=_sport_types(settings)),
        "fittrackee": fittrackee_resource(settings),
        "io_manager": WarehouseIOManager(
            data_dir=str(settings.data_dir),
            database_url=optional_env("STRAVA_PIPELINE_DATABASE_URL"),
        ),
    }


def _sport_types(settings: Settings) -> list[str] | None:
    """STRAVA_SPORT_TYPES in Strava's spelling (raises SportTypesError, naming the variable, on unknown ones)."""
    selected = parse_sport_types(settings.sport_types)
    return sorted(selected) if selected is not None else None


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location for one configuration."""
    partitions = daily_partitions(settings.history_start, settings.timezone)
    job = build_sync_job()
    stage, days = build_archive_jobs()
    return dg.Definitions(
        assets=build_assets(settings, partitions),
        asset_checks=build_checks(partitions),
        jobs=[job, stage, days],
        schedules=[build_daily_schedule(job, timezone=settings.timezone, lookback_days=settings.sync_lookback_days,
                                        unavailable=lambda: api_unavailable_reason(settings))],
        sensors=[build_new_activity_sensor(job, partitions, interval_seconds=settings.sensor_interval_seconds,
                                           settings=settings),
                 *build_archive_sensors(settings, stage, days)],
        resources=build_resources(settings),
    )
