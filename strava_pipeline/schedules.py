"""The daily schedule: refresh the most recent days in the athlete's time zone.

Strava accepts uploads days late and athletes edit yesterday's activities, so the schedule re-runs a
short lookback window (default 3 days) as one ranged run: one listing request for the window, and
stream requests only for activities that are new or whose recording changed.
"""

from datetime import timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

DEFAULT_LOOKBACK_DAYS = 3


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
