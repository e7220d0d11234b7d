"""Data-quality checks on the raw and typed layers, run with the materialisations they check.

Each check on a partitioned asset is partitioned like it and examines exactly the partitions of its run
(``context.partition_keys``), reading what landed in Parquet: the copy every downstream asset reads.
The checks are *blocking*: a failure stops the run's downstream assets (typed streams, metrics) before
they compute numbers from bad data, and the run fails, so a headless backfill raises. The rules are the
pure functions of ``transforms.quality``; each check below only reads its columns and reports.
"""

import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from strava_pipeline.defs.assets.streams import STREAMS_CACHE
from strava_pipeline.defs.resources import LandedDataResource
from strava_pipeline.ingest.stream_plan import rejected_streams
from strava_pipeline.ingest.summaries import read_summary_keys
from strava_pipeline.transforms.quality import (
    duplicate_id_problems,
    heartrate_problems,
    missing_streams_problems,
    raw_activity_keys,
    row_count_problems,
    unequal_stream_problems,
    unreadable_export_problems,
    unstorable_summary_problems,
)
from strava_pipeline.transforms.streams import archived_recordings

#: How many offending ids a check lists in its metadata.
SAMPLE = 20


@dataclass
class Verdict:
    """What a check found: ``failure`` says what is wrong (None: passed); ``metadata`` is shown either way."""

    failure: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


#: A check's body: (landed data, the run's days) -> verdict. Its name is the check's, its docstring the
#: check's description.
Rule = Callable[[LandedDataResource, list[date]], Verdict]


def _ids(values: Sequence[Any]) -> dg.MetadataValue:
    return dg.MetadataValue.json(sorted(values)[:SAMPLE])


def unique_activity_ids(landed: LandedDataResource, days: list[date]) -> Verdict:
    """No activity id appears twice (or is null) in the run's days of `activities` (Parquet)."""
    frame = landed.read("activities", days, ["activity_id"])
    dupes = duplicate_id_problems(frame)
    return Verdict(
        f"{len(dupes)} duplicated activity ids" if dupes else None,
        {"activities": frame.height, "duplicated_ids": len(dupes), "sample": _ids(dupes)},
    )


def _raw_summaries(landed: LandedDataResource, days: list[date], columns: list[str]) -> pl.DataFrame:
    """``columns`` of ``activities_raw`` and ``rejected``, which days landed before it existed lack (then
    null: every summary of theirs was stored)."""
    try:
        return landed.read("activities_raw", days, [*columns, "rejected"])
    except pl.exceptions.ColumnNotFoundError:
        frame = landed.read("activities_raw", days)
        if "rejected" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias("rejected"))
        return frame.select(*columns, "rejected")


def raw_and_typed_row_counts_agree(landed: LandedDataResource, days: list[date]) -> Verdict:
    """Each day of the run has one typed `activities` row per activity its raw rows hold: those of
    `activities_raw` (but the rejected ones, see `summaries_storable`), and those of `export_activities_raw`
    the API has not listed."""
    raw = raw_activity_keys(
        _raw_summaries(landed, days, ["activity_id", "activity_date"]),
        landed.read("export_activities_raw", days, ["activity_id", "activity_date", "summary"]),
    )
    typed = landed.read("activities", days, ["activity_date"])
    bad = row_count_problems(raw, typed, days)
    return Verdict(
        f"{len(bad)} days differ" if bad else None,
        {
            "raw_rows": raw.height,
            "typed_rows": typed.height,
            "days_differing": len(bad),
            "sample": dg.MetadataValue.json(
                {day: {"raw": r, "typed": t} for day, (r, t) in list(bad.items())[:SAMPLE]}
            ),
        },
    )


def every_activity_has_streams(landed: LandedDataResource, days: list[date]) -> Verdict:
    """Every non-manual activity of the run's days in `activities_raw` has a `streams_raw` row: its streams,
    or Strava's 404 recorded as `not_found`."""
    summaries = read_summary_keys(landed.read, days)
    streams_raw = landed.read("streams_raw", days, ["activity_id", "status"])
    archived = archived_recordings(landed.read("export_activities_raw", days, ["activity_id", "status"]))
    # A body Strava sent that cannot be stored verbatim (NaN, \u0000) is rejected on purpose and named by
    # streams_raw's metadata and log; its activity is asked for again once, then waits for --refetch.
    rejected = rejected_streams(summaries, landed.landing_cache(STREAMS_CACHE))
    missing = [a for a in missing_streams_problems(summaries, streams_raw, archived) if a not in rejected]
    not_found = 0 if streams_raw.is_empty() else streams_raw.filter(pl.col("status") == "not_found").height
    return Verdict(
        f"{len(missing)} activities without streams" if missing else None,
        {
            "activities": summaries.height,
            "streams_rows": streams_raw.height,
            "recorded_404": not_found,
            "in_export_archive": len(archived),
            "rejected_bodies": len(rejected),
            "rejected_sample": _ids(list(rejected)),
            "missing": len(missing),
            "sample": _ids(missing),
        },
    )


