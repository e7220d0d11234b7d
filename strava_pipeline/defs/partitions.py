"""How activity-level assets are partitioned and batched."""

from __future__ import annotations

import warnings
from datetime import date

import dagster as dg

from strava_pipeline.transforms.fields import PARTITION_COLUMN

__all__ = ["BACKFILL_POLICY", "PARTITION_COLUMN", "STREAMS_BACKFILL_POLICY", "daily_partitions", "partition_days"]

# Backfill policies are marked beta in Dagster 1.13 but are exactly the documented way to batch a
# backfill; the warning would otherwise greet every user on every command.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

#: Backfills over years must not become thousands of runs: one run covers up to a year of days, and
#: costs one activity listing (ceil(N/200)+1 requests) for the whole batch.
MAX_PARTITIONS_PER_RUN = 366
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)

#: Streams are thousands of samples per activity: a quarter per run keeps memory flat however long the history.
MAX_STREAM_PARTITIONS_PER_RUN = 92
STREAMS_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_STREAM_PARTITIONS_PER_RUN)

# The jobs that refresh a range of days (`sync_days`, `archive_days`) hold assets of both policies, and
# Dagster (UnresolvedAssetJobDefinition.resolve) warns on every load of the code location that such a job
# batches by the smaller one. That is what they should do: their runs are the short ranges the schedule and
# sensors request, while backfills of the assets batch each asset by its own policy. One policy for all
# would cost a listing request per quarter instead of per year, or hold a year of streams in memory.
warnings.filterwarnings("ignore", message=r"Asset job \w+ materializes assets with varying BackfillPolicies",
                        category=UserWarning)



def daily_partitions(history_start: date, timezone: str) -> dg.DailyPartitionsDefinition:
    """Daily partitions on the activity's local date, from the first day of history through today.

    ``end_offset=1`` makes today's partition exist, so an activity finished this morning can land today.
    """
    return dg.DailyPartitionsDefinition(
        start_date=history_start.isoformat(), end_offset=1, timezone=timezone
    )


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    """The calendar days a (possibly ranged) run of a partitioned asset covers."""
    return [date.fromisoformat(key) for key in context.partition_keys]
