"""Pure metric functions over one activity's streams and an athlete's history.

No I/O and no Dagster here: every function takes arrays (polars Series, numpy arrays or sequences,
nulls allowed) or polars DataFrames and returns plain values or DataFrames, so they can be tested
against published worked examples and reused by any asset.

Shared conventions (documented in detail on each function):

* Sample ``i`` owns the interval to the next sample, capped at ``DEFAULT_MAX_GAP_S`` (10 s) so
  recording gaps are not counted as activity time; with a ``moving`` stream, stopped samples own
  nothing.  Moving time, time in zones, average HR and TRIMP all use this.
* Best efforts use elapsed time; power is resampled to 1 Hz over elapsed time, stops and gaps as 0 W.
"""

from ._arrays import DEFAULT_MAX_GAP_S, ArrayLike, sample_durations
from .activity import ACTIVITY_METRICS_SCHEMA, N_HR_ZONES, AthleteSettings, activity_metrics
from .efforts import BEST_EFFORT_DISTANCES_M, best_effort_s, best_efforts
from .heartrate import (
    DEFAULT_MAX_HR,
    DEFAULT_RESTING_HR,
    DEFAULT_ZONE_UPPER_FRACTIONS,
    TRIMP_COEFFICIENTS,
    HrZone,
    average_heartrate_bpm,
    default_hr_zones,
    hr_zones_from_lower_bounds,
    max_heartrate_bpm,
    time_in_hr_zones,
    trimp,
)
from .load import (
    ATL_DAYS,
    CTL_DAYS,
    DAILY_TRAINING_LOAD_SCHEMA,
    WEEKLY_SUMMARY_SCHEMA,
    daily_training_load,
    weekly_summary,
)
from .movement import (
    DEFAULT_ELEVATION_THRESHOLD_M,
    DEFAULT_ELEVATION_WINDOW,
    elevation_gain_m,
    hysteresis_gain,
    moving_time_s,
    smooth_centred,
)
from .power import (
    NP_WINDOW_S,
    POWER_CURVE_DURATIONS_S,
    intensity_factor,
    mean_max_power,
    normalized_power,
    power_1hz,
    power_curve,
    training_stress_score,
)

__all__ = [
    "ACTIVITY_METRICS_SCHEMA",
    "ATL_DAYS",
    "BEST_EFFORT_DISTANCES_M",
    "CTL_DAYS",
    "DAILY_TRAINING_LOAD_SCHEMA",
    "DEFAULT_ELEVATION_THRESHOLD_M",
    "DEFAULT_ELEVATION_WINDOW",
    "DEFAULT_MAX_GAP_S",
    "DEFAULT_MAX_HR",
    "DEFAULT_RESTING_HR",
    "DEFAULT_ZONE_UPPER_FRACTIONS",
    "NP_WINDOW_S",
    "N_HR_ZONES",
    "POWER_CURVE_DURATIONS_S",
    "TRIMP_COEFFICIENTS",
    "WEEKLY_SUMMARY_SCHEMA",
    "ArrayLike",
    "AthleteSettings",
    "HrZone",
    "activity_metrics",
    "average_heartrate_bpm",
    "best_effort_s",
    "best_efforts",
    "daily_training_load",
    "default_hr_zones",
    "elevation_gain_m",
    "hr_zones_from_lower_bounds",
    "hysteresis_gain",
    "intensity_factor",
    "max_heartrate_bpm",
    "mean_max_power",
    "moving_time_s",
    "normalized_power",
    "power_1hz",
    "power_curve",
    "sample_durations",
    "smooth_centred",
    "time_in_hr_zones",
    "training_stress_score",
    "trimp",
    "weekly_summary",
]
