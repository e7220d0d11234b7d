"""Activity summaries: the raw listing, partitioned by local date, and the typed table built from it."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from strava_pipeline.defs.metadata import WAREHOUSE_KINDS, table_metadata
from strava_pipeline.defs.partitions import BACKFILL_POLICY, partition_days
from strava_pipeline.defs.resources import STRAVA_API_POOL, StravaResource
from strava_pipeline.transforms.activities import (
    ACTIVITY_RAW_SCHEMA,
    ACTIVITY_SCHEMA,
    activities_frame,
    listing_window,
    raw_activities_frame,
)
from strava_pipeline.transforms.errors import PayloadError

GROUP = "activities"


def build_activity_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two activity-summary assets for a given partitioning (it depends on STRAVA_HISTORY_START)."""

    @dg.asset(
        name="activities_raw",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        pool=STRAVA_API_POOL,
        partitions_def=partitions_def,
        backfill_policy=BACKFILL_POLICY,
        metadata=table_metadata(ACTIVITY_RAW_SCHEMA, table="activities_raw"),
    )
    def activities_raw(context: dg.AssetExecutionContext, strava: StravaResource) -> dg.Output[pl.DataFrame]:
        """Every SummaryActivity from `/athlete/activities`, verbatim, one row per activity, partitioned by
        the activity's local calendar date. A run lists the whole partition range once (per_page=200 until
        an empty page), widened by 14 h each side in UTC. A summary PostgreSQL's jsonb cannot store (NaN, a
        `\\u0000` escape) lands with the reason in `rejected` and its text in `payload_text`, so it never fails
        the batch; the `summaries_storable` check names it.
        """
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
        rejected = frame.filter(pl.col("rejected").is_not_null()).select("activity_id", "rejected").rows()
        for activity_id, reason in rejected:
            context.log.warning(f"activity {activity_id}: summary kept as text, not jsonb: it {reason}")
        return dg.Output(frame, metadata={"api_requests": pages, "activities_listed": len(summaries),
                                          "summaries_rejected": len(rejected)})

    @dg.asset(
        name="activities",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        partitions_def=partitions_def,
        backfill_policy=BACKFILL_POLICY,
        metadata=table_metadata(ACTIVITY_SCHEMA, table="activities"),
    )
    def activities(activities_raw: pl.DataFrame, export_activities_raw: pl.DataFrame) -> pl.DataFrame:
        """Typed activity summaries, one row per activity whatever its source (units in column names,
        sport_type as free text): the API summary when the API has it, else the export archive's row
        (`source` says which), plus what only the archive records (relative effort, perceived exertion,
        private note, gear name, weather, steps, grade-adjusted distance). Built from `activities_raw` and
        `export_activities_raw` only: rebuilding it never calls Strava.
        """
        return activities_frame(activities_raw, export_activities_raw)

    return [activities_raw, activities]
