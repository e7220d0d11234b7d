"""An archive activity as a summary in Strava's own shape, so one typed transform serves both sources.

The API's SummaryActivity is the row of record; an activity only the archive knows gets the same keys
from its ``activities.csv`` row and its original file (start position, local time), plus the fields the
API does not expose (``transforms.activities.ARCHIVE_ONLY_FIELDS``, under their column names, which are
also ``ExportActivity``'s attribute names), merged into API rows too.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from strava_pipeline.export.activities_csv import ExportActivity
from strava_pipeline.export.local_time import LocalStart
from strava_pipeline.transforms.activities import ARCHIVE_ONLY_FIELDS

__all__ = ["export_summary"]


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def export_summary(
    activity: ExportActivity,
    local: LocalStart,
    *,
    start_latlng: tuple[float, float] | None = None,
    end_latlng: tuple[float, float] | None = None,
    has_heartrate: bool | None = None,
) -> dict[str, Any]:
    """SummaryActivity-shaped JSON for an archive row (``manual`` when the row has no file)."""
    start = activity.start_date_utc.astimezone(UTC)
    summary: dict[str, Any] = {
        "id": activity.activity_id,
        "name": activity.name,
        "sport_type": activity.sport_type,
        "type": activity.sport_type,
        "start_date": _iso(start),
        "start_date_local": local.local.isoformat() + "Z",  # Strava writes local times with a Z, too
        "timezone": local.timezone,
        "utc_offset": float(local.utc_offset_s),
        "distance": activity.distance_m,
        "moving_time": None if activity.moving_time_s is None else round(activity.moving_time_s),
        "elapsed_time": None if activity.elapsed_time_s is None else round(activity.elapsed_time_s),
        "total_elevation_gain": activity.elevation_gain_m,
        "average_speed": activity.average_speed_mps,
        "max_speed": activity.max_speed_mps,
        "has_heartrate": has_heartrate if has_heartrate is not None else activity.average_heartrate_bpm is not None,
        "average_heartrate": activity.average_heartrate_bpm,
        "max_heartrate": activity.max_heartrate_bpm,
        "average_cadence": activity.average_cadence,
        "average_watts": activity.average_watts,
        "calories": activity.calories,
        "commute": activity.commute,
        "manual": activity.filename is None,
        "start_latlng": list(start_latlng) if start_latlng else [],
        "end_latlng": list(end_latlng) if end_latlng else [],
    }
    for field in ARCHIVE_ONLY_FIELDS:
        summary[field.column] = getattr(activity, field.column)
    return summary
