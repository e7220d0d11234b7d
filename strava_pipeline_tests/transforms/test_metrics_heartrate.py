"""Heart-rate metrics: average/max, zones (Strava format and %HRmax fallback), Banister TRIMP."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strava_pipeline.transforms.metrics import (
    DEFAULT_MAX_GAP_S,
    average_heartrate_bpm,
    default_hr_zones,
    hr_zones_from_lower_bounds,
    max_heartrate_bpm,
    time_in_hr_zones,
    trimp,
)

# Zones as returned by Strava's GET /athlete/zones for an athlete with max HR ~195.
STRAVA_ZONES = [
    {"min": 0, "max": 123},
    {"min": 123, "max": 153},
    {"min": 153, "max": 169},
    {"min": 169, "max": 184},
    {"min": 184, "max": -1},
]


# --- average / max ----------------------------------------------------------------------------


def test_average_and_max_heartrate() -> None:
    hr = [100, 120, None, 140]
    assert max_heartrate_bpm(hr) == 140
    assert average_heartrate_bpm(hr) == pytest.approx(120.0)


def test_average_heartrate_is_time_weighted_over_moving_time() -> None:
    # 100 bpm held for 4 s, then 160 bpm for 1 s, then a stop at 60 bpm, last sample owns nothing.
    time_s = [0, 4, 5, 65]
    hr = [100, 160, 60, 200]
    moving = [True, True, False, True]
    assert average_heartrate_bpm(hr, time_s, moving) == pytest.approx((100 * 4 + 160 * 1) / 5)
    # A plain mean over samples would be 130: irregular sampling would bias it.
    assert average_heartrate_bpm(hr[:3]) == pytest.approx(320 / 3)


def test_heartrate_all_null_or_empty_is_none() -> None:
    for hr in ([], [None, None], pl.Series([None, None], dtype=pl.Float64)):
        assert max_heartrate_bpm(hr) is None
        assert average_heartrate_bpm(hr) is None
        assert average_heartrate_bpm(hr, [0, 1][: len(hr)]) is None
    assert trimp([0, 1], [None, None]) is None
    assert time_in_hr_zones([0, 1], [None, None], STRAVA_ZONES) == [0.0] * 5


# --- zones ------------------------------------------------------------------------------------


def test_default_hr_zones_follow_the_5_zone_percent_of_max_model() -> None:
    # 50-60-70-80-90 % of HRmax (Edwards' five-zone %HRmax model): boundaries at 60/70/80/90 % of 200.
    assert default_hr_zones(200) == [
        {"min": 0, "max": 120},
        {"min": 120, "max": 140},
        {"min": 140, "max": 160},
        {"min": 160, "max": 180},
        {"min": 180, "max": -1},
    ]
    with pytest.raises(ValueError):
        default_hr_zones(0)


def test_time_in_zones_attributes_interval_to_next_sample_with_boundaries_in_upper_zone() -> None:
    time_s = [0, 2, 5, 6, 10, 11]
    hr = [110, 123, 170, 184, 250, 90]  # 123 is zone 2's min; 184 is zone 5's min; 250 open-ended
    assert time_in_hr_zones(time_s, hr, STRAVA_ZONES) == [2.0, 3.0, 0.0, 1.0, 5.0]


def test_time_in_zones_excludes_pauses() -> None:
    # A stop (moving false) while the device keeps recording, then a 20-minute auto-pause gap.
    time_s = [0, 3, 63, 66, 1266, 1270]
    hr = [150, 130, 150, 150, 150, 150]
    moving = [True, False, True, True, True, True]
    zones = time_in_hr_zones(time_s, hr, STRAVA_ZONES, moving=moving)
    # 0→3 moving (zone 2: 3 s); 3→63 stopped (0); 63→66 (3 s); 66→1266 gap capped; 1266→1270 (4 s).
    assert zones == [0.0, 3 + 3 + DEFAULT_MAX_GAP_S + 4, 0.0, 0.0, 0.0]


def test_time_in_zones_with_gappy_zones_drops_uncovered_heart_rates() -> None:
    zones = [{"min": 100, "max": 120}, {"min": 140, "max": -1}]
    assert time_in_hr_zones([0, 1, 2, 3], [90, 110, 130, 150], zones) == [1.0, 0.0]


samples = st.lists(
    st.tuples(st.integers(min_value=0, max_value=40), st.one_of(st.none(), st.floats(30, 230))),
    max_size=80,
)


@given(samples, st.integers(min_value=120, max_value=220))
def test_time_in_zones_sums_to_capped_recorded_time(rows: list[tuple[int, float | None]], max_hr: int) -> None:
    time_s = [sum(step for step, _ in rows[:i]) for i in range(len(rows))]
    hr = [h for _, h in rows]
    zones = time_in_hr_zones(time_s, hr, default_hr_zones(max_hr))
    # Capped interval to the next sample, for every sample that has a heart rate.
    expected = sum(min(rows[i][0], DEFAULT_MAX_GAP_S) for i in range(len(rows) - 1) if hr[i] is not None)
    assert sum(zones) == pytest.approx(expected)
    assert all(z >= 0 for z in zones)


# --- TRIMP ------------------------------------------------------------------------------------


def constant_session(minutes: int, hr: float) -> tuple[list[int], list[float]]:
    """1 Hz samples: minutes × 60 intervals at ``hr`` (plus the closing sample, which owns nothing)."""
    n = minutes * 60
    return list(range(n + 1)), [hr] * (n + 1)


def test_trimp_worked_example_men() -> None:
    # Banister (1991) TRIMP, worked by hand: 30 min at 160 bpm, HRrest 60, HRmax 200, male.
    #   HRr = (160 - 60) / (200 - 60) = 0.7143
    #   y   = 0.64 × e^(1.92 × 0.7143) = 0.64 × 3.9410 = 2.5222
    #   TRIMP = 30 × 0.7143 × 2.5222 = 54.05
    time_s, hr = constant_session(30, 160)
    assert trimp(time_s, hr, resting_hr=60, max_hr=200, sex="M") == pytest.approx(54.05, abs=0.01)


def test_trimp_worked_example_women() -> None:
    # Same session with Morton, Fitz-Clarke & Banister (1990) women's constants:
    #   y = 0.86 × e^(1.67 × 0.7143) = 0.86 × 3.2965 = 2.8350;  TRIMP = 30 × 0.7143 × 2.8350 = 60.75
    time_s, hr = constant_session(30, 160)
    assert trimp(time_s, hr, resting_hr=60, max_hr=200, sex="F") == pytest.approx(60.75, abs=0.01)
    assert trimp(time_s, hr, resting_hr=60, max_hr=200, sex="female") == pytest.approx(60.75, abs=0.01)


def test_trimp_defaults_are_documented_values() -> None:
    # Defaults: HRrest 60, HRmax 190, men's constants.  60 min at 155 bpm: HRr = 95/130.
    time_s, hr = constant_session(60, 155)
    hrr = 95 / 130
    assert trimp(time_s, hr) == pytest.approx(60 * hrr * 0.64 * math.exp(1.92 * hrr))


def test_trimp_clamps_reserve_and_excludes_pauses() -> None:
    # Below resting adds nothing; above max counts as HRr = 1; stopped time excluded.
    assert trimp([0, 60, 120], [50, 50, 50], resting_hr=60, max_hr=200) == 0.0
    assert trimp([0, 60], [250, 250], resting_hr=60, max_hr=200, max_gap_s=60) == pytest.approx(
        1 * 1.0 * 0.64 * math.exp(1.92)
    )
    assert trimp([0, 5, 10], [160, 160, 160], moving=[False, False, True], resting_hr=60, max_hr=200) == 0.0
    with pytest.raises(ValueError):
        trimp([0, 1], [100, 100], resting_hr=100, max_hr=100)


@given(st.lists(st.one_of(st.none(), st.floats(0, 260), st.just(float("nan"))), max_size=100))
def test_trimp_is_non_negative_and_nulls_do_not_crash(hr: list[float | None]) -> None:
    result = trimp(list(range(0, 2 * len(hr), 2)), hr)
    if all(h is None or math.isnan(h) for h in hr):
        assert result is None
    else:
        assert result is not None and result >= 0


def test_zones_rebuilt_from_lower_bounds() -> None:
    # The athlete table keeps only each zone's lower bound; Strava zones are contiguous.
    assert hr_zones_from_lower_bounds([0, 123, 153, 169, 184]) == STRAVA_ZONES
    assert hr_zones_from_lower_bounds([0, 123, None, 169, 184]) is None
    assert hr_zones_from_lower_bounds([0, 150, 140, 169, 184]) is None
    assert hr_zones_from_lower_bounds([]) is None
