"""Derived tables, built only from the typed layer (never an API request): per-activity metrics, the
daily fitness/fatigue/form series and weekly totals.

``activity_metrics`` is daily-partitioned like the activities it summarises, so re-materialising a day
recomputes that day's activities only. ``daily_training_load`` and ``weekly_summary`` are unpartitioned:
CTL/ATL are a recurrence (a change on one day shifts every later day) and weeks straddle partitions, so
both are rebuilt whole from Parquet, which is cheap (one row per activity in, one row per day/week out).
"""

from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from strava_pipeline.assets.partitions import PARTITION_COLUMN, STREAMS_BACKFILL_POLICY
from strava_pipeline.io_managers.metadata import schema_of
from strava_pipeline.io_managers.warehouse import WAREHOUSE_KINDS
from strava_pipeline.transforms.activities import ACTIVITY_SCHEMA
from strava_pipeline.transforms.metrics import (
    ACTIVITY_METRICS_SCHEMA,
    DAILY_TRAINING_LOAD_SCHEMA,
    WEEKLY_SUMMARY_SCHEMA,
    AthleteSettings,
    activity_metrics,
    daily_training_load,
    weekly_summary,
)

GROUP = "derived"

#: ``strava.activity_metrics``: the activity's keys, then every metric of ``activity_metrics``.
ACTIVITY_METRICS_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "activity_id": pl.Int64(),
    "activity_date": pl.Date(),
    "sport_type": pl.String(),
    **ACTIVITY_METRICS_SCHEMA,
}


class MetricsConfig(dg.Config):
    """Heart-rate settings Strava's API does not expose (defaults: 190 and 60 bpm)."""

    max_hr: float | None = None
    """Maximum heart rate, bpm: TRIMP and the fallback %HRmax zones."""
    resting_hr: float | None = None
    """Resting heart rate, bpm: TRIMP's heart-rate reserve."""


