"""Moving time, sample-interval attribution and elevation gain."""

from __future__ import annotations

import itertools
import math

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strava_pipeline.transforms.metrics import (
    DEFAULT_MAX_GAP_S,
    elevation_gain_m,
    hysteresis_gain,
    moving_time_s,
    sample_durations,
    smooth_centred,
)


def naive_gain(values: list[float]) -> float:
    return sum(max(b - a, 0.0) for a, b in itertools.pairwise(values))


# --- moving time -------------------------------------------------------------------------------


def test_moving_time_counts_intervals_owned_by_moving_samples() -> None:
    # Samples at 0, 2, 5, 6, 10 s; the athlete stops at t=5 (Strava's `moving` false) until t=6.
    time_s = [0, 2, 5, 6, 10]
    moving = [True, True, False, True, True]
    # Intervals: 0→2 (2 s, moving), 2→5 (3 s, moving), 5→6 (stopped), 6→10 (4 s, moving).
    assert moving_time_s(time_s, moving) == 9.0


def test_moving_time_caps_recording_gaps() -> None:
    # A 10-minute auto-pause gap between two moving samples counts only the cap, not 600 s.
    time_s = [0, 1, 2, 602, 603]
    moving = [True] * 5
    assert moving_time_s(time_s, moving) == 1 + 1 + DEFAULT_MAX_GAP_S + 1


def test_moving_time_without_moving_stream_is_capped_elapsed_time() -> None:
    assert moving_time_s([0, 3, 6, 9], None) == 9.0


def test_moving_time_null_flags_count_as_stopped_and_null_times_are_skipped() -> None:
    time_s = pl.Series([0, 1, None, 3, 4], dtype=pl.Int64)
    moving = pl.Series([True, None, True, True, True])
    # Valid samples 0, 1, 3, 4: interval 0→1 (moving), 1→3 (null flag: stopped), 3→4 (moving).
    assert moving_time_s(time_s, moving) == 2.0


def test_moving_time_of_empty_streams_is_zero() -> None:
    assert moving_time_s([], []) == 0.0
    assert moving_time_s([5], [True]) == 0.0


def test_sample_durations_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        sample_durations([0, 1, 2], [True, True])


@given(
    st.lists(st.integers(min_value=0, max_value=30), max_size=60),
    st.data(),
)
def test_moving_time_never_exceeds_elapsed_or_capped_total(steps: list[int], data: st.DataObject) -> None:
    time_s = [sum(steps[:i]) for i in range(len(steps) + 1)]
    moving = data.draw(st.lists(st.one_of(st.booleans(), st.none()), min_size=len(time_s), max_size=len(time_s)))
    total = moving_time_s(time_s, moving)
    assert 0.0 <= total <= time_s[-1] - time_s[0]
    assert total <= DEFAULT_MAX_GAP_S * (len(time_s) - 1)
    assert total == pytest.approx(sum(min(s, DEFAULT_MAX_GAP_S) for s, m in zip(steps, moving, strict=False) if m))


# --- elevation gain ------------------------------------------------------------------------------


def test_elevation_gain_of_clean_staircase() -> None:
    # Flat at 100 m, climb to 150 m, back to 100 m, climb to 150 m again: 2 × 50 m = 100 m of gain.
    profile = [100.0] * 20 + [150.0] * 20 + [100.0] * 20 + [150.0] * 20
    assert elevation_gain_m(profile) == pytest.approx(100.0)


def test_elevation_gain_ignores_noise_that_naive_summing_counts() -> None:
    # Flat road with ±0.6 m of alternating GPS/baro jitter: the naive sum counts 1.2 m per sample pair.
    flat_noisy = [200.0 + (0.6 if i % 2 else -0.6) for i in range(1000)]
    assert naive_gain(flat_noisy) > 500
    assert elevation_gain_m(flat_noisy) == 0.0


def test_elevation_gain_keeps_a_real_climb_with_small_dips() -> None:
    # 0 → 100 m at 0.5 m/sample, with a 1 m dip (below the 2 m threshold) halfway: still one 100 m climb
    # (minus what the 5-sample moving average shaves off the end points: nothing, the ends are flat).
    climb = [0.0] * 10 + [0.5 * i for i in range(1, 101)] + [49.0] * 3 + [50 + 0.5 * i for i in range(1, 101)]
    climb += [100.0] * 10
    assert elevation_gain_m(climb) == pytest.approx(100.0)


def test_elevation_gain_skips_nulls_and_returns_none_without_altitude() -> None:
    assert elevation_gain_m([None, None]) is None
    assert elevation_gain_m([]) is None
    # Nulls are dropped before smoothing: 10 m × 5 then 30 m × 5 is one 20 m climb.
    with_gaps = [10.0, None, 10.0, 10.0, None, 10.0, 10.0, 30.0, None, 30.0, 30.0, 30.0, 30.0]
    assert elevation_gain_m(with_gaps) == pytest.approx(20.0)
    assert elevation_gain_m([float("nan"), 5.0]) == 0.0


def test_smooth_centred_is_edge_padded_moving_average() -> None:
    assert smooth_centred([0.0, 0.0, 5.0, 0.0, 0.0], 5) == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert smooth_centred([1.0, 2.0, 3.0], 1) == [1.0, 2.0, 3.0]


def test_hysteresis_counts_full_climb_of_confirmed_swings_only() -> None:
    assert hysteresis_gain([0, 10, 9, 10.5, 0], 2.0) == pytest.approx(10.5)  # 1 m dip does not split it
    assert hysteresis_gain([0, 1.9, 0, 1.9, 0], 2.0) == 0.0
    assert hysteresis_gain([0, 3, 0, 3], 2.0) == pytest.approx(6.0)


altitudes = st.lists(st.one_of(st.floats(min_value=-400, max_value=9000, allow_nan=False), st.none()), max_size=200)


@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), max_size=200), st.floats(-400, 9000))
def test_elevation_gain_of_monotonically_decreasing_altitude_is_zero(drops: list[float], top: float) -> None:
    profile = [top - sum(drops[:i]) for i in range(len(drops) + 1)]
    assert elevation_gain_m(profile) == 0.0


@given(altitudes)
def test_elevation_gain_is_between_zero_and_naive_gain(profile: list[float | None]) -> None:
    gain = elevation_gain_m(profile)
    clean = [a for a in profile if a is not None]
    if not clean:
        assert gain is None
        return
    assert gain is not None
    assert 0.0 <= gain <= naive_gain(clean) + 1e-6 * max(1.0, naive_gain(clean))
    assert math.isfinite(gain)
