"""Input coercion shared by the metric functions.

Stream inputs arrive as polars Series (the typed stream table), numpy arrays (callers that already hold
them) or plain sequences (tests).  Every metric normalises them here, to Python lists (``to_floats``,
``to_bools``) or to the equivalent numpy arrays (``float_array``: NaN where the list has None;
``true_mask``: True where it has True), so the formulas see one representation with no surprise dtype
promotion.  A backfill computes them for millions of samples, so the per-sample work runs in numpy: only
IEEE-exact elementwise operations, running sums with ``np.cumsum`` (sequential, like Python's ``sum``) and
the scalar ``math`` functions, so every result is bit-for-bit what the plain loops gave.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import polars as pl

#: Anything that holds one stream: a polars Series, a numpy array, or a sequence of numbers/None.
ArrayLike: TypeAlias = pl.Series | Sequence[Any] | Iterable[Any]

#: Longest interval (seconds) between two consecutive samples that still counts as recorded time.
#: The stream samples every 1–5 s (Strava "smart recording" records less often when nothing changes);
#: a longer interval is a recording gap (device auto-pause, dropout), not activity time, so each
#: interval is capped at this value.  10 s is twice the slowest regular sampling interval: ordinary
#: samples never hit the cap, and a pause of any length contributes at most 10 s.
DEFAULT_MAX_GAP_S: float = 10.0


def _raw_list(values: ArrayLike | None) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, pl.Series):
        return values.to_list()
    tolist = getattr(values, "tolist", None)  # numpy arrays, without importing numpy
    if callable(tolist):
        result = tolist()
        return result if isinstance(result, list) else [result]
    return list(values)


def _as_series(values: ArrayLike | None, dtype: pl.DataType) -> pl.Series | None:
    """The stream as a polars Series of ``dtype`` (unparseable entries null), or None if impossible."""
    try:
        if isinstance(values, pl.Series):
            series = values
            if series.dtype.is_float():
                series = series.fill_nan(None)
            return series.cast(dtype, strict=False)
        return pl.Series(values=_raw_list(values), dtype=dtype, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        return None


def to_floats(values: ArrayLike | None) -> list[float | None]:
    """Return the stream as floats, with null, NaN, infinite and non-numeric entries mapped to ``None``.

    The conversion runs in polars (a stream is converted once per metric, and a Python loop per
    element dominated the run time); a pure-Python path handles inputs polars refuses.
    """
    series = _as_series(values, pl.Float64())
    if series is not None:
        return series.set(~series.is_finite().fill_null(False), None).to_list()
    out: list[float | None] = []
    for v in _raw_list(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(f if math.isfinite(f) else None)
    return out


def to_bools(values: ArrayLike | None) -> list[bool | None]:
    """Return the stream as booleans, with nulls (and NaN) kept as ``None``."""
    if isinstance(values, pl.Series) and values.dtype == pl.Boolean():
        return values.to_list()
    series = _as_series(values, pl.Float64())  # via floats so NaN becomes null, not True
    if series is not None:
        return series.fill_nan(None).cast(pl.Boolean).to_list()
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v) for v in _raw_list(values)]


def float_array(values: ArrayLike | None) -> np.ndarray:
    """:func:`to_floats` as a float64 array: NaN exactly where it has ``None``."""
    if isinstance(values, pl.Series):
        # Integer and float columns go to numpy as they are (nulls become NaN): the same values as
        # polars' cast to Float64, without a polars query per stream.
        numeric = values.dtype.is_float() or values.dtype.is_integer()
        series = values if numeric else _as_series(values, pl.Float64())
        if series is not None:
            out = series.to_numpy().astype(np.float64, copy=True)
            out[~np.isfinite(out)] = np.nan
            return out
    floats = to_floats(values)
    return np.array(floats, dtype=np.float64) if floats else np.empty(0, dtype=np.float64)


def true_mask(values: ArrayLike | None) -> np.ndarray:
    """Where :func:`to_bools` has ``True`` (False for False and for null), as a boolean array."""
    if isinstance(values, pl.Series) and values.dtype == pl.Boolean():
        complete = values if values.null_count() == 0 else values.fill_null(False)
        return complete.to_numpy().astype(bool, copy=False)
    return np.array([v is True for v in to_bools(values)], dtype=bool)


def durations_array(times: np.ndarray, moving: np.ndarray | None, max_gap_s: float) -> np.ndarray:
    """:func:`sample_durations` of ``float_array`` times and a ``true_mask`` (or None), as an array."""
    durations = np.zeros(times.size, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(times))
    if valid.size < 2:
        return durations
    owners = valid[:-1]
    owned = np.minimum(np.maximum(times[valid[1:]] - times[owners], 0.0), max_gap_s)
    if moving is not None:
        owned = np.where(moving[owners], owned, 0.0)
    durations[owners] = owned
    return durations


def number_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Numbers (a series the caller built, e.g. ``power_1hz``) as float64; a None raises TypeError, as the
    arithmetic of the loops this replaces did (numpy would make it NaN)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    if None in values:
        raise TypeError("unsupported operand type(s) for +: 'float' and 'NoneType'")
    return np.array(values, dtype=np.float64)


def sequential_sum(values: np.ndarray) -> float:
    """``sum(values)`` as Python adds them, left to right (``np.sum`` adds pairwise: other last bits)."""
    return float(sum(values.tolist()))


def check_same_length(**streams: Sequence[Any]) -> None:
    """Raise ``ValueError`` when streams of one activity disagree in length (a caller bug)."""
    lengths = {name: len(s) for name, s in streams.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"streams must have the same length, got {lengths}")


def sample_durations(
    time_s: ArrayLike,
    moving: ArrayLike | None = None,
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> list[float]:
    """Seconds of recorded (and, if ``moving`` is given, moving) time attributed to each sample.

    Sample ``i`` owns the interval to the next sample, ``dt_i = t[i+1] - t[i]`` (forward attribution:
    the value a device reports holds until it reports again), capped at ``max_gap_s`` so a recording
    gap counts at most ``max_gap_s``.  The last sample owns nothing (there is no next sample).  When
    ``moving`` is given, intervals owned by a sample whose ``moving`` is false or null count 0: that is
    how pauses (stopped but still recording) are kept out of moving time, zone time and TRIMP.
    Samples with a null time own nothing and are skipped when looking for "the next sample"; a
    negative ``dt`` (out-of-order timestamps) counts 0.
    """
    times = float_array(time_s)
    flags = true_mask(moving) if moving is not None else None
    if flags is not None:
        check_same_length(time_s=times, moving=flags)
    return durations_array(times, flags, max_gap_s).tolist()
