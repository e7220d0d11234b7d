"""Derived tables as pure functions of the typed layer: per-activity metrics, the daily fitness/fatigue/form
series and weekly totals. The Dagster assets in ``defs.assets.training`` only wire these to their inputs.
"""

from datetime import date
from typing import Any

import polars as pl

from strava_pipeline.transforms.fields import PARTITION_COLUMN
from strava_pipeline.transforms.metrics import (
    ACTIVITY_METRICS_SCHEMA,
    DAILY_TRAINING_LOAD_SCHEMA,
    WEEKLY_SUMMARY_SCHEMA,
    AthleteSettings,
    activity_metrics,
    daily_training_load,
    weekly_summary,
)

#: ``strava.activity_metrics``: the activity's keys, then every metric of ``activity_metrics``.
ACTIVITY_METRICS_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "activity_id": pl.Int64(),
    "activity_date": pl.Date(),
    "sport_type": pl.String(),
    **ACTIVITY_METRICS_SCHEMA,
}


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


