"""Daily training load (TrainingPeaks PMC: CTL/ATL/TSB) and ISO-week summaries."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strava_pipeline.transforms.metrics import (
    DAILY_TRAINING_LOAD_SCHEMA,
    WEEKLY_SUMMARY_SCHEMA,
    daily_training_load,
    weekly_summary,
)

D = dt.date


def loads(rows: list[tuple[dt.date, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"date": pl.Date, "load": pl.Float64}, orient="row")


# --- daily training load -----------------------------------------------------------------------


def test_ctl_atl_after_one_day_of_100_from_zero() -> None:
    # TrainingPeaks PMC: CTL_t = CTL_{t-1} + (load − CTL_{t-1})/42 → 100/42 ≈ 2.38; ATL → 100/7 ≈ 14.29.
    out = daily_training_load(loads([(D(2024, 3, 1), 100.0)]), D(2024, 3, 1), D(2024, 3, 2))
    first, second = out.row(0, named=True), out.row(1, named=True)
    assert first["ctl"] == pytest.approx(2.38, abs=0.005)
    assert first["ctl"] == pytest.approx(100 / 42)
    assert first["atl"] == pytest.approx(100 / 7)
    # TSB uses yesterday's CTL and ATL (form on the morning of the day): 0 on day 1.
    assert first["tsb"] == 0.0
    assert second["tsb"] == pytest.approx(100 / 42 - 100 / 7)
    # A rest day decays both: CTL × 41/42, ATL × 6/7.
    assert second["load"] == 0.0
    assert second["ctl"] == pytest.approx(100 / 42 * 41 / 42)
    assert second["atl"] == pytest.approx(100 / 7 * 6 / 7)


def test_constant_daily_load_converges_to_that_load() -> None:
    start = D(2023, 1, 1)
    days = loads([(start + dt.timedelta(days=i), 80.0) for i in range(400)])
    last = daily_training_load(days, start, start + dt.timedelta(days=399)).row(-1, named=True)
    assert last["ctl"] == pytest.approx(80.0, rel=1e-3)
    assert last["atl"] == pytest.approx(80.0, rel=1e-9)
    assert last["tsb"] == pytest.approx(0.0, abs=0.1)


def test_same_day_activities_are_summed_and_null_load_is_zero() -> None:
    days = loads([(D(2024, 1, 1), 40.0), (D(2024, 1, 1), 60.0), (D(2024, 1, 2), None)])
    out = daily_training_load(days, D(2024, 1, 1), D(2024, 1, 2))
    assert out["load"].to_list() == [100.0, 0.0]


def test_history_before_start_warms_up_but_is_not_returned() -> None:
    days = loads([(D(2024, 1, 1), 100.0), (D(2024, 2, 1), 50.0)])
    out = daily_training_load(days, D(2024, 1, 2), D(2024, 1, 3))
    assert out["date"].to_list() == [D(2024, 1, 2), D(2024, 1, 3)]
    assert out["ctl"][0] == pytest.approx(100 / 42 * 41 / 42)
    assert out["tsb"][0] == pytest.approx(100 / 42 - 100 / 7)


def test_datetime_dates_empty_inputs_and_schema() -> None:
    days = pl.DataFrame(
        {"date": [dt.datetime(2024, 5, 5, 7, 30)], "load": [42]}, schema={"date": pl.Datetime, "load": pl.Int64}
    )
    out = daily_training_load(days, D(2024, 5, 5), D(2024, 5, 5))
    assert out["ctl"].to_list() == [pytest.approx(1.0)]
    assert out.schema == pl.Schema(DAILY_TRAINING_LOAD_SCHEMA)
    empty = daily_training_load(loads([]), D(2024, 1, 1), D(2024, 1, 7))
    assert empty.height == 7 and empty["load"].sum() == 0 and empty["ctl"].sum() == 0
    assert daily_training_load(loads([]), D(2024, 1, 7), D(2024, 1, 1)).height == 0
    with pytest.raises(ValueError, match="missing"):
        daily_training_load(pl.DataFrame({"day": [D(2024, 1, 1)]}), D(2024, 1, 1), D(2024, 1, 1))


@given(
    st.lists(st.tuples(st.dates(D(2020, 1, 1), D(2020, 12, 31)), st.floats(0, 500)), max_size=50),
    st.dates(D(2020, 1, 1), D(2020, 12, 31)),
    st.integers(min_value=0, max_value=400),
)
def test_daily_load_has_no_gaps_and_rest_days_are_zero(
    rows: list[tuple[dt.date, float]], start: dt.date, span: int
) -> None:
    end = start + dt.timedelta(days=span)
    out = daily_training_load(loads(rows), start, end)
    assert out["date"].to_list() == [start + dt.timedelta(days=i) for i in range(span + 1)]
    totals: dict[dt.date, float] = {}
    for day, value in rows:
        totals[day] = totals.get(day, 0.0) + value
    for day, load in zip(out["date"].to_list(), out["load"].to_list(), strict=True):
        assert load == pytest.approx(totals.get(day, 0.0))
    assert (out["ctl"] >= 0).all() and (out["atl"] >= 0).all()


# --- weekly summary ----------------------------------------------------------------------------


def activities(rows: list[tuple[object, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "start_date_local": [r[0] for r in rows],
            "sport_type": [r[1] for r in rows],
            "distance_m": [r[2] for r in rows],
            "moving_time_s": [3600.0] * len(rows),
            "elevation_gain_m": [100.0] * len(rows),
            "load": [50.0] * len(rows),
        }
    )


def test_iso_week_boundaries_follow_iso_8601() -> None:
    # ISO 8601: weeks start on Monday and week 1 contains the year's first Thursday, so Sunday
    # 2021-01-03 is in 2020-W53 (which started Monday 2020-12-28) and Monday 2021-01-04 starts 2021-W01.
    out = weekly_summary(
        activities(
            [
                (dt.datetime(2020, 12, 28, 6, 0), "Run", 5000.0),
                (dt.datetime(2021, 1, 3, 23, 59), "Run", 10000.0),
                (dt.datetime(2021, 1, 4, 0, 1), "Run", 8000.0),
                (dt.datetime(2021, 1, 4, 18, 0), "Ride", 40000.0),
            ]
        )
    )
    assert out.schema == pl.Schema(WEEKLY_SUMMARY_SCHEMA)
    assert out.select("iso_year", "iso_week", "week_start", "sport_type", "activity_count", "distance_m").rows() == [
        (2020, 53, D(2020, 12, 28), "Run", 2, 15000.0),
        (2021, 1, D(2021, 1, 4), "Ride", 1, 40000.0),
        (2021, 1, D(2021, 1, 4), "Run", 1, 8000.0),
    ]
    assert out["moving_time_s"].to_list() == [7200.0, 3600.0, 3600.0]
    assert out["elevation_gain_m"].to_list() == [200.0, 100.0, 100.0]
    assert out["load"].to_list() == [100.0, 50.0, 50.0]


def test_iso_year_differs_from_calendar_year_at_the_end_of_december() -> None:
    # 2024-12-30 (Monday) is in 2025-W01.
    out = weekly_summary(activities([(D(2024, 12, 30), "Swim", 1500.0)]))
    assert out.select("iso_year", "iso_week", "week_start").row(0) == (2025, 1, D(2024, 12, 30))


def test_weekly_summary_treats_null_and_missing_metrics_as_zero() -> None:
    frame = pl.DataFrame({"start_date_local": [D(2024, 6, 3), D(2024, 6, 4)], "sport_type": ["Walk", "Walk"]})
    frame = frame.with_columns(distance_m=pl.Series([None, 2000.0]))
    out = weekly_summary(frame)
    assert out.row(0, named=True) == {
        "iso_year": 2024,
        "iso_week": 23,
        "week_start": D(2024, 6, 3),
        "sport_type": "Walk",
        "activity_count": 2,
        "distance_m": 2000.0,
        "moving_time_s": 0.0,
        "elevation_gain_m": 0.0,
        "load": 0.0,
    }
    assert weekly_summary(frame.clear()).height == 0
    with pytest.raises(ValueError, match="missing"):
        weekly_summary(frame.drop("sport_type"))


@given(st.lists(st.tuples(st.dates(D(2015, 1, 1), D(2030, 12, 31)), st.sampled_from(["Run", "Ride"])), max_size=40))
def test_weekly_summary_matches_python_isocalendar(rows: list[tuple[dt.date, str]]) -> None:
    out = weekly_summary(activities([(d, sport, 1.0) for d, sport in rows]))
    expected: dict[tuple[int, int, str], int] = {}
    for day, sport in rows:
        iso = day.isocalendar()
        expected[(iso.year, iso.week, sport)] = expected.get((iso.year, iso.week, sport), 0) + 1
    got = {(r["iso_year"], r["iso_week"], r["sport_type"]): r["activity_count"] for r in out.iter_rows(named=True)}
    assert got == expected
    for r in out.iter_rows(named=True):
        assert r["week_start"].weekday() == 0
        assert r["week_start"].isocalendar()[:2] == (r["iso_year"], r["iso_week"])
