"""activity_metrics: one metrics row per activity, composed from its streams and athlete settings."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strava_pipeline.transforms.metrics import (
    ACTIVITY_METRICS_SCHEMA,
    DEFAULT_MAX_HR,
    AthleteSettings,
    activity_metrics,
    default_hr_zones,
)

STREAM_SCHEMA = {
    "time_s": pl.Int64,
    "distance_m": pl.Float64,
    "altitude_m": pl.Float64,
    "heartrate_bpm": pl.Float64,
    "cadence_rpm": pl.Float64,
    "watts": pl.Float64,
    "velocity_mps": pl.Float64,
    "moving": pl.Boolean,
    "lat": pl.Float64,
    "lng": pl.Float64,
    "grade_pct": pl.Float64,
    "temp_c": pl.Float64,
}

RIDER = AthleteSettings(ftp_w=250.0, max_hr=190, resting_hr=50, sex="M")


def ride(
    seconds: int,
    *,
    watts: float | None = 250.0,
    hr: float | None = 150.0,
    speed: float = 10.0,
    pause: tuple[int, int] | None = None,
    step_s: int = 1,
) -> pl.DataFrame:
    """A synthetic ride sampled every ``step_s`` s; during ``pause`` (start, end) the rider is stopped."""
    rows = []
    dist = 0.0
    for t in range(0, seconds + 1, step_s):
        stopped = pause is not None and pause[0] <= t < pause[1]
        rows.append(
            {
                "time_s": t,
                "distance_m": dist,
                "altitude_m": 100.0 + (t % 600) / 60,  # 10 m climbs, then a drop, every 10 min
                "heartrate_bpm": hr,
                "cadence_rpm": None if stopped else 90.0,
                "watts": 0.0 if stopped and watts is not None else watts,
                "velocity_mps": 0.0 if stopped else speed,
                "moving": not stopped,
                "lat": None,
                "lng": None,
                "grade_pct": None,
                "temp_c": 20.0,
            }
        )
        if not stopped:
            dist += speed * step_s
    return pl.DataFrame(rows, schema=STREAM_SCHEMA)


def test_row_keys_and_schema() -> None:
    row = activity_metrics(ride(600), RIDER)
    assert list(row) == list(ACTIVITY_METRICS_SCHEMA)
    expected = (
        ["moving_time_s", "elevation_gain_m", "avg_heartrate_bpm", "max_heartrate_bpm"]
        + [f"hr_zone_{k}_s" for k in range(1, 6)]
        + ["best_400m_s", "best_1km_s", "best_1mile_s", "best_5km_s", "best_10km_s"]
        + ["best_half_marathon_s", "best_marathon_s"]
        + ["power_5s_w", "power_1min_w", "power_5min_w", "power_20min_w", "power_60min_w"]
        + ["normalized_power_w", "intensity_factor", "tss", "trimp", "load", "load_source"]
    )
    assert list(ACTIVITY_METRICS_SCHEMA) == expected
    frame = pl.DataFrame([row], schema=ACTIVITY_METRICS_SCHEMA)
    assert frame.schema == pl.Schema(ACTIVITY_METRICS_SCHEMA)


def test_one_hour_at_ftp_ride() -> None:
    row = activity_metrics(ride(3600), RIDER)
    assert row["moving_time_s"] == 3600
    assert row["power_60min_w"] == pytest.approx(250.0)
    assert row["normalized_power_w"] == pytest.approx(250.0)
    assert row["intensity_factor"] == pytest.approx(1.0)
    assert row["tss"] == pytest.approx(100.0)  # Coggan: 1 h at FTP = 100 TSS
    assert row["load"] == row["tss"] and row["load_source"] == "tss"
    assert row["best_10km_s"] == pytest.approx(1000.0)  # 36 km at 10 m/s
    assert row["best_marathon_s"] is None
    assert row["avg_heartrate_bpm"] == row["max_heartrate_bpm"] == 150
    # 150 bpm with HRmax 190: default zones 114/133/152/171 → zone 3 for the whole hour.
    assert [row[f"hr_zone_{k}_s"] for k in range(1, 6)] == [0, 0, 3600, 0, 0]
    hrr = (150 - 50) / (190 - 50)
    assert row["trimp"] == pytest.approx(60 * hrr * 0.64 * math.exp(1.92 * hrr))
    assert row["elevation_gain_m"] == pytest.approx(60.0, abs=3.0)  # six ~10 m climbs, smoothed


def test_pause_is_excluded_from_moving_and_zone_time_but_not_from_best_efforts() -> None:
    # 300 s riding (3 km), a 120 s stop, 380 s riding (3.8 km); samples every 2 s.
    row = activity_metrics(ride(800, pause=(300, 420), step_s=2), RIDER)
    assert row["moving_time_s"] == 680
    assert sum(row[f"hr_zone_{k}_s"] for k in range(1, 6)) == 680
    # Best efforts use elapsed time: every 5 km window spans the stop (500 s riding + 120 s stopped).
    assert row["best_5km_s"] == pytest.approx(620.0)
    assert row["best_1km_s"] == pytest.approx(100.0)
    # Power is resampled over elapsed time with the stop as 0 W: the 5 min MMP is clean, NP is diluted,
    # and TSS uses the same 800 s the NP was computed on.
    assert row["power_5min_w"] == pytest.approx(250.0)
    assert row["power_20min_w"] is None
    assert 200 < row["normalized_power_w"] < 250
    np_w = row["normalized_power_w"]
    assert row["tss"] == pytest.approx(800 * np_w * (np_w / 250) / (250 * 3600) * 100)


def test_no_ftp_keeps_power_curve_but_not_if_tss_and_load_falls_back_to_trimp() -> None:
    row = activity_metrics(ride(900), AthleteSettings(max_hr=190, resting_hr=50))
    assert row["power_5min_w"] == pytest.approx(250.0)
    assert row["normalized_power_w"] == pytest.approx(250.0)
    assert row["intensity_factor"] is None and row["tss"] is None
    assert row["load"] == row["trimp"] is not None
    assert row["load_source"] == "trimp"


def test_no_power_stream_and_no_heart_rate() -> None:
    row = activity_metrics(ride(900, watts=None, hr=None), RIDER)
    assert all(row[k] is None for k in ACTIVITY_METRICS_SCHEMA if k.startswith("power_"))
    assert row["normalized_power_w"] is None and row["tss"] is None
    assert row["avg_heartrate_bpm"] is None and row["max_heartrate_bpm"] is None
    assert all(row[f"hr_zone_{k}_s"] is None for k in range(1, 6))
    assert row["trimp"] is None and row["load"] is None and row["load_source"] is None
    assert row["moving_time_s"] == 900
    assert row["best_5km_s"] == pytest.approx(500.0)


def test_empty_streams() -> None:
    for streams in (pl.DataFrame(), pl.DataFrame(schema=STREAM_SCHEMA), pl.DataFrame({"time_s": [None]})):
        row = activity_metrics(streams, RIDER)
        assert row == dict.fromkeys(ACTIVITY_METRICS_SCHEMA)


def test_short_activity_has_no_best_efforts_or_long_power() -> None:
    row = activity_metrics(ride(20), RIDER)  # 200 m, 20 s
    assert all(row[k] is None for k in ACTIVITY_METRICS_SCHEMA if k.startswith("best_"))
    assert row["power_5s_w"] == pytest.approx(250.0)
    assert row["power_1min_w"] is None
    assert row["normalized_power_w"] is None  # NP needs 30 s
    assert row["load_source"] == "trimp"


def test_athlete_zones_are_used_when_there_are_five() -> None:
    strava_zones = [{"min": 0, "max": 100}, {"min": 100, "max": 120}, {"min": 120, "max": 140},
                    {"min": 140, "max": 160}, {"min": 160, "max": -1}]  # fmt: skip
    row = activity_metrics(ride(100), AthleteSettings(hr_zones=strava_zones))
    assert row["hr_zone_4_s"] == 100
    assert AthleteSettings(hr_zones=strava_zones[:3]).effective_hr_zones() == default_hr_zones(DEFAULT_MAX_HR)


def test_unsorted_rows_and_missing_columns() -> None:
    streams = ride(120).select("time_s", "distance_m", "heartrate_bpm").reverse()
    row = activity_metrics(streams, RIDER)
    assert row["moving_time_s"] == 120  # no moving stream: capped elapsed time
    assert row["avg_heartrate_bpm"] == 150
    assert row["elevation_gain_m"] is None and row["power_5s_w"] is None


stream_rows = st.lists(
    st.fixed_dictionaries(
        {
            "time_s": st.one_of(st.none(), st.integers(0, 20_000)),
            "distance_m": st.one_of(st.none(), st.floats(0, 50_000)),
            "altitude_m": st.one_of(st.none(), st.floats(-100, 4000)),
            "heartrate_bpm": st.one_of(st.none(), st.floats(30, 230)),
            "watts": st.one_of(st.none(), st.floats(0, 2000)),
            "moving": st.one_of(st.none(), st.booleans()),
        }
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(stream_rows, st.sampled_from([RIDER, AthleteSettings(), AthleteSettings(ftp_w=200, sex="F")]))
def test_streams_with_nulls_do_not_crash_and_fit_the_schema(rows: list[dict], athlete: AthleteSettings) -> None:
    schema = {k: STREAM_SCHEMA[k] for k in ("time_s", "distance_m", "altitude_m", "heartrate_bpm", "watts", "moving")}
    row = activity_metrics(pl.DataFrame(rows, schema=schema), athlete)
    frame = pl.DataFrame([row], schema=ACTIVITY_METRICS_SCHEMA)
    assert frame.height == 1
    numeric = [v for k, v in row.items() if k != "load_source" and v is not None]
    assert all(math.isfinite(v) and v >= 0 for v in numeric)
    zones = [row[f"hr_zone_{k}_s"] for k in range(1, 6)]
    if zones[0] is not None:
        assert sum(zones) <= row["moving_time_s"] + 1e-6


def test_settings_from_typed_athlete_row() -> None:
    row = {"ftp_w": 265, "sex": "F", **{f"hr_zone_{k}_min_bpm": b for k, b in enumerate([0, 120, 150, 165, 180], 1)}}
    athlete = AthleteSettings.from_athlete_row(row, max_hr=192, resting_hr=48)
    assert athlete == AthleteSettings(
        ftp_w=265.0,
        max_hr=192,
        resting_hr=48,
        sex="F",
        hr_zones=[
            {"min": 0, "max": 120},
            {"min": 120, "max": 150},
            {"min": 150, "max": 165},
            {"min": 165, "max": 180},
            {"min": 180, "max": -1},
        ],
    )
    bare = AthleteSettings.from_athlete_row({"ftp_w": None, "sex": None})
    assert bare == AthleteSettings()
    assert bare.effective_hr_zones() == default_hr_zones(DEFAULT_MAX_HR)


def test_settings_are_validated_when_built() -> None:
    with pytest.raises(ValueError, match="ftp_w"):
        AthleteSettings(ftp_w=0)
    with pytest.raises(ValueError, match="must exceed"):
        AthleteSettings(max_hr=150, resting_hr=160)
    with pytest.raises(ValueError, match="must exceed"):
        AthleteSettings(max_hr=55)  # below the default resting heart rate of 60
