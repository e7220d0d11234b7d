"""Training load over time: the Performance Management Chart (CTL/ATL/TSB) and weekly summaries."""

from __future__ import annotations

import datetime as dt

import polars as pl

#: Time constant (days) of Chronic Training Load, "fitness" (TrainingPeaks PMC default).
CTL_DAYS: int = 42
#: Time constant (days) of Acute Training Load, "fatigue" (TrainingPeaks PMC default).
ATL_DAYS: int = 7

DAILY_TRAINING_LOAD_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "load": pl.Float64(),
    "ctl": pl.Float64(),
    "atl": pl.Float64(),
    "tsb": pl.Float64(),
}

WEEKLY_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "iso_year": pl.Int32(),
    "iso_week": pl.Int32(),
    "week_start": pl.Date(),
    "sport_type": pl.String(),
    "activity_count": pl.Int64(),
    "distance_m": pl.Float64(),
    "moving_time_s": pl.Float64(),
    "elevation_gain_m": pl.Float64(),
    "load": pl.Float64(),
}

_WEEKLY_SUMS = ("distance_m", "moving_time_s", "elevation_gain_m", "load")


def _as_date(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Expression for ``column`` as a Date: Date as is, Datetime by its date part (in its own zone)."""
    dtype = frame.schema[column]
    if dtype == pl.Date() or dtype == pl.Null():
        return pl.col(column).cast(pl.Date)
    if isinstance(dtype, pl.Datetime):
        return pl.col(column).dt.date()
    raise TypeError(f"column {column!r} must be Date or Datetime, got {dtype}")


def _loads_by_day(days: pl.DataFrame) -> dict[dt.date, float]:
    missing = {"date", "load"} - set(days.columns)
    if missing:
        raise ValueError(f"days is missing columns {sorted(missing)}")
    if days.height == 0:
        return {}
    date_expr = _as_date(days, "date")
    per_day = (
        days.select(date_expr.alias("date"), pl.col("load").cast(pl.Float64).fill_nan(None))
        .drop_nulls("date")
        .group_by("date")
        .agg(pl.col("load").sum())
    )
    return dict(zip(per_day["date"].to_list(), per_day["load"].to_list(), strict=True))


def daily_training_load(
    days: pl.DataFrame,
    start: dt.date,
    end: dt.date,
    *,
    ctl_days: int = CTL_DAYS,
    atl_days: int = ATL_DAYS,
) -> pl.DataFrame:
    """One row per calendar day from ``start`` to ``end`` inclusive: load, CTL, ATL and TSB.

    ``days`` has a ``date`` column (Date, or Datetime whose date part is used) and a ``load`` column
    (TSS or TRIMP per activity, see ``activity_metrics``); several activities on one day are summed,
    days without activities (rest days) have load 0, and null load counts as 0.

    This is the TrainingPeaks Performance Management Chart (Coggan's adaptation of Banister's
    impulse-response model):

    * ``CTL_t = CTL_{t-1} + (load_t − CTL_{t-1}) / 42`` ("fitness"),
    * ``ATL_t = ATL_{t-1} + (load_t − ATL_{t-1}) / 7`` ("fatigue"),
    * ``TSB_t = CTL_{t-1} − ATL_{t-1}`` ("form").

    The smoothing factor is ``1/42`` (``1/7``), the form TrainingPeaks publishes and that athletes
    compare against, not Banister's exact exponential decay ``1 − e^(−1/42)`` (0.02353 vs 0.02381, a
    ~1 % difference in the response to one day's load).  TSB uses *yesterday's* CTL and ATL, as
    TrainingPeaks does: form is how fresh the athlete is on the morning of day ``t``, before that
    day's training.  Both averages start from 0 on the day before the first day computed, which is
    the earlier of ``start`` and the first date in ``days``: history before ``start`` warms the
    averages up but is not returned; loads after ``end`` are ignored.
    """
    if ctl_days <= 0 or atl_days <= 0:
        raise ValueError("ctl_days and atl_days must be positive")
    if start > end:
        return pl.DataFrame(schema=DAILY_TRAINING_LOAD_SCHEMA)
    loads = _loads_by_day(days)
    first = min([start, *loads])
    rows: dict[str, list[object]] = {name: [] for name in DAILY_TRAINING_LOAD_SCHEMA}
    ctl = atl = 0.0
    day = first
    while day <= end:
        load = loads.get(day, 0.0)
        tsb = ctl - atl
        ctl += (load - ctl) / ctl_days
        atl += (load - atl) / atl_days
        if day >= start:
            for name, value in (("date", day), ("load", load), ("ctl", ctl), ("atl", atl), ("tsb", tsb)):
                rows[name].append(value)
        day += dt.timedelta(days=1)
    return pl.DataFrame(rows, schema=DAILY_TRAINING_LOAD_SCHEMA)


def weekly_summary(
    activities_with_metrics: pl.DataFrame,
    *,
    date_column: str = "start_date_local",
) -> pl.DataFrame:
    """Totals per ISO week and sport type: activity count, distance, moving time, climbing and load.

    Weeks are ISO 8601 weeks (Monday to Sunday; week 1 is the week containing the year's first
    Thursday), identified by ``iso_year``/``iso_week`` — which differ from the calendar year around
    New Year, e.g. Sunday 2021-01-03 is in 2020-W53 — and by ``week_start``, that week's Monday.
    ``date_column`` (default ``start_date_local``: Strava's local start time, so an early-morning
    run counts on the athlete's own calendar day) may be a Date or a Datetime.  The metric columns
    ``distance_m``, ``moving_time_s``, ``elevation_gain_m`` and ``load`` are summed with nulls (and
    missing columns) counting as 0.  Only weeks with at least one activity appear, sorted by
    ``week_start`` then ``sport_type``; schema :data:`WEEKLY_SUMMARY_SCHEMA`.
    """
    missing = {date_column, "sport_type"} - set(activities_with_metrics.columns)
    if missing:
        raise ValueError(f"activities_with_metrics is missing columns {sorted(missing)}")
    date_expr = _as_date(activities_with_metrics, date_column)
    sums = [
        (pl.col(c).cast(pl.Float64) if c in activities_with_metrics.columns else pl.lit(None, pl.Float64))
        .fill_nan(None)
        .alias(c)
        for c in _WEEKLY_SUMS
    ]
    frame = activities_with_metrics.select(
        date_expr.alias("_date"), pl.col("sport_type").cast(pl.String), *sums
    ).drop_nulls("_date")
    out = (
        frame.with_columns(
            pl.col("_date").dt.iso_year().cast(pl.Int32).alias("iso_year"),
            pl.col("_date").dt.week().cast(pl.Int32).alias("iso_week"),
            pl.col("_date").dt.truncate("1w").alias("week_start"),
        )
        .group_by("iso_year", "iso_week", "week_start", "sport_type")
        .agg(
            pl.len().cast(pl.Int64).alias("activity_count"),
            *(pl.col(c).sum().cast(pl.Float64) for c in _WEEKLY_SUMS),
        )
        .sort("week_start", "sport_type", nulls_last=True)
    )
    return out.select(list(WEEKLY_SUMMARY_SCHEMA)).cast(WEEKLY_SUMMARY_SCHEMA)
