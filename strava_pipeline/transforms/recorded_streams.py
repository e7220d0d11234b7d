"""The streams Strava derives but an original file may lack, computed from the samples it does carry.

A decoded recording (``export.recordings``) has what the device wrote: a FIT file usually carries speed
and distance, a TCX file distance and often speed, a GPX file only positions, times and sensors. Strava's
API serves ``velocity_smooth``, ``grade_smooth`` and ``moving`` for every activity; ``complete_streams``
fills them, and distance when the file has none, so both sources fill the same typed table. Pure: numpy
and polars only.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from strava_pipeline.transforms.streams import STREAM_SCHEMA, UTC_TS

__all__ = ["RECORDING_SCHEMA", "complete_streams"]

#: One row per recorded sample, in file order. ``timestamp`` is the sample's UTC time (null when the
#: file has none, or only device-relative times); ``time_s`` counts seconds from the first timed sample.
RECORDING_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": UTC_TS,
    **{column: STREAM_SCHEMA[column] for column in (
        "time_s", "lat", "lng", "altitude_m", "distance_m", "velocity_mps", "heartrate_bpm",
        "cadence_rpm", "watts", "temp_c", "moving", "grade_pct",
    )},
}

_NEEDED = ("time_s", "lat", "lng", "altitude_m", "distance_m", "velocity_mps", "moving", "grade_pct")

#: Mean Earth radius (IUGG), metres: haversine distances with it are within 0.5 % of the ellipsoid's.
EARTH_RADIUS_M = 6_371_008.8


def complete_streams(
    samples: pl.DataFrame,
    *,
    velocity_window_s: float = 5.0,
    grade_window_m: float = 80.0,
    moving_threshold_mps: float = 0.5,
    long_gap_s: float = 10.0,
    position_window_s: float = 2.0,
    still_mps: float = 0.2,
    max_grade_pct: float = 100.0,
) -> pl.DataFrame:
    """``samples`` with ``distance_m``, ``velocity_mps``, ``grade_pct`` and ``moving`` filled where null.

    Values the file carries are never replaced; a stream that cannot be computed stays null. Times come
    from ``timestamp`` (sub-second) when the frame has any, else from ``time_s``. The rules:

    - **distance** (only when the column has no value at all): cumulative haversine distance between
      consecutive positions, after a centred moving average of the positions over +-``position_window_s``
      (as many samples each side), skipping steps where the smoothed track covered less than ``still_mps``
      over +-2x that window: GPS jitter would otherwise add ~0.8 m a sample while standing still. 0 before
      the first fix, held over samples without a position. Without times, a sample counts as a second; with
      times on only some samples, positions are not smoothed.
    - **velocity** (m/s, like Strava's ``velocity_smooth``): distance gained over the trailing
      ``velocity_window_s`` seconds divided by the time taken, always spanning at least the previous
      sample (so sparse "smart" recording still gets a speed); 0 at the first sample; null without times.
    - **grade** (%, like ``grade_smooth``): altitude change across a window of ``grade_window_m`` metres of
      distance centred on the sample (halved at the ends of the track, altitude interpolated linearly),
      divided by that distance; null where the window spans under 1 m. Between two samples altitude counts
      only up to ``max_grade_pct`` of the distance covered, so altitude changing while the distance stands
      still (barometer drift at a stop, a lift) adds no grade.
    - **moving**: the speed over the interval ending at the sample is above ``moving_threshold_mps``
      (0.5 m/s: a slow walk or a steep hike still moves; Strava documents 30 min/mile, 0.89 m/s, for
      runs). That speed is the file's own where it has one, else the distance gained over the interval;
      after a gap longer than ``long_gap_s`` (the device auto-paused) it is always the interval's average,
      so a pause is not moving time even when the device reports its speed on resuming. The first sample
      ends no interval and is never moving. A recording with times and no positions whose distance never
      passes 1 m and whose speed is never above 0 (strength, yoga, an indoor session without a sensor,
      however the device fills its distance field) has nothing to move: every sample
      counts as moving time except one ending a gap longer than ``long_gap_s`` (the device paused), as
      Strava counts such sessions; null without times.
    """
    missing = [column for column in _NEEDED if column not in samples.columns]
    if missing:
        raise ValueError(f"samples lack the columns {missing}")
    n = samples.height
    if n == 0:
        return samples
    t = _seconds(samples)
    lat = _floats(samples, "lat")
    lng = _floats(samples, "lng")
    alt = _floats(samples, "altitude_m")
    dist = _floats(samples, "distance_m")
    speed = _floats(samples, "velocity_mps")
    if np.isnan(dist).all():
        dist = _distance_from_positions(t, lat, lng, position_window_s, still_mps)
    held = _forward_fill(dist)
    velocity = _velocity(t, held, velocity_window_s)
    moving = _moving(t, held, speed, moving_threshold_mps, long_gap_s)
    if _stationary(lat, held, speed) and not np.isnan(t).all():
        moving = _moving_by_time(t, long_gap_s)
    grade = _grade(held, alt, grade_window_m, max_grade_pct)
    return samples.with_columns(
        pl.col("distance_m").fill_null(pl.Series(dist, dtype=pl.Float64, nan_to_null=True)),
        pl.col("velocity_mps").fill_null(pl.Series(velocity, dtype=pl.Float64, nan_to_null=True)),
        pl.col("grade_pct").fill_null(pl.Series(grade, dtype=pl.Float64, nan_to_null=True)),
        pl.col("moving").fill_null(pl.Series(moving if moving is not None else [None] * n, dtype=pl.Boolean)),
    )


def _floats(samples: pl.DataFrame, column: str) -> np.ndarray:
    return samples.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy()


def _seconds(samples: pl.DataFrame) -> np.ndarray:
    """Seconds since the first timed sample (NaN where unknown): from ``timestamp`` when any, else ``time_s``."""
    if "timestamp" in samples.columns and samples.get_column("timestamp").null_count() < samples.height:
        us = samples.get_column("timestamp").dt.epoch("us").cast(pl.Float64).fill_null(np.nan).to_numpy()
        return (us - us[~np.isnan(us)][0]) / 1e6
    return _floats(samples, "time_s")


def _forward_fill(values: np.ndarray) -> np.ndarray:
    """NaNs replaced by the last value before them (leading NaNs stay)."""
    valid = ~np.isnan(values)
    if valid.all() or not valid.any():
        return values
    last = np.maximum.accumulate(np.where(valid, np.arange(values.size), -1))
    out = np.where(last >= 0, values[np.maximum(last, 0)], np.nan)
    return out


def _windowed_mean(t: np.ndarray, values: np.ndarray, half: float) -> np.ndarray:
    """Mean of ``values`` over the samples within ``half`` seconds of each point (``t`` non-decreasing),
    as many on each side, so the window shrinks towards the ends and a straight, even track stays exact."""
    i = np.arange(t.size)
    lo = np.searchsorted(t, t - half, side="left")
    hi = np.searchsorted(t, t + half, side="right") - 1
    k = np.minimum(i - lo, hi - i)
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    return (cumulative[i + k + 1] - cumulative[i - k]) / (2 * k + 1)


def _haversine(phi1: np.ndarray, lam1: np.ndarray, phi2: np.ndarray, lam2: np.ndarray) -> np.ndarray:
    a = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin((lam2 - lam1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _distance_from_positions(t: np.ndarray, lat: np.ndarray, lng: np.ndarray, half_window_s: float,
                             still_mps: float) -> np.ndarray:
    fixes = np.flatnonzero(~np.isnan(lat) & ~np.isnan(lng))
    out = np.full(lat.size, np.nan)
    if fixes.size == 0:
        return out
    times = t[fixes]
    if np.isnan(times).all():
        times = fixes.astype(np.float64)  # no clock at all: one sample, one second
    elif np.isnan(times).any() or (np.diff(times) < 0).any():
        # A partial or unordered clock: smoothing by index could average across a jump between tracks.
        times, half_window_s = fixes.astype(np.float64), 0.0
    # Unwrapped longitudes average correctly across the antimeridian; haversine only uses differences.
    phi = np.radians(_windowed_mean(times, lat[fixes], half_window_s))
    lam = np.radians(_windowed_mean(times, np.degrees(np.unwrap(np.radians(lng[fixes]))), half_window_s))
    steps = _haversine(phi[:-1], lam[:-1], phi[1:], lam[1:])
    # Jitter gate: a step counts only if the track got somewhere over the seconds around it.
    span = 2 * half_window_s
    a = np.searchsorted(times, times[:-1] - span, side="left")
    b = np.searchsorted(times, times[1:] + span, side="right") - 1
    elapsed = times[b] - times[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = _haversine(phi[a], lam[a], phi[b], lam[b]) / elapsed
    steps = np.where((elapsed > 0) & (chord < still_mps), 0.0, steps)
    out[fixes] = np.concatenate(([0.0], np.cumsum(steps)))
    out = _forward_fill(out)
    out[: fixes[0]] = 0.0
    return out


def _stationary(lat: np.ndarray, dist: np.ndarray, speed: np.ndarray) -> bool:
    """No position, no distance worth a metre, no speed: a workout in one place."""
    with np.errstate(invalid="ignore"):
        far = bool(np.nanmax(dist) >= 1.0) if not np.isnan(dist).all() else False
        fast = bool(np.nanmax(speed) > 0) if not np.isnan(speed).all() else False
    return np.isnan(lat).all() and not far and not fast


def _moving_by_time(t: np.ndarray, long_gap_s: float) -> np.ndarray:
    """Moving for a stationary workout: every timed sample but the first, unless it ends a pause."""
    out = np.zeros(t.size, dtype=bool)
    rows = np.flatnonzero(~np.isnan(t))
    with np.errstate(invalid="ignore"):
        out[rows] = np.diff(t[rows], prepend=np.nan) <= long_gap_s  # the first sample (nan gap) is not moving
    return out


def _velocity(t: np.ndarray, dist: np.ndarray, window_s: float) -> np.ndarray:
    out = np.full(t.size, np.nan)
    rows = np.flatnonzero(~np.isnan(t) & ~np.isnan(dist))
    if rows.size == 0:
        return out
    tm = np.maximum.accumulate(t[rows])  # a clock stepping back must not break the search
    d = dist[rows]
    start = np.minimum(np.searchsorted(tm, tm - window_s, side="left"), np.arange(rows.size) - 1)
    start[0] = 0
    elapsed = tm - tm[start]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(elapsed > 0, (d - d[start]) / elapsed, np.nan)
    v[0] = 0.0
    out[rows] = _forward_fill(v)  # samples sharing one timestamp take the speed before them
    return out


def _moving(t: np.ndarray, dist: np.ndarray, speed: np.ndarray, threshold: float,
            long_gap_s: float) -> np.ndarray | None:
    """Moving flags, or None when no sample has a speed or a distance and time to judge by."""
    n = t.size
    dt = np.full(n, np.nan)
    dd = np.full(n, np.nan)
    dt[1:] = np.diff(t)
    dd[1:] = np.diff(dist)
    with np.errstate(divide="ignore", invalid="ignore"):
        interval = np.where(dt > 0, dd / dt, np.nan)
    observed = np.where(np.isnan(speed), interval, speed)
    judged = np.where((dt > long_gap_s) & ~np.isnan(interval), interval, observed)
    known = ~np.isnan(judged)
    if not known.any():
        return None
    flags = np.where(known, judged > threshold, False)
    last = np.maximum.accumulate(np.where(known, np.arange(n), -1))
    moving = np.where(last >= 0, flags[np.maximum(last, 0)], False)  # an unknown sample keeps the state before it
    moving[0] = False
    return moving


def _grade(dist: np.ndarray, alt: np.ndarray, window_m: float, max_grade_pct: float) -> np.ndarray:
    out = np.full(dist.size, np.nan)
    rows = np.flatnonzero(~np.isnan(dist) & ~np.isnan(alt))
    if rows.size < 2:
        return out
    d = np.maximum.accumulate(dist[rows])
    # The altitude profile along the distance, each step's climb capped at max_grade_pct of its distance:
    # altitude that changes while the distance stands still (barometer drift at a stop, a lift) is no grade.
    cap = max_grade_pct / 100 * np.diff(d)
    climb = np.clip(np.diff(alt[rows]), -cap, cap)
    profile = alt[rows][0] + np.concatenate(([0.0], np.cumsum(climb)))
    track, first = np.unique(d, return_index=True)  # np.interp needs strictly increasing distances
    if track.size < 2:
        return out
    profile = profile[first]
    lo = np.clip(d - window_m / 2, track[0], track[-1])
    hi = np.clip(d + window_m / 2, track[0], track[-1])
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        grade = 100 * (np.interp(hi, track, profile) - np.interp(lo, track, profile)) / span
    out[rows] = np.where(span >= 1.0, grade, np.nan)
    return out
