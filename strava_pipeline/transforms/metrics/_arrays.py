"""Input coercion shared by the metric functions.

Stream inputs arrive as polars Series (the typed stream table), numpy arrays (callers that already hold
them) or plain sequences (tests).  Every metric normalises them to Python lists here, so the formulas
themselves are plain loops over one representation, with no surprise dtype promotion.  Streams of one
activity are at most a few tens of thousands of samples, so plain Python is fast enough (milliseconds)
and keeps each formula readable next to its published definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any, TypeAlias

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
    times = to_floats(time_s)
    flags = to_bools(moving) if moving is not None else None
    if flags is not None:
        check_same_length(time_s=times, moving=flags)
    durations = [0.0] * len(times)
    valid = [i for i, t in enumerate(times) if t is not None]
    for i, j in pairwise(valid):
        if flags is not None and flags[i] is not True:
            continue
        t_i, t_j = times[i], times[j]
        assert t_i is not None and t_j is not None
        durations[i] = min(max(t_j - t_i, 0.0), max_gap_s)
    return durations
