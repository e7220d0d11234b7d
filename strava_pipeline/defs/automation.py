"""What keeps the mirror current without anyone pressing a button: one job, the daily schedule, the sensor.

The schedule re-runs a short lookback window (Strava accepts uploads days late and athletes edit
yesterday's activities) as one ranged run: one listing request for the window, and stream requests only
for activities that are new or whose recording changed. The sensor catches what the lookback misses (a
late upload, an edit or a deletion weeks back) for one request per tick.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from strava_pipeline.defs._dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    UnresolvedAssetJobDefinition,
)
from strava_pipeline.defs.resources import LandedDataResource, StravaResource
from strava_pipeline.ingest.api_access import api_unavailable_reason, clear_inactive, record_inactive
from strava_pipeline.ingest.changes import changed_days, day_states, days_between
from strava_pipeline.ingest.export_import import archives_in
from strava_pipeline.settings import Settings
from strava_pipeline.strava import StravaAppInactiveError
from strava_pipeline.transforms.activities import activity_local_date

#: Everything that depends on Strava for a range of days: the athlete and every activity-level asset.
SYNC_JOB_NAME = "sync_days"
#: What an imported archive changes, for a range of days: its raw rows and everything built from them, and
#: nothing that calls Strava (an import works without credentials or a subscription).
ARCHIVE_DAY_ASSETS = (
    "athlete", "gear", "export_activities_raw", "activities", "activity_streams", "activity_metrics",
    "daily_training_load", "weekly_summary", "training_report", "activity_files",
)
DEFAULT_LOOKBACK_DAYS = 3
DEFAULT_INTERVAL_SECONDS = 1800
PAGE_SIZE = 200
#: Tag of a sensor run naming the change it syncs (day and listing digest); a failed one is retried with a
#: new run key up to MAX_ATTEMPTS times in all, then left to the user (its failure is in the runs list).
CHANGE_TAG = "strava/change"
MAX_ATTEMPTS = 3


def build_sync_job() -> UnresolvedAssetJobDefinition:
    """One job that refreshes a range of days end to end (raw, typed and derived).

    Dagster takes its daily partitioning from the selected assets, so the schedule and the sensor can
    request runs by day.
    """
    return dg.define_asset_job(
        SYNC_JOB_NAME,
        selection=dg.AssetSelection.all(),
        description="Refresh the athlete and a range of days: listing, streams, typed and derived tables.",
    )


def build_daily_schedule(
    job: UnresolvedAssetJobDefinition,
    *,
    timezone: str,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    unavailable: Callable[[], str | None] = lambda: None,
) -> dg.ScheduleDefinition:
    """A schedule at 04:00 local time whose run covers the last ``lookback_days`` days through today.

    ``unavailable`` says why the API cannot be used (no credentials, 403 Inactive): the tick then skips
    with that reason instead of launching a run that can only fail.
    """
    if lookback_days < 1:
        raise ValueError("the schedule's lookback must be at least one day")

    @dg.schedule(
        name="daily_sync",
        job=job,
        cron_schedule="0 4 * * *",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every day at 04:00 ({timezone}), refresh the last {lookback_days} days.",
    )
    def daily_sync(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        reason = unavailable()
        if reason:
            return dg.SkipReason(reason)
        today = context.scheduled_execution_time.date()
        first = today - timedelta(days=lookback_days - 1)
        return dg.RunRequest(
            run_key=f"daily-{today.isoformat()}",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: today.isoformat(),
            },
        )

    return daily_sync


def build_new_activity_sensor(
    job: UnresolvedAssetJobDefinition,
    partitions_def: dg.PartitionsDefinition,
    *,
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    settings: Settings | None = None,
) -> dg.SensorDefinition:
    """The late-upload sensor for a job over ``partitions_def``.

    Without API access (no credentials, or Strava's 403 Inactive) a tick skips with the reason, logged once
    per change of reason rather than failing every tick.
    """

    @dg.sensor(
        name="new_or_changed_activities",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One request per tick: re-sync days whose activities were uploaded late, edited or deleted.",
    )
    def new_or_changed_activities(
        context: dg.SensorEvaluationContext, strava: StravaResource, landed: LandedDataResource
    ) -> dg.SensorResult:
        reason = api_unavailable_reason(settings) if settings is not None else None
        if reason:
            return _skip_once(context, reason)
        if landed.read("activities_raw", [], ["activity_id"]).width == 0:
            # Never materialised: a first sync is one backfill, not a run per listed day (and costs no request).
            return dg.SensorResult(
                skip_reason="nothing has landed yet: backfill first (strava-pipeline backfill, or Materialize all)"
            )
        try:
            page = next(iter(strava.get_client().iter_activity_pages(per_page=PAGE_SIZE)), None)
        except StravaAppInactiveError:
            if settings is not None:
                record_inactive(settings.data_dir)
                return _skip_once(context, api_unavailable_reason(settings) or "Strava answered 403 Inactive")
            raise
        if settings is not None:
            clear_inactive(settings.data_dir)
        summaries = page.json() if page is not None else []
        if not summaries:
            return dg.SensorResult(skip_reason="no activities listed")
        valid_keys = set(partitions_def.get_partition_keys())
        days_listed = sorted({activity_local_date(s) for s in summaries})
        span = [d for d in days_between(days_listed[0], days_listed[-1]) if d.isoformat() in valid_keys]
        raw = _landed_summaries(landed, span)
        complete = len(summaries) < PAGE_SIZE
        days = sorted(
            d for d in changed_days(summaries, raw.iter_rows(), complete=complete) if d.isoformat() in valid_keys
        )
        if not days:
            return dg.SensorResult(skip_reason="the mirror matches the newest activities")
        states = day_states(summaries, days)
        requests = []
        for day in days:
            change = f"{day.isoformat()}-{states[day]}"
            failed = _failed_runs(context, change)
            if failed >= MAX_ATTEMPTS:
                context.log.warning(f"{day}: {failed} runs for this change failed; not retrying (see their logs)")
                continue
            # A run key is used once per sensor, so a failed run's retry needs a key of its own.
            key = change if failed == 0 else f"{change}-retry{failed}"
            requests.append(dg.RunRequest(run_key=key, partition_key=day.isoformat(), tags={CHANGE_TAG: change}))
        if not requests:
            return dg.SensorResult(skip_reason="every changed day failed its last attempts")
        context.log.info(f"requesting runs for {', '.join(r.partition_key or '' for r in requests)}")
        return dg.SensorResult(run_requests=requests)

    return new_or_changed_activities


def _failed_runs(context: dg.SensorEvaluationContext, change: str) -> int:
    """How many runs requested for this change failed (0 when the tick is evaluated without an instance)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return 0
    return instance.get_runs_count(
        dg.RunsFilter(tags={CHANGE_TAG: change}, statuses=[dg.DagsterRunStatus.FAILURE])
    )


def _landed_summaries(landed: LandedDataResource, days: list[date]) -> pl.DataFrame:
    """(activity_id, activity_date, summary JSON) as landed: a summary jsonb could not store (rejected) is
    compared by its verbatim text, not by the ``{"id": ...}`` placeholder stored for it."""
    try:
        raw = landed.read("activities_raw", days, ["activity_id", "activity_date", "payload", "payload_text",
                                                   "rejected"])
    except pl.exceptions.ColumnNotFoundError:  # days landed before rejected summaries were kept apart
        return landed.read("activities_raw", days, ["activity_id", "activity_date", "payload"])
    if raw.width == 0:
        return raw
    return raw.select("activity_id", "activity_date", pl.when(pl.col("rejected").is_not_null())
                      .then(pl.col("payload_text")).otherwise(pl.col("payload")).alias("payload"))


def _skip_once(context: dg.SensorEvaluationContext, reason: str) -> dg.SensorResult:
    """Skip with ``reason``; warn in the log only when the reason is new (the cursor remembers it)."""
    key = reason.split(";")[0][:60]
    if context.cursor != key:
        context.log.warning(reason)
    return dg.SensorResult(skip_reason=reason, cursor=key)


def build_archive_jobs() -> tuple[UnresolvedAssetJobDefinition, UnresolvedAssetJobDefinition]:
    """The job that stages new archives, and the one that materialises the days an archive changed."""
    stage = dg.define_asset_job("import_export_archive", selection=["export_archive"],
                                description="Copy the archives at STRAVA_EXPORT_PATH into the raw layer.")
    days = dg.define_asset_job("archive_days", selection=list(ARCHIVE_DAY_ASSETS),
                               description="Materialise a range of days from the imported archives (no API calls).")
    return stage, days


def archive_fingerprint(path: Path) -> str:
    """What identifies the archives present at ``path`` (names, sizes, times): it changes when one is added."""
    try:
        found = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in archives_in(path)]
    except FileNotFoundError:
        return ""
    if not found:
        return ""
    return hashlib.sha256(json.dumps(found).encode()).hexdigest()[:16]


