"""The facts about landed activity summaries that stream planning, checks and the sensor share."""

from collections.abc import Callable, Collection, Sequence
from datetime import date

import polars as pl

from strava_pipeline.transforms.activities import ACTIVITY_RAW_SCHEMA, with_summary_columns
from strava_pipeline.transforms.sport_filter import sport_filter

#: (asset, days, columns) -> the landed rows of those days.
LandedReader = Callable[[str, Sequence[date], Sequence[str] | None], pl.DataFrame]

SUMMARY_KEYS = ["activity_id", "activity_date", "manual", "summary_fingerprint"]


def read_summary_keys(read: LandedReader, days: Sequence[date], sport_types: Collection[str] | None = None
                      ) -> pl.DataFrame:
    """``activities_raw``'s id, date, ``manual`` and fingerprint for ``days``, without reading payloads.

    ``sport_types`` (STRAVA_SPORT_TYPES): only the activities of those sports (their payloads are read for it).

    Days landed before those columns existed (a 0.1 mirror) are read with their payloads once and the
    columns computed from them, so an upgrade costs no request and no re-materialisation.
    """
    columns = SUMMARY_KEYS if sport_types is None else [*SUMMARY_KEYS, "payload"]
    try:
        frame = read("activities_raw", days, columns)
    except pl.exceptions.ColumnNotFoundError:
        frame = with_summary_columns(read("activities_raw", days, None)).select(columns)
    if frame.width == 0:  # nothing has landed yet
        return pl.DataFrame(schema={k: ACTIVITY_RAW_SCHEMA[k] for k in SUMMARY_KEYS})
    return sport_filter(frame, sport_types).select(SUMMARY_KEYS)
