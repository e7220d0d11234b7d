"""Derived tables, built only from the typed layer (never an API request): per-activity metrics, the
daily fitness/fatigue/form series and weekly totals.

``activity_metrics`` is daily-partitioned like the activities it summarises, so re-materialising a day
recomputes that day's activities only. ``daily_training_load`` and ``weekly_summary`` are unpartitioned:
CTL/ATL are a recurrence (a change on one day shifts every later day) and weeks straddle partitions, so
both are rebuilt whole from Parquet, which is cheap (one row per activity in, one row per day/week out).
The computations are the pure functions of ``transforms.training``.
"""

from datetime import date

import dagster as dg
import polars as pl

from strava_pipeline.defs.metadata import WAREHOUSE_KINDS, table_metadata
from strava_pipeline.defs.partitions import PARTITION_COLUMN, STREAMS_BACKFILL_POLICY
from strava_pipeline.defs.resources import SportFilterResource
from strava_pipeline.transforms.activities import ACTIVITY_SCHEMA
from strava_pipeline.transforms.metrics import DAILY_TRAINING_LOAD_SCHEMA, WEEKLY_SUMMARY_SCHEMA
from strava_pipeline.transforms.sport_filter import of_selected_activities
from strava_pipeline.transforms.training import (
    ACTIVITY_METRICS_TABLE_SCHEMA,
    activity_metrics_frame,
    athlete_settings,
    training_load_frame,
    weekly_summary_frame,
    with_schema,
)

GROUP = "training"


class MetricsConfig(dg.Config):
    """Heart-rate settings Strava's API does not expose (defaults: 190 and 60 bpm)."""

    max_hr: float | None = None
    """Maximum heart rate, bpm: TRIMP and the fallback %HRmax zones."""
    resting_hr: float | None = None
    """Resting heart rate, bpm: TRIMP's heart-rate reserve."""


def build_training_assets(partitions_def: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The derived assets for a given partitioning (it depends on STRAVA_HISTORY_START)."""
    all_days = dg.AllPartitionMapping()

    @dg.asset(
        name="activity_metrics",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        partitions_def=partitions_def,
        backfill_policy=STREAMS_BACKFILL_POLICY,
        metadata=table_metadata(ACTIVITY_METRICS_TABLE_SCHEMA, table="activity_metrics"),
    )
    def activity_metrics_asset(
        context: dg.AssetExecutionContext,
        config: MetricsConfig,
        activity_streams: pl.DataFrame,
        activities: pl.DataFrame,
        athlete: pl.DataFrame,
        sport_filter: SportFilterResource,
    ) -> pl.DataFrame:
        """One row per activity with streams: moving time, elevation gain (smoothed, hysteresis), average/max
        heart rate, time in the athlete's five HR zones, best efforts (400 m … marathon, elapsed seconds),
        power curve (5 s … 60 min), NP, IF, TSS, TRIMP and the training `load` (TSS with power and FTP, else
        TRIMP; `load_source` says which). Built from `activity_streams`, `activities` and `athlete` only;
        with STRAVA_SPORT_TYPES set, only for activities of those sports.
        """
        settings = athlete_settings(athlete, config.max_hr, config.resting_hr)
        streams = of_selected_activities(activity_streams, activities, sport_filter.selected())
        frame = activity_metrics_frame(streams, activities, settings)
        context.log.info(f"metrics for {frame.height} activities (FTP {settings.ftp_w or 'unset'})")
        return frame

    @dg.asset(
        name="daily_training_load",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        ins={
            "activity_metrics": dg.AssetIn(partition_mapping=all_days),
            "activities": dg.AssetIn(partition_mapping=all_days),
        },
        metadata=table_metadata(DAILY_TRAINING_LOAD_SCHEMA, table="daily_training_load", partitioned=False),
    )
    def daily_training_load_asset(activity_metrics: pl.DataFrame, activities: pl.DataFrame) -> pl.DataFrame:
        """The Performance Management Chart: one row per calendar day, without gaps, from the first activity
        through today (the last partition); rest days have load 0. `ctl` = fitness (42-day), `atl` = fatigue
        (7-day), `tsb` = form (yesterday's CTL − ATL). Unpartitioned because each day depends on every
        earlier one: rebuilt whole from `activity_metrics` in Parquet.
        """
        metrics = with_schema(activity_metrics, ACTIVITY_METRICS_TABLE_SCHEMA)
        summaries = with_schema(activities, {"activity_id": pl.Int64(), PARTITION_COLUMN: pl.Date()})
        last_key = partitions_def.get_last_partition_key()
        return training_load_frame(metrics, summaries, date.fromisoformat(last_key) if last_key else None)

    @dg.asset(
        name="weekly_summary",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        ins={
            "activities": dg.AssetIn(partition_mapping=all_days),
            "activity_metrics": dg.AssetIn(partition_mapping=all_days),
        },
        metadata=table_metadata(WEEKLY_SUMMARY_SCHEMA, table="weekly_summary", partitioned=False),
    )
    def weekly_summary_asset(activities: pl.DataFrame, activity_metrics: pl.DataFrame) -> pl.DataFrame:
        """Totals per ISO week (Monday start, local time) and sport: activity count, distance, moving time,
        elevation gain and training load. Every activity counts; one without stream metrics (manual entries)
        has load 0 and Strava's `total_elevation_gain_m`. Rebuilt whole from Parquet.
        """
        summaries = with_schema(activities, ACTIVITY_SCHEMA)
        metrics = with_schema(activity_metrics, ACTIVITY_METRICS_TABLE_SCHEMA)
        return weekly_summary_frame(summaries, metrics)

    return [activity_metrics_asset, daily_training_load_asset, weekly_summary_asset]
