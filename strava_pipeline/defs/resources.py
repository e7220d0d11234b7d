"""Dagster resources: the rate-limited Strava client, and read access to what already landed.

Secrets reach Dagster only as ``EnvVar`` references, never as literal values in run configuration.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from strava_pipeline.defs.io_manager import VERSIONS_TABLE, ready_database_url
from strava_pipeline.settings import Settings
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.storage.partition_switch import PartitionSwitcher
from strava_pipeline.strava import RateLimiter, StravaClient, TokenStore
from strava_pipeline.transforms.sport_filter import SPORT_TYPES_VARIABLE, parse_sport_types, sport_filter

#: The Dagster concurrency pool of every asset that calls Strava: its limit (``dagster.yaml``) is how many
#: such steps may run at once across all runs, so a schedule tick and a backfill share one API budget.
STRAVA_API_POOL = "strava_api"


class StravaResource(dg.ConfigurableResource):
    """Strava API v3 access for assets, sensors and checks.

    Secrets arrive as ``EnvVar`` so they never appear in run configuration or the UI. All clients in a
    process share one limiter whose state lives in a file next to the data, so a schedule tick and a
    backfill running at the same time stay inside Strava's budget together.
    """

    client_id: str
    client_secret: str
    refresh_token: str | None = None
    base_url: str = "https://www.strava.com"
    token_file: str
    rate_limit_state_file: str | None = None
    window_seconds: int = 900
    max_wait_seconds: float | None = None
    request_timeout_seconds: float = 60.0
    #: Larger bodies fail their request unread (STRAVA_MAX_RESPONSE_MB, in MiB, sets it from the environment).
    max_response_bytes: int = 256 * 1024 * 1024

    _client: StravaClient | None = PrivateAttr(default=None)

    def get_client(self) -> StravaClient:
        """The process's client, created on first use (a run that only reads the raw layer needs none)."""
        if self._client is None:
            logger = logging.getLogger("strava_pipeline.strava")
            limiter = RateLimiter(
                state_path=Path(self.rate_limit_state_file) if self.rate_limit_state_file else None,
                window_seconds=self.window_seconds,
                max_wait_seconds=self.max_wait_seconds,
                logger=logger,
            )
            self._client = StravaClient(
                base_url=self.base_url,
                client_id=self.client_id,
                client_secret=self.client_secret,
                token_store=TokenStore(Path(self.token_file), seed_refresh_token=self.refresh_token),
                rate_limiter=limiter,
                timeout=(10.0, self.request_timeout_seconds),
                max_response_bytes=self.max_response_bytes,
                logger=logger,
            )
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections when the run or step ends."""
        if self._client is not None:
            self._client.close()
            self._client = None


class LandedDataResource(dg.ConfigurableResource):
    """Read access to what has already landed, so assets reuse it instead of spending API requests.

    Also hands out the landing cache where fetched documents wait until their partition commits.
    """

    data_dir: str
    database_url: str | None = None
    """Where a write a killed run left half done is looked up (unset: the embedded server)."""

    def read(self, asset: str, days: Sequence[date], columns: Sequence[str] | None = None) -> pl.DataFrame:
        """An asset's landed rows for these days (empty where nothing landed yet), optionally only some columns.

        A write of the asset that a killed run left between its PostgreSQL commit and its Parquet switch is
        finished first, as the IO manager does before any read: what is read is what was committed.
        """
        store = ParquetStore(Path(self.data_dir) / "parquet")
        if PartitionSwitcher.has_pending(store, asset):
            url = ready_database_url(self.database_url, Path(self.data_dir))
            PartitionSwitcher(store, url, versions_table=VERSIONS_TABLE).recover(asset)
        return store.read(asset, days, columns=columns)

    def landing_cache(self, name: str) -> LandingCache:
        """The write-ahead cache for one kind of document."""
        return LandingCache(Path(self.data_dir) / "landing" / name)


class SportFilterResource(dg.ConfigurableResource):
    """Which sports get streams, metrics and activity files (``STRAVA_SPORT_TYPES``); summaries always land.

    A resource, not per-asset config, so every asset and check of a run applies the same selection; the
    launchpad can still override it for one run.
    """

    sport_types: list[str] | None = None
    """Strava sport types (e.g. ["Run", "TrailRun"]); unset or empty: every sport."""

    def selected(self) -> frozenset[str] | None:
        """The selected sport types in Strava's spelling, or None for every sport (raises on unknown names)."""
        return parse_sport_types(self.sport_types, source=f"{SPORT_TYPES_VARIABLE} (resource sport_filter)")

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``frame`` whose activity is of a selected sport (see ``transforms.sport_filter``)."""
        return sport_filter(frame, self.selected())


def optional_env(name: str) -> dg.EnvVar | None:
    """An EnvVar for an optional secret, so an unset variable means "not configured", not an error."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def strava_resource(settings: Settings, **overrides: Any) -> StravaResource:
    """The Strava resource of a configuration (``overrides`` replace fields, e.g. for a backfill's prefetcher)."""
    fields: dict[str, Any] = {
        "client_id": dg.EnvVar("STRAVA_CLIENT_ID"),
        "client_secret": dg.EnvVar("STRAVA_CLIENT_SECRET"),
        "refresh_token": optional_env("STRAVA_REFRESH_TOKEN"),
        "base_url": settings.base_url,
        "token_file": str(settings.token_file),
        "rate_limit_state_file": str(settings.rate_limit_state_file),
        "window_seconds": settings.rate_window_seconds,
        "request_timeout_seconds": settings.request_timeout_seconds,
        "max_response_bytes": settings.max_response_mb * 1024 * 1024,
    }
    return StravaResource(**{**fields, **overrides})


def strava_client(settings: Settings, **overrides: Any) -> StravaClient:
    """A client outside any Dagster run (the backfill's prefetcher), with the settings' resolved secrets."""
    return strava_resource(
        settings, client_id=settings.client_id, client_secret=settings.client_secret,
        refresh_token=settings.refresh_token, **overrides,
    ).get_client()
