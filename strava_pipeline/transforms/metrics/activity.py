"""Per-activity metric row: composes the stream metrics for one activity and the athlete's settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ._arrays import DEFAULT_MAX_GAP_S, check_same_length, durations_array, float_array, sequential_sum, true_mask
from .efforts import BEST_EFFORT_DISTANCES_M, best_efforts
from .heartrate import (
    DEFAULT_MAX_HR,
    DEFAULT_RESTING_HR,
    HrZone,
    _average_heartrate,
    _max_heartrate,
    _time_in_zones,
    _trimp,
    default_hr_zones,
    hr_zones_from_lower_bounds,
)
from .movement import DEFAULT_ELEVATION_THRESHOLD_M, DEFAULT_ELEVATION_WINDOW, _elevation_gain
from .power import (
    POWER_CURVE_DURATIONS_S,
    _power_1hz,
    intensity_factor,
    normalized_power,
    power_curve,
    training_stress_score,
)

#: Number of heart-rate zones in a metrics row (Strava always has five).
N_HR_ZONES: int = 5


@dataclass(frozen=True)
class AthleteSettings:
    """The athlete's physiological settings the metrics depend on (all optional).

    * ``ftp_w`` — functional threshold power, watts (Strava's athlete ``ftp``); without it IF, TSS
      are ``None`` and load falls back to TRIMP.
    * ``max_hr``, ``resting_hr`` — bpm; TRIMP and the fallback zones use
      :data:`~.heartrate.DEFAULT_MAX_HR` (190) and :data:`~.heartrate.DEFAULT_RESTING_HR` (60) when
      unset.
    * ``sex`` — ``"M"``/``"F"`` as in Strava's athlete ``sex``; selects TRIMP's constants (unset: men's).
    * ``hr_zones`` — the athlete's Strava heart-rate zones (``[{"min": .., "max": ..}, ...]``, top
      ``max`` -1); used when there are exactly five, else :func:`~.heartrate.default_hr_zones` of
      ``max_hr``.
    """

    ftp_w: float | None = None
    max_hr: float | None = None
    resting_hr: float | None = None
    sex: str | None = None
    hr_zones: Sequence[HrZone] | None = None

    def __post_init__(self) -> None:
        """Reject settings no formula can use, at configuration time rather than mid-backfill."""
        if self.ftp_w is not None and self.ftp_w <= 0:
            raise ValueError(f"ftp_w must be positive, got {self.ftp_w}")
        if self.effective_max_hr <= self.effective_resting_hr:
            raise ValueError(f"max_hr ({self.effective_max_hr}) must exceed resting_hr ({self.effective_resting_hr})")

    @property
    def effective_max_hr(self) -> float:
        """``max_hr``, or :data:`~.heartrate.DEFAULT_MAX_HR` when unset."""
        return self.max_hr or DEFAULT_MAX_HR

    @property
    def effective_resting_hr(self) -> float:
        """``resting_hr``, or :data:`~.heartrate.DEFAULT_RESTING_HR` when unset."""
        return self.resting_hr or DEFAULT_RESTING_HR

    @classmethod
    def from_athlete_row(
        cls,
        row: Mapping[str, Any],
        *,
        max_hr: float | None = None,
        resting_hr: float | None = None,
    ) -> AthleteSettings:
        """Settings from a typed athlete row (``ftp_w``, ``sex``, ``hr_zone_1_min_bpm`` … ``_5_``).

        Strava's API exposes neither maximum nor resting heart rate, so those come from configuration.
        """
        bounds = [row.get(f"hr_zone_{k}_min_bpm") for k in range(1, N_HR_ZONES + 1)]
        ftp = row.get("ftp_w")
        return cls(
            ftp_w=float(ftp) if ftp and ftp > 0 else None,
            max_hr=max_hr,
            resting_hr=resting_hr,
            sex=row.get("sex"),
            hr_zones=hr_zones_from_lower_bounds(bounds),
        )

    def effective_hr_zones(self) -> list[HrZone]:
        """The zones used for time in zones: the athlete's five Strava zones, else the %HRmax default."""
        if self.hr_zones is not None and len(self.hr_zones) == N_HR_ZONES:
            return list(self.hr_zones)
        return list(default_hr_zones(self.effective_max_hr))


#: Polars schema of the row returned by :func:`activity_metrics`, in column order.  Durations are
#: Float64 seconds (best efforts are interpolated between samples, so they are fractional).
ACTIVITY_METRICS_SCHEMA: dict[str, pl.DataType] = {
    "moving_time_s": pl.Float64(),
    "elevation_gain_m": pl.Float64(),
    "avg_heartrate_bpm": pl.Float64(),
    "max_heartrate_bpm": pl.Float64(),
    **{f"hr_zone_{k}_s": pl.Float64() for k in range(1, N_HR_ZONES + 1)},
    **{f"best_{name}_s": pl.Float64() for name in BEST_EFFORT_DISTANCES_M},
    **{f"power_{name}_w": pl.Float64() for name in POWER_CURVE_DURATIONS_S},
    "normalized_power_w": pl.Float64(),
    "intensity_factor": pl.Float64(),
    "tss": pl.Float64(),
    "trimp": pl.Float64(),
    "load": pl.Float64(),
    "load_source": pl.String(),
}


def _column(streams: pl.DataFrame, name: str) -> pl.Series | None:
    return streams.get_column(name) if name in streams.columns else None


def activity_metrics(streams: pl.DataFrame, settings: AthleteSettings) -> dict[str, Any]:
    """All metrics of one activity from its typed streams, as one row matching ACTIVITY_METRICS_SCHEMA.

    ``streams`` is the typed stream table of one activity (``time_s``, ``distance_m``,
    ``altitude_m``, ``heartrate_bpm``, ``watts``, ``moving``, ...); any column may be absent or null.
    Rows without ``time_s`` are dropped and the rest ordered by time.  Time-weighted heart-rate
    metrics (average, zones, TRIMP) count moving time only, like moving time itself; best efforts use
    elapsed time; power is resampled to 1 Hz over elapsed time with stops as 0 W (see
    :func:`~.power.power_1hz`).  A metric whose input is missing is ``None`` — an activity without
    streams (a manual entry) gives ``None`` everywhere, including moving time.

    ``load`` is the activity's training load for :func:`~.load.daily_training_load`: TSS when there is
    power data and an FTP (the PMC's native unit), else Banister TRIMP from heart rate, else ``None``.
    ``load_source`` says which (``"tss"``, ``"trimp"`` or ``None``).  The scales are of the same order
    but not equal (an hour at threshold is 100 TSS and roughly 150–170 TRIMP for a man at ~85 % of
    heart-rate reserve), so an athlete whose power meter comes and goes gets a mixed series; TSS is
    preferred because it is the PMC's native unit and power does not drift with heat or fatigue.
    """
    row: dict[str, Any] = dict.fromkeys(ACTIVITY_METRICS_SCHEMA)
    if "time_s" not in streams.columns:
        return row
    time = streams.get_column("time_s")
    # The typed table's integer times are usually complete and in order already: nothing to drop or move.
    if not (time.dtype.is_integer() and time.null_count() == 0 and time.is_sorted()):
        streams = streams.filter(pl.col("time_s").is_not_null()).sort("time_s", maintain_order=True)
    if streams.height == 0:
        return row

    # Each stream converted once; the metrics below are what the public functions compute from them.
    time = streams.get_column("time_s")
    times = float_array(time)
    moving = _column(streams, "moving")
    flags = true_mask(moving) if moving is not None else None
    if flags is not None:
        check_same_length(time_s=times, moving=flags)
    durations = durations_array(times, flags, DEFAULT_MAX_GAP_S)  # what each sample owns, stops excluded
    heartrate = _column(streams, "heartrate_bpm")
    altitude = _column(streams, "altitude_m")
    distance = _column(streams, "distance_m")
    watts = _column(streams, "watts")

    row["moving_time_s"] = sequential_sum(durations)
    if altitude is not None:
        row["elevation_gain_m"] = _elevation_gain(float_array(altitude), window=DEFAULT_ELEVATION_WINDOW,
                                                  threshold_m=DEFAULT_ELEVATION_THRESHOLD_M)

    hr = float_array(heartrate) if heartrate is not None else None
    if hr is not None and (max_hr := _max_heartrate(hr)) is not None:
        check_same_length(heartrate=hr, time_s=durations)
        row["avg_heartrate_bpm"] = _average_heartrate(hr, durations)
        row["max_heartrate_bpm"] = max_hr
        zones = _time_in_zones(hr, durations, settings.effective_hr_zones())
        for k, seconds in enumerate(zones, start=1):
            row[f"hr_zone_{k}_s"] = seconds
        if settings.effective_max_hr <= settings.effective_resting_hr:
            raise ValueError(f"max_hr ({settings.effective_max_hr}) must exceed resting_hr "
                             f"({settings.effective_resting_hr})")
        row["trimp"] = _trimp(hr, durations, resting_hr=settings.effective_resting_hr,
                              max_hr=settings.effective_max_hr, sex=settings.sex)

    if distance is not None:
        for name, seconds in best_efforts(distance, time).items():
            row[f"best_{name}_s"] = seconds

    if watts is not None:
        power = float_array(watts)
        check_same_length(time_s=times, watts=power)
        series = _power_1hz(times, power, flags, DEFAULT_MAX_GAP_S)
        if series.size:
            for name, value in power_curve(series).items():
                row[f"power_{name}_w"] = value
            np_w = normalized_power(series)
            row["normalized_power_w"] = np_w
            row["intensity_factor"] = intensity_factor(np_w, settings.ftp_w)
            row["tss"] = training_stress_score(series.size, np_w, settings.ftp_w)

    if row["tss"] is not None:
        row["load"], row["load_source"] = row["tss"], "tss"
    elif row["trimp"] is not None:
        row["load"], row["load_source"] = row["trimp"], "trimp"
    return row
