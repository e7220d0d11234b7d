"""The derived-table builders on small hand-made frames."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from strava_pipeline.transforms.metrics import DAILY_TRAINING_LOAD_SCHEMA, WEEKLY_SUMMARY_SCHEMA
from strava_pipeline.transforms.training import (
    ACTIVITY_METRICS_TABLE_SCHEMA,
    training_load_frame,
    weekly_summary_frame,
    with_schema,
)


def _activities() -> pl.DataFrame:
    return pl.DataFrame({
        "activity_id": [1, 2, 3],
        "activity_date": [date(2024, 1, 1), date(2024, 1, 3), date(2024, 1, 3)],
        "start_date_local": [datetime(2024, 1, 1, 7), datetime(2024, 1, 3, 7), datetime(2024, 1, 3, 18)],
        "sport_type": ["Run", "Run", "Run"],
        "distance_m": [5000.0, 10000.0, 3000.0],
        "moving_time_s": [1500, 3000, 900],
        "total_elevation_gain_m": [10.0, 20.0, 30.0],
    })


def _metrics() -> pl.DataFrame:
    # Activity 1 is manual (no metrics); activity 3 has streams without altitude.
    return pl.DataFrame({
        "activity_id": [2, 3], "activity_date": [date(2024, 1, 3)] * 2, "sport_type": ["Run", "Run"],
        "elevation_gain_m": [25.0, None], "load": [80.0, 20.0],
    })


def test_weekly_summary_counts_activities_without_metrics_with_strava_fallbacks() -> None:
    out = weekly_summary_frame(_activities(), _metrics())
    assert out.schema == pl.Schema(WEEKLY_SUMMARY_SCHEMA)
    row = out.row(0, named=True)
    assert out.height == 1 and row["activity_count"] == 3 and row["week_start"] == date(2024, 1, 1)
    assert row["distance_m"] == 18000.0 and row["moving_time_s"] == 5400.0
    assert row["elevation_gain_m"] == 10.0 + 25.0 + 30.0  # Strava's figure where streams have none
    assert row["load"] == 100.0  # the manual activity counts with load 0


def test_training_load_starts_at_the_first_activity_even_without_metrics_and_runs_to_the_last_day() -> None:
    out = training_load_frame(_metrics(), _activities(), date(2024, 1, 10))
    assert out.schema == pl.Schema(DAILY_TRAINING_LOAD_SCHEMA)
    assert out.get_column("date").to_list() == [date(2024, 1, d) for d in range(1, 11)]
    assert out.get_column("load").to_list() == [0.0, 0.0, 100.0] + [0.0] * 7
    assert out.filter(pl.col("date") == date(2024, 1, 3)).get_column("ctl").item() == pytest.approx(100 / 42)


def test_empty_inputs_give_empty_tables_with_their_schema() -> None:
    no_columns = pl.DataFrame()
    metrics = with_schema(no_columns, ACTIVITY_METRICS_TABLE_SCHEMA)
    assert metrics.is_empty() and metrics.columns == list(ACTIVITY_METRICS_TABLE_SCHEMA)
    activities = with_schema(no_columns, {"activity_id": pl.Int64(), "activity_date": pl.Date()})
    assert training_load_frame(metrics, activities, date(2024, 1, 1)).is_empty()
    assert weekly_summary_frame(_activities().clear(), metrics).is_empty()