def streams_have_equal_length(landed: LandedDataResource, days: list[date]) -> Verdict:
    """In each `streams_raw` payload, every documented stream array has the same length."""
    frame = landed.read("streams_raw", days, ["activity_id", "status", "payload"])
    bad = unequal_stream_problems(frame)
    return Verdict(
        f"{len(bad)} activities with unequal streams" if bad else None,
        {
            "activities_checked": frame.height,
            "unequal": len(bad),
            "sample": dg.MetadataValue.json({str(k): v for k, v in sorted(bad.items())[:SAMPLE]}),
        },
    )


def heartrate_in_range(landed: LandedDataResource, days: list[date]) -> Verdict:
    """Every heart-rate sample of `activity_streams` is within 25..250 bpm (nulls allowed): TRIMP, zones and
    load would be wrong otherwise."""
    frame = landed.read("activity_streams", days, ["activity_id", "heartrate_bpm"])
    bad = heartrate_problems(frame)
    return Verdict(
        f"{sum(bad.values())} samples out of range in {len(bad)} activities" if bad else None,
        {
            "samples": frame.height,
            "samples_out_of_range": sum(bad.values()),
            "activities_affected": len(bad),
            "sample": _ids(list(bad)),
        },
    )


def export_files_readable(landed: LandedDataResource, days: list[date]) -> Verdict:
    """Every archive activity that names an original file has it, readable: a missing, truncated or corrupt
    file is named here with the reason. It warns and does not block: the rest of the archive lands, and the
    activity keeps its summary row."""
    frame = landed.read("export_activities_raw", days, ["activity_id", "status", "error"])
    bad = unreadable_export_problems(frame)
    return Verdict(
        f"{len(bad)} archive activities without a readable file" if bad else None,
        {
            "activities": frame.height,
            "unreadable": len(bad),
            "sample": dg.MetadataValue.json({str(k): v for k, v in sorted(bad.items())[:SAMPLE]}),
        },
    )


def summaries_storable(landed: LandedDataResource, days: list[date]) -> Verdict:
    """Every summary of `activities_raw` was stored as jsonb: one Strava listed with NaN/Infinity, a `\\u0000`
    escape or invalid UTF-8 lands rejected (kept verbatim in `payload_text`, the reason in `rejected`) and has
    no `activities` row; it is named here with the reason. It warns and does not block: the rest of the batch
    lands."""
    frame = _raw_summaries(landed, days, ["activity_id"])
    bad = unstorable_summary_problems(frame)
    sample = sorted(bad.items())[:SAMPLE]
    return Verdict(
        f"{len(bad)} summaries rejected: " + "; ".join(f"activity {a} {r}" for a, r in sample) if bad else None,
        {
            "activities": frame.height,
            "rejected": len(bad),
            "sample": dg.MetadataValue.json({str(k): v for k, v in sample}),
        },
    )


#: Every check, by the asset it checks.
CHECKS: tuple[tuple[str, Rule], ...] = (
    ("activities_raw", summaries_storable),
    ("export_activities_raw", export_files_readable),
    ("activities", unique_activity_ids),
    ("activities", raw_and_typed_row_counts_agree),
    ("streams_raw", every_activity_has_streams),
    ("streams_raw", streams_have_equal_length),
    ("activity_streams", heartrate_in_range),
)
#: Checks that warn instead of blocking what depends on their asset.
WARNING_ONLY = {"export_files_readable", "summaries_storable"}


def _partitioned_check(asset: str, rule: Rule, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """The one scaffold of every check: partitioned like its asset, blocking unless it only warns, run on the
    run's days."""
    warns = rule.__name__ in WARNING_ONLY

    @dg.asset_check(
        asset=asset,
        name=rule.__name__,
        blocking=not warns,
        partitions_def=partitions,
        description=inspect.getdoc(rule),
    )
    def check(context: dg.AssetCheckExecutionContext, landed: LandedDataResource) -> dg.AssetCheckResult:
        verdict = rule(landed, [date.fromisoformat(key) for key in context.partition_keys])
        return dg.AssetCheckResult(
            passed=verdict.failure is None, description=verdict.failure, metadata=verdict.metadata,
            severity=dg.AssetCheckSeverity.WARN if warns else dg.AssetCheckSeverity.ERROR,
        )

    return check


def build_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """Every asset check, partitioned like the assets they check."""
    with warnings.catch_warnings():  # partitioned asset checks are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [_partitioned_check(asset, rule, partitions) for asset, rule in CHECKS]
