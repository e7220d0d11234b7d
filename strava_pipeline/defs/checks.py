"""Data-quality checks on the raw and typed layers, run with the materialisations they check.

Each check on a partitioned asset is partitioned like it and records one evaluation per day of its run
(``context.partition_keys``), against that day's latest materialisation: the Checks tab of the asset then
shows every materialised day Passed, or Failed with the reason, after a ranged backfill as after a one-day
run. A check reads what landed in Parquet (the copy every downstream asset reads) once for all the run's
days and splits it per day, so a year-long run reads each file once, not once per day and check.
The checks are *blocking*: a failure on any day stops the run's downstream assets (typed streams,
metrics) before they compute numbers from bad data, and the run fails, so a headless backfill raises.
The rules are the pure functions of ``transforms.quality``; each check below only reads its columns,
applies them and reports per day.
"""

import inspect
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import polars as pl
from dagster_postgres.event_log import PostgresEventLogStorage

from strava_pipeline.defs._dagster_private import AssetCheckEvaluationTargetMaterializationData
from strava_pipeline.defs.assets.streams import STREAMS_CACHE
from strava_pipeline.defs.check_result_batches import materialization_targets
from strava_pipeline.defs.io_manager import DB_SCHEMA, ENTITY_KEY, WarehouseIOManager
from strava_pipeline.defs.resources import LandedDataResource, SportFilterResource
from strava_pipeline.ingest.stream_plan import rejected_streams
from strava_pipeline.ingest.summaries import read_summary_keys
from strava_pipeline.transforms.activities import ACTIVITY_SCHEMA, EXPORT_ACTIVITY_RAW_SCHEMA
from strava_pipeline.transforms.fields import PARTITION_COLUMN
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
from strava_pipeline.transforms.streams import STREAM_SCHEMA, STREAMS_RAW_SCHEMA, archived_recordings

#: How many offending ids a check lists in its metadata (and a few of them in its description).
SAMPLE = 20
NAMED = 5


@dataclass
class Verdict:
    """What a check found on one day: ``failure`` says what is wrong (None: passed); ``metadata`` is shown
    either way (kept to a few numbers: a year-long run records one evaluation per day and check)."""

    failure: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


#: A check's body: (landed data, the run's days) -> one verdict per day of the run. Its name is the
#: check's, its docstring the check's description.
Rule = Callable[[LandedDataResource, list[date]], dict[date, Verdict]]


def _sample(values: Collection[Any], key: str = "sample") -> dict[str, dg.MetadataValue]:
    """The first offending ids as metadata, or nothing when there are none."""
    return {key: dg.MetadataValue.json(sorted(values)[:SAMPLE])} if values else {}


def _named(values: Collection[Any]) -> str:
    """A few offending ids for a failure's one line (the metadata's sample has more)."""
    shown = sorted(values)[:NAMED]
    return ", ".join(map(str, shown)) + (", ..." if len(values) > NAMED else "")


def _columns(schema: Mapping[str, pl.DataType], *names: str) -> dict[str, pl.DataType]:
    return {name: schema[name] for name in names}


def _read(landed: LandedDataResource, asset: str, days: list[date], schema: Mapping[str, pl.DataType]
          ) -> pl.DataFrame:
    """The ``schema`` columns of the run's days of ``asset``, typed and empty when nothing has landed yet."""
    frame = landed.read(asset, days, list(schema))
    return frame if frame.width else pl.DataFrame(schema=dict(schema))


def _by_day(frame: pl.DataFrame, days: Sequence[date]) -> dict[date, pl.DataFrame]:
    """The frame's rows of each day of the run (an empty frame for a day without rows): read once, split here."""
    parts: dict[date, pl.DataFrame] = {}
    if not frame.is_empty():
        parts = {key[0]: part for key, part in frame.partition_by(PARTITION_COLUMN, as_dict=True).items()}
    empty = frame.clear()
    return {day: parts.get(day, empty) for day in days}


def _counts(frame: pl.DataFrame) -> dict[date, int]:
    """Rows per day."""
    return {} if frame.is_empty() else dict(frame.group_by(PARTITION_COLUMN).len().iter_rows())


def unique_activity_ids(landed: LandedDataResource, days: list[date]) -> dict[date, Verdict]:
    """No activity id appears twice (or is null) in the run's days of `activities` (Parquet); an id on two
    days of the run counts as duplicated on both."""
    frame = _read(landed, "activities", days, _columns(ACTIVITY_SCHEMA, "activity_id", PARTITION_COLUMN))
    null_marker = -1  # duplicate_id_problems reports null ids as -1
    repeated = set(duplicate_id_problems(frame)) - {null_marker}
    verdicts = {}
    for day, rows in _by_day(frame, days).items():
        ids = rows.get_column("activity_id")
        dupes = sorted(set(ids.drop_nulls().to_list()) & repeated) + ([null_marker] if ids.null_count() else [])
        verdicts[day] = Verdict(
            f"{len(dupes)} duplicated activity ids: {_named(dupes)}" if dupes else None,
            {"activities": rows.height, "duplicated_ids": len(dupes), **_sample(dupes)},
        )
    return verdicts


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


