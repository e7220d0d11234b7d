"""Best efforts over standard distances (Strava-style, elapsed time, linear interpolation)."""

from __future__ import annotations

import bisect
import itertools
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strava_pipeline.transforms.metrics import BEST_EFFORT_DISTANCES_M, best_effort_s, best_efforts


def track(segments: list[tuple[float, float]], step_s: int = 1) -> tuple[list[float], list[float]]:
    """Samples every ``step_s`` seconds through ``(duration_s, speed_mps)`` segments."""
    time_s, dist = [0.0], [0.0]
    for duration, speed in segments:
        for _ in range(int(duration // step_s)):
            time_s.append(time_s[-1] + step_s)
            dist.append(dist[-1] + speed * step_s)
    return time_s, dist


def test_standard_distances() -> None:
    assert BEST_EFFORT_DISTANCES_M["1mile"] == 1609.344  # international mile
    assert BEST_EFFORT_DISTANCES_M["half_marathon"] == 21097.5
    assert BEST_EFFORT_DISTANCES_M["marathon"] == 42195.0


def test_constant_speed_best_effort_is_distance_over_speed() -> None:
    # 2 h at 3.5 m/s (25.2 km), 1 Hz: every best effort up to the half marathon is distance / speed.
    time_s, dist = track([(7200, 3.5)])
    efforts = best_efforts(dist, time_s)
    for name, meters in BEST_EFFORT_DISTANCES_M.items():
        if meters <= 25200:
            assert efforts[name] == pytest.approx(meters / 3.5), name
    assert efforts["marathon"] is None


def test_constant_speed_with_irregular_sampling_is_still_exact() -> None:
    # Samples every 1–5 s; interpolation is linear, so a constant speed is recovered exactly.
    steps = [1, 5, 2, 4, 3] * 200
    time_s = [float(sum(steps[:i])) for i in range(len(steps) + 1)]
    dist = [t * 4.2 for t in time_s]
    assert best_effort_s(dist, time_s, 1000.0) == pytest.approx(1000 / 4.2)
    assert best_effort_s(dist, time_s, 1609.344) == pytest.approx(1609.344 / 4.2)


def test_best_effort_finds_the_fast_section_with_interpolated_ends() -> None:
    # 2 km at 4 m/s, then 1 km at 5 m/s, then 1 km at 4 m/s, sampled every 3 s so that the fast
    # section's edges fall between samples (2000 m is reached at t = 500 s, not a multiple of 3).
    time_s, dist = track([(500, 4.0), (200, 5.0), (250, 4.0)], step_s=1)
    ts3 = time_s[::3]
    ds3 = dist[::3]
    assert best_effort_s(dist, time_s, 1000.0) == pytest.approx(200.0)
    assert best_effort_s(dist, time_s, 400.0) == pytest.approx(80.0)
    # 3 s sampling: the window is still found between samples; linear interpolation across the speed
    # change at a sample boundary costs at most a fraction of one interval.
    assert best_effort_s(ds3, ts3, 1000.0) == pytest.approx(200.0, abs=1.0)


def test_stops_inside_the_window_count_because_best_efforts_use_elapsed_time() -> None:
    # 500 m at 5 m/s, 60 s standing still, 500 m at 5 m/s: the only 1 km window includes the stop.
    time_s, dist = track([(100, 5.0), (60, 0.0), (100, 5.0)])
    assert best_effort_s(dist, time_s, 1000.0) == pytest.approx(260.0)
    # …but a 400 m window fits on either side of it and leaves as late as possible after the stop.
    assert best_effort_s(dist, time_s, 400.0) == pytest.approx(80.0)


def test_activity_shorter_than_every_distance_gives_none() -> None:
    time_s, dist = track([(90, 4.0)])  # 360 m
    assert all(v is None for v in best_efforts(dist, time_s).values())
    assert set(best_efforts(dist, time_s)) == set(BEST_EFFORT_DISTANCES_M)


def test_exactly_the_distance_is_one_effort() -> None:
    assert best_effort_s([0.0, 200.0, 400.0], [0, 50, 100], 400.0) == pytest.approx(100.0)


def test_empty_null_and_glitchy_inputs() -> None:
    assert best_effort_s([], [], 400.0) is None
    assert best_effort_s([None, None], [0, 1], 400.0) is None
    # Nulls are skipped; a GPS revision making cumulative distance dip is flattened, not negative.
    dist = pl.Series([0.0, None, 100.0, 99.0, 300.0, 500.0])
    time_s = pl.Series([0, 10, 20, 30, 40, 50])
    # Cleaned track: (0 s, 0 m), (20 s, 100 m), (30 s, 100 m), (40 s, 300 m), (50 s, 500 m).  The
    # fastest 400 m leaves 100 m at 30 s (as late as possible) and reaches 500 m at 50 s.
    assert best_effort_s(dist, time_s, 400.0) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        best_effort_s([0, 1], [0, 1], 0.0)


def reference_best(ts: list[float], ds: list[float], target: float) -> float | None:
    """Brute force over the same piecewise-linear track, by bisection rather than two pointers."""
    if len(ts) < 2 or ds[-1] - ds[0] < target:
        return None
    candidates = []
    for j in range(len(ts)):  # sample j as the finish, start interpolated
        x = ds[j] - target
        if x < ds[0]:
            continue
        i = bisect.bisect_right(ds, x) - 1
        candidates.append(ts[j] - (ts[i] + (x - ds[i]) / (ds[i + 1] - ds[i]) * (ts[i + 1] - ts[i])))
    for i in range(len(ts)):  # sample i as the start, finish interpolated
        y = ds[i] + target
        if y > ds[-1]:
            continue
        k = bisect.bisect_left(ds, y)
        candidates.append(ts[k - 1] + (y - ds[k - 1]) / (ds[k] - ds[k - 1]) * (ts[k] - ts[k - 1]) - ts[i])
    return min(candidates)


runs = st.lists(
    st.tuples(st.integers(min_value=1, max_value=5), st.floats(min_value=0.0, max_value=8.0)),
    min_size=1,
    max_size=400,
)


def run_from(steps: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
    time_s, dist = [0.0], [0.0]
    for dt, speed in steps:
        time_s.append(time_s[-1] + dt)
        dist.append(dist[-1] + dt * speed)
    return time_s, dist


@settings(max_examples=200)
@given(runs, st.sampled_from([50.0, 400.0, 1000.0, 1609.344]))
def test_matches_brute_force_and_beats_every_sample_aligned_window(
    steps: list[tuple[int, float]], target: float
) -> None:
    time_s, dist = run_from(steps)
    got = best_effort_s(dist, time_s, target)
    want = reference_best(time_s, dist, target)
    if want is None:
        assert got is None
        return
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    aligned = [
        time_s[j] - time_s[i]
        for i in range(len(time_s))
        for j in range(i + 1, len(time_s))
        if dist[j] - dist[i] >= target
    ]
    assert got <= min(aligned) + 1e-9


# Pairs (shorter, longer) of standard distances where the longer is a whole multiple of the shorter.
WHOLE_MULTIPLES = [("1km", "5km"), ("1km", "10km"), ("5km", "10km"), ("400m", "10km"), ("half_marathon", "marathon")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=2.0, max_value=6.0), min_size=1, max_size=12), st.data())
def test_longer_best_effort_is_never_faster_per_km(speeds: list[float], data: st.DataObject) -> None:
    # A run of up to 12 segments, each 500–5000 s long, at 2–6 m/s: up to ~50 km of varied pacing.
    durations = data.draw(st.lists(st.integers(500, 5000), min_size=len(speeds), max_size=len(speeds)))
    time_s, dist = track(list(zip(durations, speeds, strict=True)), step_s=3)
    efforts = best_efforts(dist, time_s)
    # Pace over the longer distance is never faster: the longer window splits into whole shorter
    # windows, one of which is at least as fast as their average.
    for short, long in WHOLE_MULTIPLES:
        if efforts[long] is not None:
            assert efforts[short] is not None
            pace_short = efforts[short] / BEST_EFFORT_DISTANCES_M[short]
            pace_long = efforts[long] / BEST_EFFORT_DISTANCES_M[long]
            assert pace_short <= pace_long * (1 + 1e-9)
    # For every pair, covering more distance never takes less time.
    names = list(BEST_EFFORT_DISTANCES_M)
    for shorter, longer in itertools.pairwise(names):
        if efforts[longer] is not None:
            assert efforts[shorter] is not None
            assert efforts[shorter] <= efforts[longer] + 1e-9


def test_pace_can_be_slower_over_a_shorter_distance_that_does_not_divide_the_longer() -> None:
    # Why the per-km property above is only asserted for whole multiples (cf. the universal chord
    # theorem): a 1 mile run at 5 m/s for 609.344 m, 2.5 m/s up to 1000 m, then 5 m/s to the mile.
    # Every 1 km window contains the whole slow part, so the best 1 km pace is slower than the mile's.
    time_s = [0.0, 609.344 / 5, 609.344 / 5 + 390.656 / 2.5, 609.344 / 5 + 390.656 / 2.5 + 609.344 / 5]
    dist = [0.0, 609.344, 1000.0, 1609.344]
    efforts = best_efforts(dist, time_s)
    assert efforts["1mile"] is not None and efforts["1km"] is not None
    assert efforts["1mile"] == pytest.approx(400.0)  # 248.5 s/km
    assert efforts["1km"] == pytest.approx(390.656 / 2.5 + 609.344 / 5)  # 278.1 s/km
    assert efforts["1km"] / 1000 > efforts["1mile"] / 1609.344


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 10_000)),
            st.one_of(st.none(), st.floats(-10, 50_000), st.just(float("nan"))),
        ),
        max_size=60,
    )
)
def test_nulls_and_garbage_do_not_crash(rows: list[tuple[int | None, float | None]]) -> None:
    efforts = best_efforts([d for _, d in rows], [t for t, _ in rows])
    assert all(v is None or (math.isfinite(v) and v >= 0) for v in efforts.values())
