"""The rules of the data-quality checks, as pure functions over frames (``*_problems``).

Each returns what is wrong (offending ids, days or counts), empty when all is well; the asset checks in
``defs.checks`` run them on what landed and record the answer per partition. Kept free of Dagster so the
rules are tested on plain frames.
"""

from collections.abc import Collection, Sequence
from datetime import date

import polars as pl

from strava_pipeline.transforms.activities import accepted_summaries
from strava_pipeline.transforms.streams import stream_lengths

#: Plausible heart rate, bpm: below is a strap glitch, above is no human heart.
HEARTRATE_MIN_BPM = 25
HEARTRATE_MAX_BPM = 250


def duplicate_id_problems(activities: pl.DataFrame) -> list[int]:
    """Activity ids that appear more than once (or are null: reported as -1)."""
    if activities.is_empty():
        return []
    ids = activities.get_column("activity_id")
    dupes = ids.filter(ids.is_duplicated()).drop_nulls().unique().to_list()
    return sorted(dupes) + ([-1] if ids.null_count() else [])


def missing_streams_problems(
    activities_raw: pl.DataFrame, streams_raw: pl.DataFrame, archived: Collection[int] = ()
) -> list[int]:
    """Non-manual activities with neither streams nor a recorded 404 in ``streams_raw``.

    ``activities_raw``: at least ``activity_id`` and ``manual``. ``archived``: activities whose original file
    the export archive holds (their samples come from it, so they need no streams).
    """
    if activities_raw.is_empty():
        return []
    recorded: set[int] = set()
    if not streams_raw.is_empty():
        recorded = set(
            streams_raw.filter(pl.col("status").is_in(["ok", "not_found"])).get_column("activity_id").to_list()
        )
    recorded_or_manual = pl.col("manual") | pl.col("activity_id").is_in(sorted(recorded | set(archived)))
    return sorted(activities_raw.filter(~recorded_or_manual).get_column("activity_id").to_list())


def unequal_stream_problems(streams_raw: pl.DataFrame) -> dict[int, dict[str, int]]:
    """Activities whose documented stream arrays differ in length: id -> {type: length}.

    A payload that is not a stream set at all is reported with the length ``-1`` under ``<payload>``.
    """
    problems: dict[int, dict[str, int]] = {}
    if streams_raw.is_empty():
        return problems
    ok = streams_raw.filter(pl.col("status") == "ok")
    for activity_id, payload in ok.select("activity_id", "payload").iter_rows():
        try:
            lengths = stream_lengths(payload, f"activity {activity_id}")
        except ValueError:  # PayloadError: not JSON, not a stream set, or no payload at all
            problems[activity_id] = {"<payload>": -1}
            continue
        if len(set(lengths.values())) > 1:
            problems[activity_id] = lengths
    return problems


def heartrate_problems(activity_streams: pl.DataFrame) -> dict[int, int]:
    """Activities with heart-rate samples outside 25..250 bpm: id -> number of such samples."""
    if activity_streams.is_empty():
        return {}
    hr = pl.col("heartrate_bpm")
    bad = (
        activity_streams.filter(hr.is_not_null() & ((hr < HEARTRATE_MIN_BPM) | (hr > HEARTRATE_MAX_BPM)))
        .group_by("activity_id")
        .len()
    )
    return dict(bad.iter_rows())


def raw_activity_keys(activities_raw: pl.DataFrame, export_raw: pl.DataFrame) -> pl.DataFrame:
    """(activity_id, activity_date) of every activity the raw layers hold once: the API's rows, plus the
    archive's rows with a usable summary whose id the API has not listed (what ``activities`` must hold).

    A summary ``activities_raw`` rejected (``rejected`` set: jsonb could not store it) has no typed row on
    purpose (``summaries_storable`` names it), so it is not expected; the archive's row does not replace it.
    """
    frames = []
    if activities_raw.width:
        frames.append(accepted_summaries(activities_raw).select("activity_id", "activity_date"))
    if export_raw.width:
        usable = export_raw.filter(pl.col("summary").is_not_null()).select("activity_id", "activity_date")
        if activities_raw.width:
            usable = usable.filter(~pl.col("activity_id").is_in(activities_raw["activity_id"].implode()))
        frames.append(usable)
    if not frames:
        return pl.DataFrame(schema={"activity_id": pl.Int64, "activity_date": pl.Date})
    return pl.concat(frames, how="vertical")


def row_count_problems(activities_raw: pl.DataFrame, activities: pl.DataFrame, days: Sequence[date]
                       ) -> dict[str, tuple[int, int]]:
    """Days whose raw and typed row counts differ: 'YYYY-MM-DD' -> (raw, typed)."""

    def counts(frame: pl.DataFrame) -> dict[date, int]:
        if frame.is_empty():
            return {}
        return dict(frame.group_by("activity_date").len().iter_rows())

    raw, typed = counts(activities_raw), counts(activities)
    return {
        day.isoformat(): (raw.get(day, 0), typed.get(day, 0))
        for day in sorted({*days, *raw, *typed})
        if raw.get(day, 0) != typed.get(day, 0)
    }


def unreadable_export_problems(export_raw: pl.DataFrame) -> dict[int, str]:
    """Archive activities whose original file is missing or could not be read: id -> the reason."""
    if export_raw.width == 0 or export_raw.is_empty():
        return {}
    bad = export_raw.filter(pl.col("status").is_in(["failed", "missing_file"]))
    return {a: e or s for a, s, e in bad.select("activity_id", "status", "error").iter_rows()}


def unstorable_summary_problems(activities_raw: pl.DataFrame) -> dict[int, str]:
    """Activities whose listed summary landed rejected (jsonb cannot store it verbatim): id -> the reason."""
    if "rejected" not in activities_raw.columns or activities_raw.is_empty():
        return {}
    bad = activities_raw.filter(pl.col("rejected").is_not_null())
    return dict(bad.select("activity_id", "rejected").iter_rows())
