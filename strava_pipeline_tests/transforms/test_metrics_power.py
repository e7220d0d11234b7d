"""Power: 1 Hz resampling, mean-maximal power, normalized power, IF and TSS (Coggan/Allen)."""

from __future__ import annotations

import itertools
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strava_pipeline.transforms.metrics import (
    DEFAULT_MAX_GAP_S,
    POWER_CURVE_DURATIONS_S,
    intensity_factor,
    mean_max_power,
    normalized_power,
    power_1hz,
    power_curve,
    training_stress_score,
)

# --- worked examples (Coggan & Allen, "Training and Racing with a Power Meter") ----------------------


def test_one_hour_at_ftp_is_100_tss() -> None:
    # By definition TSS = 100 for one hour at FTP (NP = FTP, IF = 1).
    time_s = list(range(3601))  # 1 Hz, 3600 one-second intervals
    series = power_1hz(time_s, [250.0] * 3601)
    assert len(series) == 3600
    np_w = normalized_power(series)
    assert np_w == pytest.approx(250.0)
    assert intensity_factor(np_w, 250.0) == pytest.approx(1.0)
    assert training_stress_score(len(series), np_w, 250.0) == pytest.approx(100.0)


def test_tss_equals_hours_times_if_squared_times_100() -> None:
    # Equivalent form given by Coggan: TSS = hours × IF² × 100.  2 h at IF 0.75 → 112.5.
    assert training_stress_score(7200, 187.5, 250.0) == pytest.approx(112.5)
    assert intensity_factor(187.5, 250.0) == pytest.approx(0.75)


def test_np_of_30s_on_30s_off_intervals_is_well_above_average_power() -> None:
    # 30 s at 400 W / 30 s at 0 W for 1 h: average power 200 W.  The 30 s rolling average is a
    # triangle wave between 0 and 400 W, whose 4th-power mean is 400⁴/5, so NP ≈ 400 / 5^(1/4) ≈ 267.5 W.
    series = ([400.0] * 30 + [0.0] * 30) * 60
    assert sum(series) / len(series) == pytest.approx(200.0)
    assert normalized_power(series) == pytest.approx(400 / 5**0.25, rel=0.01)
    # Step by step as Coggan defines it (30 s rolling average, ^4, mean, 4th root):
    rolling = [sum(series[k - 29 : k + 1]) / 30 for k in range(29, len(series))]
    assert normalized_power(series) == pytest.approx((sum(p**4 for p in rolling) / len(rolling)) ** 0.25)


def test_power_metrics_need_ftp_and_enough_data() -> None:
    assert intensity_factor(250.0, None) is None
    assert intensity_factor(250.0, 0.0) is None
    assert intensity_factor(None, 250.0) is None
    assert training_stress_score(3600, 250.0, None) is None
    assert training_stress_score(3600, None, 250.0) is None
    assert normalized_power([200.0] * 29) is None
    assert normalized_power([200.0] * 30) == pytest.approx(200.0)
    assert normalized_power([]) is None


# --- mean-maximal power ------------------------------------------------------------------------


def test_mmp_finds_the_sprint_and_the_surrounding_minute() -> None:
    series = [200.0] * 600 + [1000.0] * 5 + [200.0] * 600
    curve = power_curve(series)
    assert curve["5s"] == pytest.approx(1000.0)
    assert curve["1min"] == pytest.approx((5 * 1000 + 55 * 200) / 60)
    assert curve["5min"] == pytest.approx((5 * 1000 + 295 * 200) / 300)
    assert curve["20min"] == pytest.approx((5 * 1000 + 1195 * 200) / 1200)
    assert curve["60min"] is None  # a 20 min 5 s ride has no 60 min window
    assert list(curve) == list(POWER_CURVE_DURATIONS_S)


