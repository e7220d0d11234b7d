"""Activity summaries: the raw listing, partitioned by local date, and the typed table built from it."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from strava_pipeline.assets.partitions import BACKFILL_POLICY, PARTITION_COLUMN, partition_days
from strava_pipeline.io_managers.metadata import schema_of
from strava_pipeline.io_managers.warehouse import WAREHOUSE_KINDS
from strava_pipeline.resources import STRAVA_API_POOL, StravaResource
from strava_pipeline.transforms.activities import (
    ACTIVITY_RAW_SCHEMA,
    ACTIVITY_SCHEMA,
    activities_frame,
    listing_window,
    raw_activities_frame,
)
from strava_pipeline.transforms.errors import PayloadError


def build_activity_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two activity-summary assets for a given partitioning (it depends on STRAVA_HISTORY_START)."""

    @dg.asset(
        name="activities_raw",
        group_name="raw",
        kinds=WAREHOUSE_KINDS,
        io_manager_key="warehouse",
        pool=STRAVA_API_POOL,
        partitions_def=partitions_def,
        backfill_policy=BACKFILL_POLICY,
        metadata={"partition_column": PARTITION_COLUMN, "dagster/column_schema": schema_of(ACTIVITY_RAW_SCHEMA)},
        description=(
            "Every SummaryActivity from `/athlete/activities`, verbatim, one row per activity, partitioned "
            "by the activity's local calendar date. A run lists the whole partition range once "
            "(per_page=200 until an empty page), widened by 14 h each side in UTC."
        ),
    )
    def activities_raw(context: dg.AssetExecutionContext, strava: StravaResource) -> dg.Output[pl.DataFrame]:
        days = partition_days(context)
        after, before = listing_window(days[0], days[-1])
        client = strava.get_client()
        summaries: list[object] = []
        pages = 0
        for page in client.iter_activity_pages(after=after, before=before):
            pages += 1
            items = page.json()
            if not isinstance(items, list):
                raise PayloadError(f"activity listing page {pages}", "<body>", "is not a JSON array")
            summaries.extend(items)
        frame = raw_activities_frame(summaries, datetime.now(UTC), days)  # type: ignore[arg-type]
        context.log.info(
            f"Listed {len(summaries)} activities in {pages} requests; {frame.height} fall in "
            f"{days[0]}..{days[-1]} (local dates)."
        )
        return dg.Output(frame, metadata={"api_requests": pages, "activities_listed": len(summaries)})

    @dg.asset(
        name="activities",
        group_name="typed",
        kinds=WAREHOUSE_KINDS,
        io_manager_key="warehouse",
        partitions_def=partitions_def,
        backfill_policy=BACKFILL_POLICY,
        metadata={"partition_column": PARTITION_COLUMN, "dagster/column_schema": schema_of(ACTIVITY_SCHEMA)},
        description=(
            "Typed activity summaries (units in column names, sport_type as free text), built only from "
            "`activities_raw`: rebuilding it never calls Strava."
        ),
    )
    def activities(activities_raw: pl.DataFrame) -> pl.DataFrame:
        return activities_frame(activities_raw)

    return [activities_raw, activities]
