"""Which sports the stream-level work covers: ``STRAVA_SPORT_TYPES`` (e.g. ``Run,TrailRun``).

An athlete who only cares about runs should not spend API requests, CPU and disk on rides: with a filter
set, streams are requested only for the selected sport types, and metrics, activity files and the sinks
only process those. Summaries of every sport are always kept (they cost one listing page per 200
activities, and the weekly totals and views count every activity). Streams that already landed for other
sports stay (they were paid for, and are never requested again), and the archive's recordings of every sport
are read into ``activity_streams`` as before (they cost nothing): it is what is *derived* from samples that
follows the filter.

Pure functions on polars frames; the sport of a row is read from a ``sport_type`` column (``activities``)
or from the JSON summary it carries (``payload`` of ``activities_raw``, ``summary`` of
``export_activities_raw``). An activity without a known sport is left out while a filter is set.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import polars as pl

__all__ = [
    "SPORT_TYPES", "SPORT_TYPES_VARIABLE", "SportTypesError", "of_selected_activities", "parse_sport_types",
    "sport_filter",
]

SPORT_TYPES_VARIABLE = "STRAVA_SPORT_TYPES"

#: Strava's ``SportType`` enumeration (API v3 models), the names ``sport_type`` takes.
SPORT_TYPES: tuple[str, ...] = (
    "AlpineSki", "BackcountrySki", "Badminton", "Basketball", "Canoeing", "Cricket", "Crossfit", "Dance",
    "EBikeRide", "Elliptical", "EMountainBikeRide", "Golf", "GravelRide", "Handcycle",
    "HighIntensityIntervalTraining", "Hike", "IceSkate", "InlineSkate", "Kayaking", "Kitesurf",
    "MountainBikeRide", "NordicSki", "Padel", "PhysicalTherapy", "Pickleball", "Pilates", "Racquetball", "Ride",
    "RockClimbing", "RollerSki", "Rowing", "Run", "Sail", "Skateboard", "Snowboard", "Snowshoe", "Soccer",
    "Squash", "StairStepper", "StandUpPaddling", "Surfing", "Swim", "TableTennis", "Tennis", "TrailRun",
    "Velomobile", "VirtualRide", "VirtualRow", "VirtualRun", "Volleyball", "Walk", "WeightTraining",
    "Wheelchair", "Windsurf", "Workout", "Yoga",
)
_BY_FOLDED = {name.casefold(): name for name in SPORT_TYPES}

#: JSON columns that hold a whole summary, whose ``sport_type`` key names the sport.
_SUMMARY_COLUMNS = ("payload", "summary")


class SportTypesError(ValueError):
    """A sport type the filter does not know: the message names the variable and lists the valid names."""


def parse_sport_types(names: str | Iterable[str] | None, *, source: str = SPORT_TYPES_VARIABLE
                      ) -> frozenset[str] | None:
    """The selected sport types in Strava's spelling, or None for every sport (unset, or only blanks).

    ``names``: a comma-separated string or its items; matched case-insensitively ("trailrun" is TrailRun).
    Raises SportTypesError naming ``source`` for an unknown name.
    """
    if names is None:
        return None
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted = [item.strip() for item in items if item and item.strip()]
    if not wanted:
        return None
    unknown = [name for name in wanted if name.casefold() not in _BY_FOLDED]
    if unknown:
        raise SportTypesError(
            f"{source}: unknown sport type{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(SPORT_TYPES)}"
        )
    return frozenset(_BY_FOLDED[name.casefold()] for name in wanted)


def _sport_of(frame: pl.DataFrame) -> pl.Expr:
    if "sport_type" in frame.columns:
        return pl.col("sport_type")
    for column in _SUMMARY_COLUMNS:
        if column in frame.columns:
            return pl.col(column).str.json_path_match("$.sport_type")
    raise ValueError(f"no sport in a frame of columns {frame.columns}: needs sport_type, payload or summary")


def sport_filter(frame: pl.DataFrame, sport_types: Collection[str] | None) -> pl.DataFrame:
    """The rows of ``frame`` whose activity is of a selected sport; every row when ``sport_types`` is None.

    A frame that never materialised (no columns) is returned as it is.
    """
    if sport_types is None or frame.width == 0:
        return frame
    return frame.filter(_sport_of(frame).is_in(sorted(sport_types)).fill_null(False))


def of_selected_activities(samples: pl.DataFrame, activities: pl.DataFrame, sport_types: Collection[str] | None
                           ) -> pl.DataFrame:
    """Rows of ``samples`` (any frame with ``activity_id``, e.g. ``activity_streams``) whose activity in
    ``activities`` (typed summaries) is of a selected sport; every row when ``sport_types`` is None."""
    if sport_types is None or samples.width == 0:
        return samples
    kept = sport_filter(activities, sport_types)
    ids = kept.get_column("activity_id") if kept.width else pl.Series("activity_id", [], pl.Int64)
    return samples.filter(pl.col("activity_id").is_in(ids.implode()))
