"""Heart-rate metrics: average, maximum, time in zones and Banister's TRIMP."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import TypeAlias

import numpy as np

from ._arrays import (
    DEFAULT_MAX_GAP_S,
    ArrayLike,
    check_same_length,
    durations_array,
    float_array,
    sequential_sum,
    true_mask,
)

#: One heart-rate zone in Strava's format: ``{"min": bpm, "max": bpm}``, ``max == -1`` = open-ended.
HrZone: TypeAlias = Mapping[str, int | float]

#: Used when the athlete's settings have no maximum heart rate: 220 − age (Fox et al., 1971) for a
#: 30-year-old.  A rough population estimate; set ``AthleteSettings.max_hr`` for meaningful values.
DEFAULT_MAX_HR: int = 190
#: Used when the athlete's settings have no resting heart rate: 60 bpm, the lower end of the usual
#: adult resting range (60–100 bpm).
DEFAULT_RESTING_HR: int = 60

#: Upper bounds of zones 1–4 as fractions of HRmax in the common 5-zone %HRmax model (50–60–70–80–90 %,
#: as popularised by Sally Edwards, "The Heart Rate Monitor Book"/"Heart Zone Training", and used for
#: example by Polar for its default sport zones).  Zone 5 is open-ended.
DEFAULT_ZONE_UPPER_FRACTIONS: tuple[float, float, float, float] = (0.60, 0.70, 0.80, 0.90)

#: Banister TRIMP weighting constants ``(a, b)`` in ``a * e^(b * HRr)``: men 0.64/1.92 (Banister
#: 1991), women 0.86/1.67 (Morton, Fitz-Clarke & Banister 1990).
TRIMP_COEFFICIENTS: dict[str, tuple[float, float]] = {"M": (0.64, 1.92), "F": (0.86, 1.67)}


def max_heartrate_bpm(heartrate: ArrayLike) -> float | None:
    """Highest recorded heart rate (bpm); ``None`` when there is no heart-rate data.

    Strava's ``max_heartrate``: the maximum over all samples, including stopped ones.
    """
    return _max_heartrate(float_array(heartrate))


def _max_heartrate(hr: np.ndarray) -> float | None:
    values = hr[~np.isnan(hr)]
    return float(values.max()) if values.size else None


def _durations(time_s: ArrayLike, moving: ArrayLike | None, max_gap_s: float) -> np.ndarray:
    times = float_array(time_s)
    flags = true_mask(moving) if moving is not None else None
    if flags is not None:
        check_same_length(time_s=times, moving=flags)
    return durations_array(times, flags, max_gap_s)


def average_heartrate_bpm(
    heartrate: ArrayLike,
    time_s: ArrayLike | None = None,
    moving: ArrayLike | None = None,
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> float | None:
    """Average heart rate (bpm); ``None`` when there is no heart-rate data.

    With ``time_s`` it is the time-weighted mean (each sample weighted by the seconds it owns, see
    ``sample_durations``; with ``moving``, stopped time is excluded like Strava's moving-time
    averages).  Weighting matters because sampling is irregular: smart recording samples less often
    when the signal is steady, so a plain mean over samples over-weights the changing parts.  Without
    ``time_s`` (or when no sample owns any time, e.g. a single sample) it is the plain sample mean.
    """
    hr = float_array(heartrate)
    weights = None
    if time_s is not None:
        weights = _durations(time_s, moving, max_gap_s)
        check_same_length(heartrate=hr, time_s=weights)
    return _average_heartrate(hr, weights)


def _average_heartrate(hr: np.ndarray, weights: np.ndarray | None) -> float | None:
    """The average of ``average_heartrate_bpm`` from arrays (``weights``: the samples' durations)."""
    known = ~np.isnan(hr)
    if weights is not None:
        total = sequential_sum(weights[known])
        if total > 0:
            return sequential_sum(hr[known] * weights[known]) / total
    values = hr[known]
    return sequential_sum(values) / values.size if values.size else None


def default_hr_zones(max_hr: float) -> list[dict[str, int]]:
    """Five heart-rate zones from percentages of maximum heart rate, in Strava's zone format.

    Boundaries are 60/70/80/90 % of ``max_hr`` (:data:`DEFAULT_ZONE_UPPER_FRACTIONS`, the common
    5-zone %HRmax model: Z1 50–60 %, Z2 60–70 %, Z3 70–80 %, Z4 80–90 %, Z5 90–100 %), rounded to whole
    bpm like Strava's zones.  As in Strava's own zones, zone 1 starts at 0 (not 50 %) and zone 5 is
    open-ended (``max = -1``), so every recorded heart rate falls in exactly one zone and time in
    zones adds up to the recorded time.
    """
    if max_hr <= 0:
        raise ValueError(f"max_hr must be positive, got {max_hr}")
    bounds = [0, *(round(max_hr * f) for f in DEFAULT_ZONE_UPPER_FRACTIONS), -1]
    return [{"min": lo, "max": hi} for lo, hi in pairwise(bounds)]


def hr_zones_from_lower_bounds(lower_bounds_bpm: Sequence[float | None]) -> list[dict[str, int]] | None:
    """Rebuild Strava zones from their lower bounds (the athlete table keeps ``hr_zone_k_min_bpm``).

    Strava's zones are contiguous, so zone ``k`` ends where zone ``k + 1`` starts and the last zone is
    open-ended (``max = -1``).  Returns ``None`` when any bound is missing or they do not increase,
    so the caller falls back to :func:`default_hr_zones`.
    """
    if not lower_bounds_bpm or any(b is None for b in lower_bounds_bpm):
        return None
    bounds = [int(b) for b in lower_bounds_bpm if b is not None]
    if any(hi <= lo for lo, hi in pairwise(bounds)):
        return None
    return [{"min": lo, "max": hi} for lo, hi in pairwise([*bounds, -1])]


def _zone_indices(hr: np.ndarray, zones: Sequence[HrZone]) -> np.ndarray:
    """Each sample's zone: the first whose ``min <= hr < max`` (``max`` -1: no upper bound); -1 for none."""
    out = np.full(hr.size, -1, dtype=np.int64)
    for k, zone in enumerate(zones):
        lo, hi = zone["min"], zone["max"]
        inside = (out == -1) & (hr >= lo)
        if hi != -1:
            inside &= hr < hi
        out[inside] = k
    return out


def time_in_hr_zones(
    time_s: ArrayLike,
    heartrate: ArrayLike,
    zones: Sequence[HrZone],
    *,
    moving: ArrayLike | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> list[float]:
    """Seconds spent in each heart-rate zone, one entry per zone in ``zones`` order.

    ``zones`` are the athlete's Strava zones (``GET /athlete/zones``: a list of ``{"min", "max"}`` in
    bpm, ``max == -1`` for the open-ended top zone) or :func:`default_hr_zones`.  A heart rate ``hr``
    is in a zone when ``min <= hr < max`` (adjacent Strava zones share their boundary value, which
    belongs to the upper zone).  Each sample contributes the interval to the next sample, capped at
    ``max_gap_s`` so a recording gap (auto-pause) is not counted as zone time; with ``moving``, samples
    where the athlete is stopped contribute nothing, so pauses that keep recording are excluded too.
    Samples with null heart rate, or outside every zone, contribute to no zone.
    """
    hr = float_array(heartrate)
    durations = _durations(time_s, moving, max_gap_s)
    check_same_length(time_s=durations, heartrate=hr)
    return _time_in_zones(hr, durations, zones)


def _time_in_zones(hr: np.ndarray, durations: np.ndarray, zones: Sequence[HrZone]) -> list[float]:
    counted = ~np.isnan(hr) & (durations > 0)
    k = _zone_indices(np.where(counted, hr, 0.0), zones)
    # Each zone's seconds added in sample order, as the running totals of a loop over the samples would be.
    return [sequential_sum(durations[counted & (k == zone)]) for zone in range(len(zones))]


def _coefficients(sex: str | None) -> tuple[float, float]:
    if sex is not None and sex.strip().upper()[:1] == "F":
        return TRIMP_COEFFICIENTS["F"]
    return TRIMP_COEFFICIENTS["M"]


def trimp(
    time_s: ArrayLike,
    heartrate: ArrayLike,
    *,
    resting_hr: float = DEFAULT_RESTING_HR,
    max_hr: float = DEFAULT_MAX_HR,
    sex: str | None = None,
    moving: ArrayLike | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> float | None:
    """Banister's heart-rate TRIMP (training impulse); ``None`` when there is no heart-rate data.

    Banister (1991), with the sex-specific weighting of Morton, Fitz-Clarke & Banister (1990)::

        TRIMP = Σ duration_min × HRr × a × e^(b × HRr),   HRr = (HR − HRrest) / (HRmax − HRrest)

    with ``a, b = 0.64, 1.92`` for men and ``0.86, 1.67`` for women.  Summing per sample interval
    (rather than using the session's average HR) is the exact integral form; the exponential weights
    hard minutes more than an average would.  Each sample contributes the interval to the next one in
    minutes, capped like zone time; with ``moving``, stopped time is excluded.  HRr is clamped to
    [0, 1]: a heart rate under the resting value adds nothing (rather than negative load) and one over
    the configured maximum counts as maximal.

    Defaults: ``resting_hr`` 60 bpm (:data:`DEFAULT_RESTING_HR`), ``max_hr`` 190 bpm
    (:data:`DEFAULT_MAX_HR`), and ``sex`` ``None``, which uses the men's constants of Banister's
    original formula (``"F"``/``"female"`` selects the women's constants).
    """
    if max_hr <= resting_hr:
        raise ValueError(f"max_hr ({max_hr}) must exceed resting_hr ({resting_hr})")
    hr = float_array(heartrate)
    durations = _durations(time_s, moving, max_gap_s)
    check_same_length(time_s=durations, heartrate=hr)
    return _trimp(hr, durations, resting_hr=resting_hr, max_hr=max_hr, sex=sex)


def _trimp(hr: np.ndarray, durations: np.ndarray, *, resting_hr: float, max_hr: float, sex: str | None
           ) -> float | None:
    """``trimp`` from arrays. ``math.exp`` (not numpy's, whose last bit may differ) of each distinct
    reserve fraction: heart rates are whole bpm, so a few hundred calls cover any activity."""
    if np.isnan(hr).all():
        return None
    a, b = _coefficients(sex)
    reserve = max_hr - resting_hr
    counted = ~np.isnan(hr) & (durations > 0)
    hrr = np.minimum(np.maximum((hr[counted] - resting_hr) / reserve, 0.0), 1.0)
    distinct, index = np.unique(hrr, return_inverse=True)
    weight = np.array([math.exp(b * x) for x in distinct.tolist()], dtype=np.float64)[index]
    return sequential_sum((durations[counted] / 60.0) * hrr * a * weight)