def test_mmp_can_increase_for_durations_that_are_not_whole_multiples() -> None:
    # Why the monotonicity property is only claimed for whole multiples (5 s, 1, 5, 20, 60 min are).
    series = [0.0, 10.0, 0.0, 10.0, 0.0]
    assert mean_max_power(series, 2) == pytest.approx(5.0)
    assert mean_max_power(series, 3) == pytest.approx(20 / 3)
    with pytest.raises(ValueError):
        mean_max_power(series, 0)


# --- 1 Hz resampling -------------------------------------------------------------------------------


def test_power_1hz_holds_each_reading_until_the_next_sample() -> None:
    assert power_1hz([0, 2, 3, 6], [100, 200, 300, 400]) == [100, 100, 200, 300, 300, 300]


def test_power_1hz_fills_stops_nulls_and_gaps_with_zero() -> None:
    time_s = [0, 2, 4, 6, 8, 30, 31]
    watts = [100, None, 150, 180, 200, 250, 260]
    moving = [True, True, False, True, True, True, True]
    series = power_1hz(time_s, watts, moving)
    assert len(series) == 31  # elapsed time, not moving time
    assert series[0:2] == [100, 100]
    assert series[2:4] == [0, 0]  # null watts: missing is 0 W (Coggan/TrainingPeaks)
    assert series[4:6] == [0, 0]  # stopped
    assert series[6:8] == [180, 180]
    gap = series[8:30]  # 22 s recording gap after t=8: held for the cap, then 0 W
    cap = int(DEFAULT_MAX_GAP_S)
    assert gap == [200] * cap + [0] * (22 - cap)
    assert series[30] == 250


def test_power_1hz_without_power_data_is_empty() -> None:
    assert power_1hz([], []) == []
    assert power_1hz([0, 1, 2], [None, None, None]) == []
    assert power_1hz(pl.Series([0, 1, 2]), pl.Series([None, None, None], dtype=pl.Float64)) == []


# --- properties --------------------------------------------------------------------------------


@given(st.floats(min_value=0, max_value=2000), st.integers(min_value=30, max_value=4000))
def test_constant_power_gives_np_and_every_mmp_equal_to_that_power(watts: float, seconds: int) -> None:
    series = power_1hz(list(range(seconds + 1)), [watts] * (seconds + 1))
    assert normalized_power(series) == pytest.approx(watts, rel=1e-9, abs=1e-9)
    for duration_s in POWER_CURVE_DURATIONS_S.values():
        mmp = mean_max_power(series, duration_s)
        if duration_s <= seconds:
            assert mmp == pytest.approx(watts, rel=1e-9, abs=1e-9)
        else:
            assert mmp is None


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1500), min_size=1, max_size=600),
    st.lists(st.integers(min_value=2, max_value=5), min_size=1, max_size=4),
)
def test_mmp_is_non_increasing_over_whole_multiple_durations(series: list[float], factors: list[int]) -> None:
    durations = [1]
    for f in factors:
        durations.append(durations[-1] * f)
    values = [mean_max_power(series, d) for d in durations]
    present = [v for v in values if v is not None]
    assert present[0] == pytest.approx(max(series))
    for shorter, longer in itertools.pairwise(present):
        assert longer <= shorter + 1e-9 * max(1.0, shorter)


@given(st.lists(st.floats(min_value=0, max_value=1500), min_size=30, max_size=300))
def test_np_lies_between_min_and_max_power(series: list[float]) -> None:
    np_w = normalized_power(series)
    assert np_w is not None
    assert min(series) - 1e-6 <= np_w <= max(series) + 1e-6


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 5000)),
            st.one_of(st.none(), st.floats(0, 2000), st.just(float("nan"))),
            st.one_of(st.none(), st.booleans()),
        ),
        max_size=80,
    )
)
def test_power_with_nulls_does_not_crash(rows: list[tuple[int | None, float | None, bool | None]]) -> None:
    series = power_1hz([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    assert all(math.isfinite(p) and p >= 0 for p in series)
    curve = power_curve(series)
    np_w = normalized_power(series)
    assert all(v is None or v >= 0 for v in curve.values())
    assert np_w is None or np_w >= 0
