"""Moving time and elevation gain."""

from __future__ import annotations

import numpy as np

from ._arrays import DEFAULT_MAX_GAP_S, ArrayLike, float_array, number_array, sample_durations, sequential_sum

#: Centred moving-average window (samples) applied to altitude before counting gain.
DEFAULT_ELEVATION_WINDOW: int = 5
#: Hysteresis threshold (metres) a climb or descent must exceed before it counts.
DEFAULT_ELEVATION_THRESHOLD_M: float = 2.0


def moving_time_s(
    time_s: ArrayLike,
    moving: ArrayLike | None,
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> float:
    """Moving time in seconds, as Strava defines it: elapsed time minus time spent stopped.

    Follows Strava's ``moving_time`` definition (time during which the ``moving`` stream is true).
    Each sample owns the interval to the next sample (see
    :func:`~strava_pipeline.transforms.metrics._arrays.sample_durations`); the interval counts when
    that sample is moving, and is capped at ``max_gap_s`` so a recording gap (auto-pause, dropout)
    cannot be mistaken for minutes of moving.  A null ``moving`` flag counts as stopped; ``moving=None``
    (no stream at all) counts every interval, i.e. returns the capped elapsed time.
    """
    return float(sum(sample_durations(time_s, moving, max_gap_s=max_gap_s)))


def smooth_centred(values: list[float], window: int) -> list[float]:
    """Centred moving average over ``window`` samples, padding each end with its edge value.

    Edge padding (rather than shrinking the window) makes every output a convex combination of
    monotone re-indexings of the input, so the smoothed series never has more total rise than the
    raw series and a monotone input stays monotone.
    """
    if len(values) == 0 or window <= 1:
        return list(values)
    return _smooth_centred(number_array(values), window).tolist()


def _smooth_centred(values: np.ndarray, window: int) -> np.ndarray:
    """:func:`smooth_centred` of a non-empty array, ``window`` > 1: the same running sum (first window
    summed, then one sample in and one out per step), accumulated left to right by ``np.cumsum``."""
    n = values.size
    half = window // 2
    padded = np.concatenate((np.full(half, values[0]), values, np.full(window - 1 - half, values[-1])))
    steps = padded[window : window + n - 1] - padded[: n - 1]
    running = np.cumsum(np.concatenate(([sequential_sum(padded[:window])], steps)))
    return running / window


def hysteresis_gain(values: list[float], threshold_m: float) -> float:
    """Total climb counting only rises and falls of at least ``threshold_m`` (a Schmitt trigger).

    A climb starts when the series rises ``threshold_m`` above the lowest point since the last
    confirmed descent, and ends when it falls ``threshold_m`` below the highest point of the climb;
    its full height (peak minus trough) is counted.  Wiggles smaller than the threshold neither add
    gain on flat ground nor split a real climb into pieces.
    """
    if not values:
        return 0.0
    gain = 0.0
    low = high = values[0]
    climbing = False
    for v in values[1:]:
        if climbing:
            if v > high:
                high = v
            elif high - v >= threshold_m:
                gain += high - low
                climbing = False
                low = v
        elif v < low:
            low = v
        elif v - low >= threshold_m:
            climbing = True
            high = v
    if climbing:
        gain += high - low
    return gain


def elevation_gain_m(
    altitude_m: ArrayLike,
    *,
    window: int = DEFAULT_ELEVATION_WINDOW,
    threshold_m: float = DEFAULT_ELEVATION_THRESHOLD_M,
) -> float | None:
    """Total elevation gain in metres from a smoothed altitude stream; ``None`` without altitude data.

    Naively summing every positive sample-to-sample difference inflates gain: GPS altitude jitters by
    several metres and barometric altitude by tens of centimetres, and on flat ground each wiggle is
    counted as a climb.  So, following the usual practice of activity platforms and GPS tools (a
    smoothing filter followed by a minimum-climb threshold), the altitude is:

    1. stripped of nulls (samples without altitude are simply skipped);
    2. smoothed with a centred moving average over ``window`` samples (default 5, i.e. about 5–25 s of
       riding or running at 1–5 s sampling), padded with the edge values, which removes
       sample-to-sample jitter;
    3. integrated with a hysteresis threshold of ``threshold_m`` (default 2 m): only rises of at least
       that much count (see :func:`hysteresis_gain`), which removes the slow residual wander a moving
       average cannot.

    Guarantees: the result is never negative, never more than the naive gain of the raw series, and 0
    for a non-increasing altitude.  Real climbs lose at most the last sub-threshold metres and a
    fraction of the window at the very start/end of the activity.
    """
    altitude = float_array(altitude_m)
    return _elevation_gain(altitude, window=window, threshold_m=threshold_m)


def _elevation_gain(altitude: np.ndarray, *, window: int, threshold_m: float) -> float | None:
    clean = altitude[~np.isnan(altitude)]
    if not clean.size:
        return None
    smoothed = _smooth_centred(clean, window) if window > 1 else clean
    return hysteresis_gain(smoothed.tolist(), threshold_m)
