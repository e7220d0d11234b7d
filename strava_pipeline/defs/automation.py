"""What keeps the mirror current without anyone pressing a button: one job, the daily schedule, the sensor.

The schedule re-runs a short lookback window (Strava accepts uploads days late and athletes edit
yesterday's activities) as one ranged run: one listing request for the window, and stream requests only
for activities that are new or whose recording changed. The sensor catches what the lookback misses (a
late upload, an edit or a deletion weeks back) for one request per tick.
"""

from datetime import timedelta

import dagster as dg

from strava_pipeline.defs._dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    UnresolvedAssetJobDefinition,
)
from strava_pipeline.defs.resources import LandedDataResource, StravaResource
from strava_pipeline.ingest.changes import changed_days, day_states, days_between
from strava_pipeline.transforms.activities import activity_local_date

#: Everything that depends on Strava for a range of days: the athlete and every activity-level asset.
SYNC_JOB_NAME = "sync_days"
DEFAULT_LOOKBACK_DAYS = 3
DEFAULT_INTERVAL_SECONDS = 1800
PAGE_SIZE = 200


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
    job: UnresolvedAssetJobDefinition, *, timezone: str, lookback_days: int = DEFAULT_LOOKBACK_DAYS
) -> dg.ScheduleDefinition:
    """A schedule at 04:00 local time whose run covers the last ``lookback_days`` days through today."""
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
    def daily_sync(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
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
) -> dg.SensorDefinition:
    """The late-upload sensor for a job over ``partitions_def``."""

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
        if landed.read("activities_raw", [], ["activity_id"]).width == 0:
            # Never materialised: a first sync is one backfill, not a run per listed day (and costs no request).
            return dg.SensorResult(
                skip_reason="nothing has landed yet: backfill first (strava-pipeline backfill, or Materialize all)"
            )
        page = next(iter(strava.get_client().iter_activity_pages(per_page=PAGE_SIZE)), None)
        summaries = page.json() if page is not None else []
        if not summaries:
            return dg.SensorResult(skip_reason="no activities listed")
        valid_keys = set(partitions_def.get_partition_keys())
        days_listed = sorted({activity_local_date(s) for s in summaries})
        span = [d for d in days_between(days_listed[0], days_listed[-1]) if d.isoformat() in valid_keys]
        raw = landed.read("activities_raw", span, ["activity_id", "activity_date", "payload"])
        complete = len(summaries) < PAGE_SIZE
        days = sorted(
            d for d in changed_days(summaries, raw.iter_rows(), complete=complete) if d.isoformat() in valid_keys
        )
        if not days:
            return dg.SensorResult(skip_reason="the mirror matches the newest activities")
        states = day_states(summaries, days)
        requests = [
            dg.RunRequest(run_key=f"{day.isoformat()}-{states[day]}", partition_key=day.isoformat()) for day in days
        ]
        context.log.info(f"requesting runs for {', '.join(d.isoformat() for d in days)}")
        return dg.SensorResult(run_requests=requests)

    return new_or_changed_activities