def build_archive_sensors(
    settings: Settings, stage: UnresolvedAssetJobDefinition, days: UnresolvedAssetJobDefinition
) -> list[dg.SensorDefinition]:
    """A sensor that stages an archive dropped at STRAVA_EXPORT_PATH, and one that then runs its changed days."""

    @dg.sensor(name="new_export_archive", job=stage, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Stage a new or changed archive at STRAVA_EXPORT_PATH (no API calls).")
    def new_export_archive(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        if settings.export_path is None:
            return dg.SensorResult(skip_reason="STRAVA_EXPORT_PATH is not set")
        fingerprint = archive_fingerprint(settings.export_path)
        if not fingerprint:
            return dg.SensorResult(skip_reason=f"no archive at {settings.export_path} yet")
        if fingerprint == context.cursor:
            return dg.SensorResult(skip_reason="no new archive")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"archive-{fingerprint}")], cursor=fingerprint)

    @dg.asset_sensor(asset_key=dg.AssetKey("export_archive"), job=days, name="export_archive_days",
                     default_status=dg.DefaultSensorStatus.RUNNING,
                     description="After an archive is staged, materialise the days it changed.")
    def export_archive_days(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
                            ) -> dg.RunRequest | dg.SkipReason:
        materialization = asset_event.asset_materialization
        changed = materialization.metadata.get("changed_days") if materialization else None
        values = list(changed.value) if changed is not None else []  # type: ignore[arg-type]
        if not values:
            return dg.SkipReason("the staged archives changed no day")
        return dg.RunRequest(
            run_key=f"archive-days-{asset_event.run_id}",
            tags={ASSET_PARTITION_RANGE_START_TAG: min(values), ASSET_PARTITION_RANGE_END_TAG: max(values)},
        )

    return [new_export_archive, export_archive_days]
