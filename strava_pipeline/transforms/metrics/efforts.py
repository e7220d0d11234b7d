"""Best efforts: fastest elapsed time over standard distances within one activity."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ._arrays import ArrayLike, check_same_length, float_array

#: Standard best-effort distances in metres, keyed by the suffix used in column names
#: (``best_<key>_s``).  The mile is the international mile (1609.344 m); the half marathon and
#: marathon are World Athletics' road distances (21.0975 km and 42.195 km).
BEST_EFFORT_DISTANCES_M: dict[str, float] = {
    "400m": 400.0,
    "1km": 1000.0,
    "1mile": 1609.344,
    "5km": 5000.0,
    "10km": 10000.0,
    "half_marathon": 21097.5,
    "marathon": 42195.0,
}


def _clean_track(distance_m: ArrayLike, time_s: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Samples with both time and distance, ordered by time (then distance), with distance made
    non-decreasing.

    Cumulative distance can dip by a few centimetres when a GPS fix is revised; a running maximum
    keeps it a valid cumulative series without inventing distance.
    """
    dist = float_array(distance_m)
    times = float_array(time_s)
    check_same_length(distance_m=dist, time_s=times)
    known = ~np.isnan(times) & ~np.isnan(dist)
    ts, ds = times[known], dist[known]
    order = np.lexsort((ds, ts))
    return ts[order], np.maximum.accumulate(ds[order]) if ds.size else ds


def _best_over(ts: np.ndarray, ds: np.ndarray, target_m: float) -> float | None:
    n = ts.size
    if n < 2 or ds[-1] - ds[0] < target_m:
        return None
    best = math.inf
    # Pass 1: every sample j as the finish; the start is where distance was d[j] - target, on the
    # segment (i, i+1) with d[i] <= x < d[i+1]; taking the *last* such i means leaving as late as
    # possible after a stop.  i moves forward with j, so it is where a binary search puts x.
    x = ds - target_m
    finish = np.flatnonzero(x >= ds[0])
    if finish.size:
        x = x[finish]
        i = np.searchsorted(ds, x, side="right") - 1
        elapsed = ts[finish] - (ts[i] + (x - ds[i]) / (ds[i + 1] - ds[i]) * (ts[i + 1] - ts[i]))
        best = min(best, float(elapsed.min()))
    # Pass 2: every sample i as the start; the finish is where distance first reaches d[i] + target,
    # on the segment (k-1, k) with d[k-1] < y <= d[k].  Together the two passes evaluate every
    # breakpoint of the piecewise-linear "elapsed time over target" function, so the minimum found is
    # the exact optimum under linear interpolation, not just the best sample-aligned window.
    y = ds + target_m
    start = np.flatnonzero(y <= ds[-1])
    if start.size:
        y = y[start]
        k = np.searchsorted(ds, y, side="left")
        elapsed = ts[k - 1] + (y - ds[k - 1]) / (ds[k] - ds[k - 1]) * (ts[k] - ts[k - 1]) - ts[start]
        best = min(best, float(elapsed.min()))
    return best


def best_effort_s(distance_m: ArrayLike, time_s: ArrayLike, target_m: float) -> float | None:
    """Fastest elapsed time (s) to cover ``target_m`` metres anywhere in the activity.

    Follows Strava's "Best Efforts" (fastest time over a standard distance within an activity, on
    elapsed time, so stops inside the window count).  Position between samples is linearly
    interpolated on the cumulative ``distance_m``/``time_s`` streams, and a two-pointer sweep over the
    cumulative distance evaluates every sample as a window start and as a window end in O(n).
    Samples missing time or distance are skipped.  Returns ``None`` when the activity covers less than
    ``target_m``.
    """
    if not target_m > 0:
        raise ValueError(f"target_m must be positive, got {target_m}")
    ts, ds = _clean_track(distance_m, time_s)
    return _best_over(ts, ds, target_m)


def best_efforts(
    distance_m: ArrayLike,
    time_s: ArrayLike,
    distances_m: Mapping[str, float] = BEST_EFFORT_DISTANCES_M,
) -> dict[str, float | None]:
    """:func:`best_effort_s` for each named distance (default :data:`BEST_EFFORT_DISTANCES_M`)."""
    ts, ds = _clean_track(distance_m, time_s)
    out: dict[str, float | None] = {}
    for name, target in distances_m.items():
        if not target > 0:
            raise ValueError(f"distance {name!r} must be positive, got {target}")
        out[name] = _best_over(ts, ds, target)
    return out
