"""complete_streams on small synthetic tracks whose true speed, grade and stops are known."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from strava_pipeline.transforms.recorded_streams import EARTH_RADIUS_M, RECORDING_SCHEMA, complete_streams

START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
METRE_DEG = math.degrees(1 / EARTH_RADIUS_M)  # one metre of latitude, in degrees


def track(n: int | None = None, **columns: list) -> pl.DataFrame:
    """A recording frame: the given columns, everything else null; ``time_s`` also fills ``timestamp``."""
    n = n if n is not None else len(next(iter(columns.values())))
    data = {}
    for column, dtype in RECORDING_SCHEMA.items():
        values = columns.get(column, [None] * n)
        data[column] = pl.Series(column, values, dtype=dtype)
    if "time_s" in columns and "timestamp" not in columns:
        stamps = [START + timedelta(seconds=t) for t in columns["time_s"]]
        data["timestamp"] = pl.Series(stamps, dtype=RECORDING_SCHEMA["timestamp"])
    return pl.DataFrame(data)


def test_constant_speed_from_distance() -> None:
    t = list(range(121))
    out = complete_streams(track(time_s=t, distance_m=[3.0 * s for s in t]))
    assert out["velocity_mps"][0] == 0.0
    assert out["velocity_mps"][1:].to_list() == pytest.approx([3.0] * 120)
    assert out["moving"].to_list() == [False] + [True] * 120
    assert out["grade_pct"].null_count() == 121  # no altitude, no grade
    assert out["distance_m"].to_list() == [3.0 * s for s in t]  # the file's distance is kept


def test_constant_speed_from_positions_alone() -> None:
    t = list(range(301))
    lat = [45.0 + 3.0 * s * METRE_DEG for s in t]  # due north, 3 m/s
    out = complete_streams(track(time_s=t, lat=lat, lng=[14.0] * 301))
    assert out["distance_m"][-1] == pytest.approx(900.0, rel=1e-6)
    assert out["velocity_mps"][1:].to_list() == pytest.approx([3.0] * 300, rel=1e-6)
    assert out["moving"][1:].all()


def test_smart_recording_keeps_its_speed() -> None:
    rng = random.Random(7)
    t = [0]
    for _ in range(200):
        t.append(t[-1] + rng.randint(1, 8))  # a device logging "when something changes"
    out = complete_streams(track(time_s=t, distance_m=[4.5 * s for s in t]))
    assert out["velocity_mps"][1:].to_list() == pytest.approx([4.5] * 200)
    assert out["moving"][1:].all()


def test_climb_gives_its_grade() -> None:
    t = list(range(241))
    d = [5.0 * s for s in t]
    out = complete_streams(track(time_s=t, distance_m=d, altitude_m=[100 + 0.08 * x for x in d]))
    assert out["grade_pct"].to_list() == pytest.approx([8.0] * 241)


def test_climb_then_descent() -> None:
    d = [float(x) for x in range(0, 2001, 4)]
    alt = [0.1 * x if x <= 1000 else 100 - 0.05 * (x - 1000) for x in d]
    out = complete_streams(track(time_s=list(range(len(d))), distance_m=d, altitude_m=alt))
    grade = dict(zip(d, out["grade_pct"], strict=True))
    assert grade[500.0] == pytest.approx(10.0)
    assert grade[1500.0] == pytest.approx(-5.0)
    assert -5.0 < grade[1000.0] < 10.0  # the window straddles the summit


def test_a_stop_is_not_moving() -> None:
    t = list(range(181))
    d = [3.0 * min(s, 60) + 3.0 * max(0, s - 120) for s in t]  # moves, stands 60 s, moves
    out = complete_streams(track(time_s=t, distance_m=d))
    moving = out["moving"].to_list()
    assert moving[1:61] == [True] * 60
    assert moving[61:121] == [False] * 60
    assert moving[121:] == [True] * 60
    assert out["velocity_mps"][70:121].to_list() == pytest.approx([0.0] * 51)


def test_a_noisy_gps_stop_is_not_moving() -> None:
    """GPS jitter (about a metre) while standing must not read as walking."""
    rng = random.Random(3)
    t = list(range(301))
    north = [2.5 * min(s, 100) + 2.5 * max(0, s - 200) for s in t]
    lat = [45.0 + (m + rng.uniform(-0.9, 0.9)) * METRE_DEG for m in north]
    lng = [14.0 + rng.uniform(-0.6, 0.6) * METRE_DEG / math.cos(math.radians(45)) for _ in t]
    out = complete_streams(track(time_s=t, lat=lat, lng=lng))
    moving = out["moving"].to_list()
    assert not any(moving[105:196])  # the stop, give or take the smoothing at its edges
    assert all(moving[5:96]) and all(moving[205:296])
    assert out["distance_m"][-1] == pytest.approx(500.0, rel=0.01)  # jitter while standing adds nothing


def test_an_auto_paused_gap_is_not_moving_even_if_the_device_reports_speed() -> None:
    t = [*range(61), *range(361, 421)]  # the device stopped recording for five minutes
    d = [3.0 * i for i in range(61)] + [180.0 + 3.0 * i for i in range(60)]
    out = complete_streams(track(time_s=t, distance_m=d, velocity_mps=[3.0] * len(t)))
    moving = out["moving"].to_list()
    assert moving[61] is False  # the sample ending the gap
    assert moving[62:] == [True] * 59
    assert out["velocity_mps"].to_list() == [3.0] * len(t)  # the file's speed is kept


def test_file_values_are_never_replaced() -> None:
    t = list(range(11))
    frame = track(time_s=t, distance_m=[2.0 * s for s in t], velocity_mps=[9.0] * 11, grade_pct=[1.5] * 11,
                  altitude_m=[float(s) for s in t], moving=[True] * 11)
    assert complete_streams(frame).equals(frame)


def test_partial_values_are_completed() -> None:
    t = list(range(11))
    speed = [None, 2.0, 2.0, None, 2.0, 2.0, 2.0, None, 2.0, 2.0, 2.0]
    out = complete_streams(track(time_s=t, distance_m=[2.0 * s for s in t], velocity_mps=speed))
    assert out["velocity_mps"].to_list() == pytest.approx([0.0] + [2.0] * 10)


def test_without_times_distance_and_grade_but_no_speed() -> None:
    n = 50
    lat = [45.0 + 10.0 * i * METRE_DEG for i in range(n)]
    out = complete_streams(track(n, lat=lat, lng=[14.0] * n, altitude_m=[200 + 0.5 * i for i in range(n)]))
    assert out["distance_m"][-1] == pytest.approx(490.0, rel=1e-6)
    assert out["grade_pct"].to_list() == pytest.approx([5.0] * n, rel=1e-4)
    assert out["velocity_mps"].null_count() == n
    assert out["moving"].null_count() == n


def test_no_position_no_distance_stays_null() -> None:
    out = complete_streams(track(time_s=list(range(30)), heartrate_bpm=[120] * 30))
    for column in ("distance_m", "velocity_mps", "grade_pct"):
        assert out[column].null_count() == 30
    assert out["moving"].to_list() == [False] + [True] * 29  # a stationary workout: its time is moving time


def test_samples_before_the_first_fix_start_at_zero() -> None:
    lat = [None, None, *[45.0 + 3.0 * i * METRE_DEG for i in range(20)]]
    out = complete_streams(track(time_s=list(range(22)), lat=lat, lng=[None, None, *[14.0] * 20]))
    assert out["distance_m"][:3].to_list() == [0.0, 0.0, 0.0]
    assert out["distance_m"][-1] == pytest.approx(57.0, rel=1e-6)


def test_empty_and_schema() -> None:
    empty = pl.DataFrame(schema=RECORDING_SCHEMA)
    assert complete_streams(empty).schema == empty.schema
    out = complete_streams(track(time_s=list(range(5)), distance_m=[0.0, 1, 2, 3, 4]))
    assert out.schema == pl.Schema(RECORDING_SCHEMA)


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="velocity_mps"):
        complete_streams(pl.DataFrame({"time_s": [0, 1], "distance_m": [0.0, 1.0]}))


def test_altitude_drifting_at_a_stop_adds_no_grade() -> None:
    """A barometer re-levelling by 30 m while the rider stands (seen in a Wahoo ELEMNT file)."""
    t = list(range(200))
    d = [5.0 * min(s, 100) + 5.0 * max(0, s - 130) for s in t]  # stands from 100 s to 130 s
    alt = [50.0 if s < 100 else 50.0 - min(30.0, s - 100.0) for s in t]  # flat road, altitude drops 30 m
    out = complete_streams(track(time_s=t, distance_m=d, altitude_m=alt))
    assert out["grade_pct"].to_list() == pytest.approx([0.0] * 200)


def test_a_stationary_workout_counts_its_time_as_moving_except_pauses() -> None:
    """Strength or yoga recorded with heart rate only: no speed, distance or position to judge by."""
    times = [0, 1, 2, 3, 60, 61, 62]  # a 57 s pause after the fourth sample
    samples = pl.DataFrame({column: [None] * len(times) for column in RECORDING_SCHEMA}, schema=RECORDING_SCHEMA)
    samples = samples.with_columns(pl.Series("time_s", times, dtype=pl.Int32))
    moving = complete_streams(samples).get_column("moving").to_list()
    assert moving == [False, True, True, True, False, True, True]
