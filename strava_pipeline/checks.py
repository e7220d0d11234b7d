"""Data-quality checks on the raw and typed layers, run with the materialisations they check.

Each check on a partitioned asset is partitioned like it and examines exactly the partitions of its run
(``context.partition_keys``), reading what landed in Parquet: the copy every downstream asset reads.
The checks are *blocking*: a failure stops the run's downstream assets (typed streams, metrics) before
they compute numbers from bad data, and the run fails, so a headless backfill raises.

The rules themselves are pure functions over frames (``*_problems``), so they are tested without Dagster.
"""

import json
import warnings
from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from strava_pipeline.assets.partitions import daily_partitions
from strava_pipeline.resources import LandedDataResource
from strava_pipeline.settings import Settings
from strava_pipeline.transforms.streams import stream_lengths

#: Plausible heart rate, bpm: below is a strap glitch, above is no human heart.
HEARTRATE_MIN_BPM = 25
HEARTRATE_MAX_BPM = 250

#: How many offending ids a check lists in its metadata.
SAMPLE = 20


def _days(context: dg.AssetCheckExecutionContext) -> list[date]:
    return [date.fromisoformat(key) for key in context.partition_keys]


def _ids(values: Sequence[Any]) -> dg.MetadataValue:
    return dg.MetadataValue.json(sorted(values)[:SAMPLE])


def duplicate_id_problems(activities: pl.DataFrame) -> list[int]:
    """Activity ids that appear more than once (or are null: reported as -1)."""
    if activities.is_empty():
        return []
    ids = activities.get_column("activity_id")
    dupes = ids.filter(ids.is_duplicated()).drop_nulls().unique().to_list()
    return sorted(dupes) + ([-1] if ids.null_count() else [])


def missing_streams_problems(activities_raw: pl.DataFrame, streams_raw: pl.DataFrame) -> list[int]:
    """Non-manual activities with neither streams nor a recorded 404 in ``streams_raw``."""
    if activities_raw.is_empty():
        return []
    recorded: set[int] = set()
    if not streams_raw.is_empty():
        recorded = set(
            streams_raw.filter(pl.col("status").is_in(["ok", "not_found"])).get_column("activity_id").to_list()
        )
    missing = []
    for activity_id, payload in activities_raw.select("activity_id", "payload").iter_rows():
        if not json.loads(payload).get("manual") and activity_id not in recorded:
            missing.append(activity_id)
    return sorted(missing)


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


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """Every asset check, partitioned like the assets they check."""
    partitions = daily_partitions(settings.history_start, settings.timezone)
    with warnings.catch_warnings():  # partitioned asset checks are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_checks(partitions)


def _build_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset="activities",
        name="unique_activity_ids",
        blocking=True,
        partitions_def=partitions,
        description="No activity id appears twice (or is null) in the run's days of `activities` (Parquet).",
    )
    def unique_activity_ids(
        context: dg.AssetCheckExecutionContext, landed: LandedDataResource
    ) -> dg.AssetCheckResult:
        frame = landed.read("activities", _days(context), ["activity_id"])
        dupes = duplicate_id_problems(frame)
        return dg.AssetCheckResult(
            passed=not dupes,
            description=f"{len(dupes)} duplicated activity ids" if dupes else None,
            metadata={"activities": frame.height, "duplicated_ids": len(dupes), "sample": _ids(dupes)},
        )

    @dg.asset_check(
        asset="activities",
        name="raw_and_typed_row_counts_agree",
        blocking=True,
        partitions_def=partitions,
        description="Each day of the run has as many typed `activities` rows as `activities_raw` rows.",
    )
    def raw_and_typed_row_counts_agree(
        context: dg.AssetCheckExecutionContext, landed: LandedDataResource
    ) -> dg.AssetCheckResult:
        days = _days(context)
        raw = landed.read("activities_raw", days, ["activity_date"])
        typed = landed.read("activities", days, ["activity_date"])
        bad = row_count_problems(raw, typed, days)
        return dg.AssetCheckResult(
            passed=not bad,
            description=f"{len(bad)} days differ" if bad else None,
            metadata={
                "raw_rows": raw.height,
                "typed_rows": typed.height,
                "days_differing": len(bad),
                "sample": dg.MetadataValue.json(
                    {day: {"raw": r, "typed": t} for day, (r, t) in list(bad.items())[:SAMPLE]}
                ),
            },
        )

    @dg.asset_check(
        asset="streams_raw",
        name="every_activity_has_streams",
        blocking=True,
        partitions_def=partitions,
        description=(
            "Every non-manual activity of the run's days in `activities_raw` has a `streams_raw` row: "
            "its streams, or Strava's 404 recorded as `not_found`."
        ),
    )
    def every_activity_has_streams(
        context: dg.AssetCheckExecutionContext, landed: LandedDataResource
    ) -> dg.AssetCheckResult:
        days = _days(context)
        activities_raw = landed.read("activities_raw", days, ["activity_id", "payload"])
        streams_raw = landed.read("streams_raw", days, ["activity_id", "status"])
        missing = missing_streams_problems(activities_raw, streams_raw)
        not_found = 0 if streams_raw.is_empty() else streams_raw.filter(pl.col("status") == "not_found").height
        return dg.AssetCheckResult(
            passed=not missing,
            description=f"{len(missing)} activities without streams" if missing else None,
            metadata={
                "activities": activities_raw.height,
                "streams_rows": streams_raw.height,
                "recorded_404": not_found,
                "missing": len(missing),
                "sample": _ids(missing),
            },
        )

    @dg.asset_check(
        asset="streams_raw",
        name="streams_have_equal_length",
        blocking=True,
        partitions_def=partitions,
        description="In each `streams_raw` payload, every documented stream array has the same length.",
    )
    def streams_have_equal_length(
        context: dg.AssetCheckExecutionContext, landed: LandedDataResource
    ) -> dg.AssetCheckResult:
        frame = landed.read("streams_raw", _days(context), ["activity_id", "status", "payload"])
        bad = unequal_stream_problems(frame)
        return dg.AssetCheckResult(
            passed=not bad,
            description=f"{len(bad)} activities with unequal streams" if bad else None,
            metadata={
                "activities_checked": frame.height,
                "unequal": len(bad),
                "sample": dg.MetadataValue.json({str(k): v for k, v in sorted(bad.items())[:SAMPLE]}),
            },
        )

    @dg.asset_check(
        asset="activity_streams",
        name="heartrate_in_range",
        blocking=True,
        partitions_def=partitions,
        description=f"Every heart-rate sample of `activity_streams` is within {HEARTRATE_MIN_BPM}.."
        f"{HEARTRATE_MAX_BPM} bpm (nulls allowed): TRIMP, zones and load would be wrong otherwise.",
    )
    def heartrate_in_range(
        context: dg.AssetCheckExecutionContext, landed: LandedDataResource
    ) -> dg.AssetCheckResult:
        frame = landed.read("activity_streams", _days(context), ["activity_id", "heartrate_bpm"])
        bad = heartrate_problems(frame)
        return dg.AssetCheckResult(
            passed=not bad,
            description=f"{sum(bad.values())} samples out of range in {len(bad)} activities" if bad else None,
            metadata={
                "samples": frame.height,
                "samples_out_of_range": sum(bad.values()),
                "activities_affected": len(bad),
                "sample": _ids(list(bad)),
            },
        )

    return [
        unique_activity_ids,
        raw_and_typed_row_counts_agree,
        every_activity_has_streams,
        streams_have_equal_length,
        heartrate_in_range,
    ]
