"""Power metrics: 1 Hz resampling, mean-maximal power curve, NP, IF and TSS (Coggan/Allen)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ._arrays import DEFAULT_MAX_GAP_S, ArrayLike, check_same_length, float_array, number_array, true_mask

#: Mean-maximal power durations (seconds), keyed by the suffix used in column names
#: (``power_<key>_w``).  Each is an integer multiple of the previous one, which is what guarantees the
#: curve is non-increasing (see :func:`mean_max_power`).
POWER_CURVE_DURATIONS_S: dict[str, int] = {"5s": 5, "1min": 60, "5min": 300, "20min": 1200, "60min": 3600}

#: Rolling window of Coggan's normalized power, seconds.
NP_WINDOW_S: int = 30


def power_1hz(
    time_s: ArrayLike,
    watts: ArrayLike,
    moving: ArrayLike | None = None,
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> list[float]:
    """Resample the power stream to one value per elapsed second; ``[]`` when there is no power data.

    Second ``k`` covers ``[t0 + k, t0 + k + 1)`` and takes the watts of the last sample at or before
    its start (zero-order hold: a power meter's reading stands until the next one, and smart recording
    only writes a sample when something changes).  It is **0 W** instead when that sample is stopped
    (``moving`` false or null), its watts are null, or it is more than ``max_gap_s`` old (a recording
    gap).  Zero-filling follows Coggan/TrainingPeaks, which treat missing power as 0 W: forward-filling
    through a stop or a dropout would invent work that was not done and inflate MMP and NP, while
    zero-filling keeps the timeline elapsed so no window joins efforts from either side of a stop.
    Samples with a null time are ignored.
    """
    times = float_array(time_s)
    power = float_array(watts)
    flags = true_mask(moving) if moving is not None else None
    check_same_length(time_s=times, watts=power, **({"moving": flags} if flags is not None else {}))
    return _power_1hz(times, power, flags, max_gap_s).tolist()


def _power_1hz(times: np.ndarray, power: np.ndarray, moving: np.ndarray | None, max_gap_s: float) -> np.ndarray:
    """:func:`power_1hz` from arrays (NaN: no value; ``moving``: where the flag is true, None: no stream)."""
    timed = ~np.isnan(times)
    t, w = times[timed], power[timed]
    if not t.size or np.isnan(w).all():
        return np.empty(0, dtype=np.float64)
    flags = moving[timed] if moving is not None else np.ones(t.size, dtype=bool)
    order = np.argsort(t, kind="stable")
    t, w, flags = t[order], w[order], flags[order]
    t0 = float(t[0])
    seconds = t0 + np.arange(math.floor(float(t[-1]) - t0), dtype=np.float64)
    # Zero-order hold: the last sample at or before each second's start.
    i = np.searchsorted(t, seconds, side="right") - 1
    held = w[i]
    recorded = flags[i] & ~np.isnan(held) & (seconds - t[i] < max_gap_s)
    return np.where(recorded, held, 0.0)


def _rolling_means(series: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Means of every full ``window``-long run of ``series`` (prefix sums, O(n); ``np.cumsum`` adds in
    order, as the running prefix of a loop does)."""
    prefix = np.cumsum(np.concatenate(([0.0], number_array(series))))
    runs = max(prefix.size - window, 0)
    return (prefix[window : window + runs] - prefix[:runs]) / window


def mean_max_power(power_1hz_w: Sequence[float], duration_s: int) -> float | None:
    """Mean-maximal power: the best average power over any ``duration_s``-second window.

    The "power-duration curve"/MMP of Coggan & Allen, *Training and Racing with a Power Meter*,
    computed on the 1 Hz series of :func:`power_1hz`.  ``None`` when the series is shorter than the
    window.  For durations where the longer is an integer multiple of the shorter, MMP never
    increases with duration (the longer window splits into whole shorter windows, one of which is at
    least its average); for other ratios it can (e.g. ``[0, 10, 0, 10, 0]``: best 2 s is 5 W, best
    3 s is 6.7 W), which is why :data:`POWER_CURVE_DURATIONS_S` uses a chain of integer multiples.
    """
    if duration_s < 1:
        raise ValueError(f"duration_s must be >= 1, got {duration_s}")
    if len(power_1hz_w) < duration_s:
        return None
    return float(_rolling_means(power_1hz_w, duration_s).max())


def power_curve(
    power_1hz_w: Sequence[float],
    durations_s: Mapping[str, int] = POWER_CURVE_DURATIONS_S,
) -> dict[str, float | None]:
    """:func:`mean_max_power` for each named duration (default :data:`POWER_CURVE_DURATIONS_S`)."""
    return {name: mean_max_power(power_1hz_w, d) for name, d in durations_s.items()}


def normalized_power(power_1hz_w: Sequence[float]) -> float | None:
    """Coggan's Normalized Power (NP) in watts; ``None`` for less than 30 s of data.

    Coggan & Allen, *Training and Racing with a Power Meter*: (1) take the 30 s rolling average of
    the 1 Hz power, starting once 30 s are available; (2) raise each value to the 4th power;
    (3) average them; (4) take the 4th root.  The 4th power weights hard surges the way their
    physiological cost does, so a variable ride has NP above its average power while a constant power
    has NP equal to it.
    """
    if len(power_1hz_w) < NP_WINDOW_S:
        return None
    rolling = _rolling_means(power_1hz_w, NP_WINDOW_S)
    # Python's ** (C pow) per value: numpy's power may differ in the last bit.
    mean_fourth = math.fsum(p**4 for p in np.maximum(rolling, 0.0).tolist()) / rolling.size
    return mean_fourth**0.25


def intensity_factor(normalized_power_w: float | None, ftp_w: float | None) -> float | None:
    """Intensity Factor, ``IF = NP / FTP`` (Coggan); ``None`` without NP or a positive FTP."""
    if normalized_power_w is None or ftp_w is None or ftp_w <= 0:
        return None
    return normalized_power_w / ftp_w


def training_stress_score(
    duration_s: float,
    normalized_power_w: float | None,
    ftp_w: float | None,
) -> float | None:
    """Training Stress Score, ``TSS = (sec × NP × IF) / (FTP × 3600) × 100`` (Coggan).

    One hour at exactly FTP scores 100.  ``duration_s`` is the length of the series NP was computed on
    (the elapsed 1 Hz series, stops included as 0 W, consistent with NP).  ``None`` without NP or a
    positive FTP.
    """
    if_ = intensity_factor(normalized_power_w, ftp_w)
    if if_ is None or normalized_power_w is None or ftp_w is None:
        return None
    return (duration_s * normalized_power_w * if_) / (ftp_w * 3600.0) * 100.0