def raw_and_typed_row_counts_agree(landed: LandedDataResource, days: list[date]) -> dict[date, Verdict]:
    """Each day of the run has one typed `activities` row per activity its raw rows hold: those of
    `activities_raw` (but the rejected ones, see `summaries_storable`), and those of `export_activities_raw`
    the API has not listed."""
    raw = raw_activity_keys(
        _raw_summaries(landed, days, ["activity_id", PARTITION_COLUMN]),
        landed.read("export_activities_raw", days, ["activity_id", PARTITION_COLUMN, "summary"]),
    )
    typed = _read(landed, "activities", days, _columns(ACTIVITY_SCHEMA, PARTITION_COLUMN))
    differing = row_count_problems(raw, typed, days)
    raw_rows, typed_rows = _counts(raw), _counts(typed)
    verdicts = {}
    for day in days:
        r, t = raw_rows.get(day, 0), typed_rows.get(day, 0)
        failure = f"the raw layers hold {r} activities, `activities` {t} rows" if day.isoformat() in differing else None
        verdicts[day] = Verdict(failure, {"raw_rows": r, "typed_rows": t})
    return verdicts


def every_activity_has_streams(landed: LandedDataResource, days: list[date],
                               sport_types: Collection[str] | None = None) -> dict[date, Verdict]:
    """Every non-manual activity of the run's days in `activities_raw` has a `streams_raw` row: its streams,
    or Strava's 404 recorded as `not_found` (only activities of the sports STRAVA_SPORT_TYPES selects)."""
    summaries = read_summary_keys(landed.read, days, sport_types)
    streams_raw = _read(landed, "streams_raw", days,
                        _columns(STREAMS_RAW_SCHEMA, "activity_id", PARTITION_COLUMN, "status"))
    archived = archived_recordings(
        _read(landed, "export_activities_raw", days, _columns(EXPORT_ACTIVITY_RAW_SCHEMA, "activity_id", "status")))
    # A body Strava sent that cannot be stored verbatim (NaN, \u0000) is rejected on purpose and named by
    # streams_raw's metadata and log; its activity is asked for again once, then waits for --refetch.
    rejected = set(rejected_streams(summaries, landed.landing_cache(STREAMS_CACHE)))
    missing = set(missing_streams_problems(summaries, streams_raw, archived)) - rejected
    streams_by_day = _by_day(streams_raw, days)
    verdicts = {}
    for day, day_summaries in _by_day(summaries, days).items():
        ids = set(day_summaries.get_column("activity_id").to_list())
        streams = streams_by_day[day]
        day_missing, day_rejected = ids & missing, ids & rejected
        verdicts[day] = Verdict(
            f"{len(day_missing)} activities without streams: {_named(day_missing)}" if day_missing else None,
            {
                "activities": day_summaries.height,
                "streams_rows": streams.height,
                "recorded_404": streams.filter(pl.col("status") == "not_found").height,
                "in_export_archive": len(ids & archived),
                "rejected_bodies": len(day_rejected),
                **_sample(day_rejected, "rejected_sample"),
                "missing": len(day_missing),
                **_sample(day_missing),
            },
        )
    return verdicts


def streams_have_equal_length(landed: LandedDataResource, days: list[date]) -> dict[date, Verdict]:
    """In each `streams_raw` payload, every documented stream array has the same length."""
    frame = _read(landed, "streams_raw", days,
                  _columns(STREAMS_RAW_SCHEMA, "activity_id", PARTITION_COLUMN, "status", "payload"))
    verdicts = {}
    for day, rows in _by_day(frame, days).items():
        bad = unequal_stream_problems(rows)
        metadata: dict[str, Any] = {"activities_checked": rows.height, "unequal": len(bad)}
        if bad:
            metadata["sample"] = dg.MetadataValue.json({str(k): v for k, v in sorted(bad.items())[:SAMPLE]})
        verdicts[day] = Verdict(f"{len(bad)} activities with unequal streams: {_named(bad)}" if bad else None,
                                metadata)
    return verdicts


