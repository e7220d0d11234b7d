"""The Dagster code location: assets, resources and IO managers wired from the environment.

``workspace.yaml`` loads ``defs`` from here; tests and the CLI call ``build_definitions`` with their
own settings.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from strava_pipeline.assets import build_assets
from strava_pipeline.assets.partitions import daily_partitions
from strava_pipeline.checks import build_checks
from strava_pipeline.io_managers.warehouse import WarehouseIOManager
from strava_pipeline.jobs import build_sync_job
from strava_pipeline.resources import LandedDataResource, StravaResource
from strava_pipeline.schedules import build_daily_schedule
from strava_pipeline.sensors import build_new_activity_sensor
from strava_pipeline.settings import Settings
from strava_pipeline.strava import StravaClient


def _optional_env(name: str) -> dg.EnvVar | None:
    """An EnvVar for an optional secret, so an unset variable means "not configured", not an error."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def strava_resource(settings: Settings, **overrides: Any) -> StravaResource:
    """The Strava resource of a configuration (``overrides`` replace fields, e.g. for a backfill's prefetcher)."""
    fields: dict[str, Any] = {
        "client_id": dg.EnvVar("STRAVA_CLIENT_ID"),
        "client_secret": dg.EnvVar("STRAVA_CLIENT_SECRET"),
        "refresh_token": _optional_env("STRAVA_REFRESH_TOKEN"),
        "base_url": settings.base_url,
        "token_file": str(settings.token_file),
        "rate_limit_state_file": str(settings.rate_limit_state_file),
        "window_seconds": settings.rate_window_seconds,
        "request_timeout_seconds": settings.request_timeout_seconds,
    }
    return StravaResource(**{**fields, **overrides})


def strava_client(settings: Settings, **overrides: Any) -> StravaClient:
    """A client outside any Dagster run (the backfill's prefetcher), with the settings' resolved secrets."""
    return strava_resource(
        settings, client_id=settings.client_id, client_secret=settings.client_secret,
        refresh_token=settings.refresh_token, **overrides,
    ).get_client()


def build_resources(settings: Settings) -> dict[str, object]:
    """Resources for a configuration; secrets stay EnvVar references, never literal values."""
    return {
        "strava": strava_resource(settings),
        "landed": LandedDataResource(data_dir=str(settings.data_dir)),
        "warehouse": WarehouseIOManager(
            data_dir=str(settings.data_dir),
            database_url=_optional_env("STRAVA_PIPELINE_DATABASE_URL"),
        ),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location for one configuration."""
    partitions = daily_partitions(settings.history_start, settings.timezone)
    job = build_sync_job()
    return dg.Definitions(
        assets=build_assets(settings),
        asset_checks=build_checks(settings),
        jobs=[job],
        schedules=[build_daily_schedule(job, timezone=settings.timezone, lookback_days=settings.sync_lookback_days)],
        sensors=[build_new_activity_sensor(job, partitions, interval_seconds=settings.sensor_interval_seconds)],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings.from_env())