def with_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` restricted and cast to ``schema``; an input that never landed (no columns) becomes empty."""
    if frame.width == 0:
        return pl.DataFrame(schema=schema)
    return frame.select(list(schema)).cast(schema)  # type: ignore[arg-type]


def athlete_settings(athlete: pl.DataFrame, max_hr: float | None = None, resting_hr: float | None = None
                     ) -> AthleteSettings:
    """Settings from the typed athlete row; Strava's defaults when the athlete has not landed yet."""
    if athlete.is_empty():
        return AthleteSettings(max_hr=max_hr, resting_hr=resting_hr)
    return AthleteSettings.from_athlete_row(athlete.row(0, named=True), max_hr=max_hr, resting_hr=resting_hr)


def activity_metrics_frame(streams: pl.DataFrame, activities: pl.DataFrame, settings: AthleteSettings
                           ) -> pl.DataFrame:
    """One metrics row per activity that has samples in ``streams`` (typed ``activity_streams`` rows)."""
    if streams.is_empty() or "activity_id" not in streams.columns:
        return pl.DataFrame(schema=ACTIVITY_METRICS_TABLE_SCHEMA)
    sports: dict[int, Any] = {}
    if not activities.is_empty():
        sports = dict(activities.select("activity_id", "sport_type").iter_rows())
    rows: list[dict[str, Any]] = []
    for (activity_id,), samples in streams.partition_by("activity_id", as_dict=True, maintain_order=True).items():
        rows.append(
            {
                "activity_id": activity_id,
                "activity_date": samples.get_column(PARTITION_COLUMN)[0],
                "sport_type": sports.get(activity_id),
                **activity_metrics(samples, settings),
            }
        )
    return pl.DataFrame(rows, schema=ACTIVITY_METRICS_TABLE_SCHEMA).sort(PARTITION_COLUMN, "activity_id")


def training_load_frame(metrics: pl.DataFrame, activities: pl.DataFrame, last_day: date | None) -> pl.DataFrame:
    """CTL/ATL/TSB for every day from the first activity through ``last_day`` (rest days load 0)."""
    firsts = [f[PARTITION_COLUMN].min() for f in (activities, metrics) if not f.is_empty()]
    firsts = [d for d in firsts if d is not None]
    if not firsts or last_day is None:
        return pl.DataFrame(schema=DAILY_TRAINING_LOAD_SCHEMA)
    days = metrics.select(pl.col(PARTITION_COLUMN).alias("date"), pl.col("load"))
    return daily_training_load(days, min(firsts), max(last_day, *firsts))


def weekly_summary_frame(activities: pl.DataFrame, metrics: pl.DataFrame) -> pl.DataFrame:
    """Weekly totals per sport of every activity; load and climbing from the stream metrics where present.

    An activity without metrics (manual, or no streams) still counts, with load 0 and Strava's own
    ``total_elevation_gain_m``; so does one whose streams have no altitude. Distance and moving time
    are Strava's summary figures, which exist for every activity.
    """
    if activities.is_empty():
        return pl.DataFrame(schema=WEEKLY_SUMMARY_SCHEMA)
    joined = activities.select(
        "activity_id", "start_date_local", "sport_type", "distance_m", "moving_time_s", "total_elevation_gain_m"
    ).join(
        metrics.select("activity_id", pl.col("elevation_gain_m").alias("_elev"), pl.col("load")),
        on="activity_id",
        how="left",
    )
    frame = joined.with_columns(
        pl.coalesce("_elev", "total_elevation_gain_m").alias("elevation_gain_m"),
        pl.col("load").fill_null(0.0),
    )
    return weekly_summary(frame, date_column="start_date_local")


def _declared(schema: dict[str, pl.DataType], **extra: Any) -> dict[str, Any]:
    """Definition metadata: the table's columns show in the UI before the first materialisation."""
    return {"dagster/column_schema": schema_of(schema), **extra}


def build_derived_assets(partitions_def: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The derived assets for a given partitioning (it depends on STRAVA_HISTORY_START)."""
    all_days = dg.AllPartitionMapping()

    @dg.asset(
        name="activity_metrics",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        io_manager_key="warehouse",
        partitions_def=partitions_def,
        backfill_policy=STREAMS_BACKFILL_POLICY,
        metadata=_declared(ACTIVITY_METRICS_TABLE_SCHEMA, partition_column=PARTITION_COLUMN),
        description=(
            "One row per activity with streams: moving time, elevation gain (smoothed, hysteresis), "
            "average/max heart rate, time in the athlete's five HR zones, best efforts (400 m … marathon, "
            "elapsed seconds), power curve (5 s … 60 min), NP, IF, TSS, TRIMP and the training `load` "
            "(TSS with power and FTP, else TRIMP; `load_source` says which). Built from `activity_streams`, "
            "`activities` and `athlete` only: no API calls."
        ),
    )
    def activity_metrics_asset(
        context: dg.AssetExecutionContext,
        config: MetricsConfig,
        activity_streams: pl.DataFrame,
        activities: pl.DataFrame,
        athlete: pl.DataFrame,
    ) -> pl.DataFrame:
        settings = athlete_settings(athlete, config.max_hr, config.resting_hr)
        frame = activity_metrics_frame(activity_streams, activities, settings)
        context.log.info(f"metrics for {frame.height} activities (FTP {settings.ftp_w or 'unset'})")
        return frame

    @dg.asset(
        name="daily_training_load",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        io_manager_key="warehouse",
        ins={
            "activity_metrics": dg.AssetIn(partition_mapping=all_days),
            "activities": dg.AssetIn(partition_mapping=all_days),
        },
        metadata=_declared(DAILY_TRAINING_LOAD_SCHEMA),
        description=(
            "The Performance Management Chart: one row per calendar day, without gaps, from the first "
            "activity through today (the last partition); rest days have load 0. `ctl` = fitness (42-day), "
            "`atl` = fatigue (7-day), `tsb` = form (yesterday's CTL − ATL). Unpartitioned because each day "
            "depends on every earlier one: rebuilt whole from `activity_metrics` in Parquet."
        ),
    )
    def daily_training_load_asset(activity_metrics: pl.DataFrame, activities: pl.DataFrame) -> pl.DataFrame:
        metrics = with_schema(activity_metrics, ACTIVITY_METRICS_TABLE_SCHEMA)
        summaries = with_schema(activities, {"activity_id": pl.Int64(), PARTITION_COLUMN: pl.Date()})
        last_key = partitions_def.get_last_partition_key()
        return training_load_frame(metrics, summaries, date.fromisoformat(last_key) if last_key else None)

    @dg.asset(
        name="weekly_summary",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        io_manager_key="warehouse",
        ins={
            "activities": dg.AssetIn(partition_mapping=all_days),
            "activity_metrics": dg.AssetIn(partition_mapping=all_days),
        },
        metadata=_declared(WEEKLY_SUMMARY_SCHEMA),
        description=(
            "Totals per ISO week (Monday start, local time) and sport: activity count, distance, moving "
            "time, elevation gain and training load. Every activity counts; one without stream metrics "
            "(manual entries) has load 0 and Strava's `total_elevation_gain_m`. Rebuilt whole from Parquet."
        ),
    )
    def weekly_summary_asset(activities: pl.DataFrame, activity_metrics: pl.DataFrame) -> pl.DataFrame:
        summaries = with_schema(activities, ACTIVITY_SCHEMA)
        metrics = with_schema(activity_metrics, ACTIVITY_METRICS_TABLE_SCHEMA)
        return weekly_summary_frame(summaries, metrics)

    return [activity_metrics_asset, daily_training_load_asset, weekly_summary_asset]