def heartrate_in_range(landed: LandedDataResource, days: list[date]) -> dict[date, Verdict]:
    """Every heart-rate sample of `activity_streams` is within 25..250 bpm (nulls allowed): TRIMP, zones and
    load would be wrong otherwise."""
    frame = _read(landed, "activity_streams", days,
                  _columns(STREAM_SCHEMA, "activity_id", PARTITION_COLUMN, "heartrate_bpm"))
    # The run's samples are most of its rows: judged in one pass, then each offending activity to its day.
    samples = _counts(frame)
    bad = heartrate_problems(frame)
    day_of: dict[int, date] = {}
    if bad:
        offending = frame.filter(pl.col("activity_id").is_in(list(bad))).select("activity_id", PARTITION_COLUMN)
        day_of = dict(offending.unique().iter_rows())
    verdicts = {}
    for day in days:
        day_bad = {a: n for a, n in bad.items() if day_of.get(a) == day}
        out_of_range = sum(day_bad.values())
        verdicts[day] = Verdict(
            f"{out_of_range} samples out of range in {len(day_bad)} activities: {_named(day_bad)}" if day_bad else None,
            {"samples": samples.get(day, 0), "samples_out_of_range": out_of_range,
             "activities_affected": len(day_bad), **_sample(day_bad)},
        )
    return verdicts


def export_files_readable(landed: LandedDataResource, days: list[date]) -> dict[date, Verdict]:
    """Every archive activity that names an original file has it, readable: a missing, truncated or corrupt
    file is named here with the reason. It warns and does not block: the rest of the archive lands, and the
    activity keeps its summary row."""
    frame = _read(landed, "export_activities_raw", days,
                  _columns(EXPORT_ACTIVITY_RAW_SCHEMA, "activity_id", PARTITION_COLUMN, "status", "error"))
    verdicts = {}
    for day, rows in _by_day(frame, days).items():
        bad = unreadable_export_problems(rows)
        sample = sorted(bad.items())[:SAMPLE]
        metadata: dict[str, Any] = {"activities": rows.height, "unreadable": len(bad)}
        if bad:
            metadata["sample"] = dg.MetadataValue.json({str(k): v for k, v in sample})
        failure = ("; ".join(f"activity {a}: {r}" for a, r in sample[:NAMED]) + ("; ..." if len(bad) > NAMED else "")
                   if bad else None)
        verdicts[day] = Verdict(f"{len(bad)} archive activities without a readable file: {failure}" if bad else None,
                                metadata)
    return verdicts


def summaries_storable(landed: LandedDataResource, days: list[date]) -> dict[date, Verdict]:
    """Every summary of `activities_raw` was stored as jsonb: one Strava listed with NaN/Infinity, a `\\u0000`
    escape or invalid UTF-8 lands rejected (kept verbatim in `payload_text`, the reason in `rejected`) and has
    no `activities` row; it is named here with the reason. It warns and does not block: the rest of the batch
    lands."""
    frame = _raw_summaries(landed, days, ["activity_id", PARTITION_COLUMN])
    verdicts = {}
    for day, rows in _by_day(frame, days).items():
        bad = unstorable_summary_problems(rows)
        sample = sorted(bad.items())[:SAMPLE]
        metadata: dict[str, Any] = {"activities": rows.height, "rejected": len(bad)}
        if bad:
            metadata["sample"] = dg.MetadataValue.json({str(k): v for k, v in sample})
        verdicts[day] = Verdict(
            f"{len(bad)} summaries rejected: " + "; ".join(f"activity {a} {r}" for a, r in sample) if bad else None,
            metadata,
        )
    return verdicts


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


_Judged = dict[str, AssetCheckEvaluationTargetMaterializationData]
#: The run whose lookups ``judged_materializations`` remembers, and those lookups.
_judged_in_run: dict[str, dict[tuple[dg.AssetKey, tuple[str, ...]], _Judged]] = {}


def judged_materializations(
    context: dg.AssetCheckExecutionContext, asset: dg.AssetKey, partition_keys: Sequence[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """The latest materialisation of each partition, which its evaluation names: the UI shows a partition's
    check status only while it names the partition's latest materialisation (a newer one clears it).

    Two queries for the whole run (latest event id per partition, then those events), where Dagster's own
    ``AssetCheckResult`` looks up each partition separately; and once per asset and run, not per check (the
    asset's checks run after it, so its latest materialisations are the same for each; a year of them took
    80 ms to fetch and decode).
    """
    remembered = _judged_in_run.get(context.run.run_id)
    if remembered is None:  # a new run: only its lookups are kept
        _judged_in_run.clear()
        remembered = _judged_in_run[context.run.run_id] = {}
    key = (asset, tuple(partition_keys))
    if key not in remembered:
        remembered[key] = _latest_materializations(context.instance, asset, partition_keys)
    return remembered[key]


def _latest_materializations(
    instance: dg.DagsterInstance, asset: dg.AssetKey, partition_keys: Sequence[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    latest = instance.get_latest_storage_id_by_partition(
        asset, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partition_keys)
    )
    if not latest:
        return {}
    storage = instance.event_log_storage
    if isinstance(storage, PostgresEventLogStorage):  # the instance the CLI and the UI use: three columns
        found = materialization_targets(storage, list(latest.values()))
        return {
            partition: AssetCheckEvaluationTargetMaterializationData(
                storage_id=storage_id, run_id=found[storage_id][0], timestamp=found[storage_id][1]
            )
            for partition, storage_id in latest.items()
            if storage_id in found
        }
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, storage_ids=list(latest.values())), limit=len(latest)
    ).records
    return {
        r.partition_key: AssetCheckEvaluationTargetMaterializationData(
            storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp
        )
        for r in records
        if r.partition_key is not None
    }


def _partitioned_check(asset: str, rule: Rule, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """The one scaffold of every check: partitioned like its asset, blocking unless it only warns, judging
    the run's days and recording one evaluation per day.

    It yields ``AssetCheckEvaluation`` events itself because ``AssetCheckResult`` has no partition: Dagster
    records a ranged run's result without one, and marks each day of the run SKIPPED. The final ``Output``
    is what the assets downstream of a blocking check wait for; a failed blocking evaluation fails the step
    (Dagster raises after the step's events), so they do not run.
    """
    warns = rule.__name__ in WARNING_ONLY
    key = dg.AssetKey(asset)
    severity = dg.AssetCheckSeverity.WARN if warns else dg.AssetCheckSeverity.ERROR

    @dg.asset_check(
        asset=asset,
        name=rule.__name__,
        blocking=not warns,
        partitions_def=partitions,
        description=inspect.getdoc(rule),
    )
    def check(
        context: dg.AssetCheckExecutionContext, landed: LandedDataResource, sport_filter: SportFilterResource
    ) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        keys = list(context.partition_keys)
        sports = {"sport_types": sport_filter.selected()} if "sport_types" in inspect.signature(rule).parameters else {}
        verdicts = rule(landed, [date.fromisoformat(k) for k in keys], **sports)
        judged = judged_materializations(context, key, keys)
        for partition in keys:
            verdict = verdicts[date.fromisoformat(partition)]
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=rule.__name__,
                passed=verdict.failure is None,
                metadata=verdict.metadata,
                target_materialization_data=judged.get(partition),
                severity=severity,
                description=verdict.failure,
                blocking=not warns,
                partition=partition,
            )
        yield dg.Output(None)

    return check


#: Every partitioned table: each day must be the same in PostgreSQL and in Parquet.
TABLES_IN_BOTH_STORES = (
    "activities_raw", "export_activities_raw", "activities", "streams_raw", "activity_streams", "activity_metrics",
)


def _stores_agree_check(asset: str, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """Blocking: each day of the run has the same rows in both stores (count, sum of activity ids) and was
    written by the same switch (see ``storage.partition_switch``). Downstream assets read Parquet, so a
    day where it lags PostgreSQL must stop them rather than feed them the old copy."""
    key = dg.AssetKey(asset)

    @dg.asset_check(
        asset=asset,
        name="stores_agree",
        blocking=True,
        partitions_def=partitions,
        required_resource_keys={"io_manager"},
        description="PostgreSQL and Parquet hold the same rows for each day (count, sum of activity ids) "
        "written by the same switch.",
    )
    def check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        keys = list(context.partition_keys)
        warehouse: WarehouseIOManager = context.resources.io_manager
        switcher = warehouse.switcher()
        switcher.recover(asset)  # a switch a killed run left half done is finished first, as any reader does
        problems = {
            p.partition: p
            for p in switcher.compare(
                asset, f"{DB_SCHEMA}.{asset}", PARTITION_COLUMN, [date.fromisoformat(k) for k in keys],
                checksum_column=ENTITY_KEY,
            )
        }
        judged = judged_materializations(context, key, keys)
        for partition in keys:
            problem = problems.get(partition)
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name="stores_agree",
                passed=problem is None,
                metadata={} if problem is None else {
                    "postgres_rows": problem.postgres_rows, "parquet_rows": problem.parquet_rows
                },
                target_materialization_data=judged.get(partition),
                severity=dg.AssetCheckSeverity.ERROR,
                description=None if problem is None else f"the stores differ on {problem}",
                blocking=True,
                partition=partition,
            )
        yield dg.Output(None)

    return check


def build_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """Every asset check, partitioned like the assets they check."""
    with warnings.catch_warnings():  # partitioned asset checks are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            *(_partitioned_check(asset, rule, partitions) for asset, rule in CHECKS),
            *(_stores_agree_check(asset, partitions) for asset in TABLES_IN_BOTH_STORES),
        ]
