"""Per-activity streams: one API request per non-manual activity, spent exactly once.

``streams_raw`` keeps each response verbatim (a 404 is recorded as ``not_found`` and never asked again);
``activity_streams`` is the typed, one-row-per-sample table built from it. Which activities need a
request is decided in ``ingest`` (landed rows and the landing cache are reused first); the IO manager
empties the landing cache of what it has committed. A body PostgreSQL's jsonb would refuse is rejected
instead of failing the batch: no row, counted in the metadata and warned about (see ``ingest.stream_plan``).
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from strava_pipeline.defs.metadata import WAREHOUSE_KINDS, table_metadata
from strava_pipeline.defs.partitions import STREAMS_BACKFILL_POLICY, partition_days
from strava_pipeline.defs.resources import STRAVA_API_POOL, LandedDataResource, SportFilterResource, StravaResource
from strava_pipeline.ingest.export_import import read_samples
from strava_pipeline.ingest.in_flight import IN_FLIGHT, fetch_and_land
from strava_pipeline.ingest.stream_plan import Rejection, cache_key, plan_streams
from strava_pipeline.transforms.activities import with_summary_columns
from strava_pipeline.transforms.streams import (
    STREAM_SCHEMA,
    STREAMS_RAW_SCHEMA,
    archived_recordings,
    recorded_streams_frame,
    streams_frame,
)

GROUP = "streams"
#: The landing cache every streams response is written to the moment it arrives.
STREAMS_CACHE = "streams"


class StreamsConfig(dg.Config):
    """Run configuration of ``streams_raw``."""

    refetch: bool = False
    """Ignore landed and cached streams and request every activity again."""
    max_concurrent_requests: int = 8
    """Requests in flight at once; all share one rate limiter."""


def build_stream_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two stream assets for a given partitioning."""

    @dg.asset(
        name="streams_raw",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        pool=STRAVA_API_POOL,
        partitions_def=partitions_def,
        backfill_policy=STREAMS_BACKFILL_POLICY,
        metadata={**table_metadata(STREAMS_RAW_SCHEMA, table="streams_raw"), "landing_cache": STREAMS_CACHE},
    )
    def streams_raw(
        context: dg.AssetExecutionContext,
        config: StreamsConfig,
        activities_raw: pl.DataFrame,
        export_activities_raw: pl.DataFrame,
        strava: StravaResource,
        landed: LandedDataResource,
        sport_filter: SportFilterResource,
    ) -> dg.Output[pl.DataFrame]:
        """Verbatim `/activities/{id}/streams` responses (all documented keys, key_by_type=true), one row per
        non-manual activity the export archive does not hold; a 404 is recorded as status `not_found`.
        Streams already landed for an activity whose recording did not change are reused, never requested
        twice (and kept when the archive later brings its original file), and an activity whose original
        file the archive holds is never requested at all. With STRAVA_SPORT_TYPES set, only activities of
        those sports are requested (streams landed earlier for others are kept).
        """
        days = partition_days(context)
        in_archive = archived_recordings(export_activities_raw)
        previous = {} if config.refetch else {
            row["activity_id"]: row for row in landed.read("streams_raw", days).iter_rows(named=True)
        }
        cache = landed.landing_cache(STREAMS_CACHE)
        summaries = with_summary_columns(activities_raw)
        requestable = (None if sport_filter.selected() is None
                       else set(sport_filter.apply(summaries).get_column("activity_id").to_list()))
        plan = plan_streams(summaries, previous, cache, refetch=config.refetch, in_archive=in_archive,
                            requestable=requestable, judged=IN_FLIGHT.landed_here)
        # Cache hits the backfill's prefetcher requested in this process count as fetched ahead: reporting
        # them as "from the landing cache" said "0 requested" of a batch whose every stream was requested.
        prefetched = IN_FLIGHT.fetched_ahead(cache_key(a, f) for a, _, f, _ in plan.cached)
        cached = len(plan.cached) - prefetched
        now = datetime.now(UTC)
        rows: list[dict[str, object]] = list(plan.reused_rows)
        while plan.cached:  # each body is let go once decoded, not kept beside its string for the whole batch
            activity_id, activity_date, fingerprint, body = plan.cached.pop()
            rows.append(_row(activity_id, activity_date, fingerprint, body, now))
        requested = 0
        rejected: list[tuple[int, date, Rejection]] = list(plan.rejected)
        if plan.to_fetch:
            client = strava.get_client()

            def fetch(activity_id: int, fingerprint: str) -> tuple[bytes | Rejection, bool]:
                if config.refetch:  # forced: request regardless of what is cached or in flight
                    return fetch_and_land(client, cache, activity_id, fingerprint), True
                return IN_FLIGHT.fetch(client, cache, activity_id, fingerprint)

            with ThreadPoolExecutor(max_workers=max(1, config.max_concurrent_requests)) as pool:
                futures = [(a, d, f, pool.submit(fetch, a, f)) for a, d, f in plan.to_fetch]
                for activity_id, activity_date, fingerprint, future in futures:
                    body, made_request = future.result()
                    requested += made_request
                    if isinstance(body, Rejection):
                        rejected.append((activity_id, activity_date, body))
                    else:
                        rows.append(_row(activity_id, activity_date, fingerprint, body, datetime.now(UTC)))
        for activity_id, activity_date, rejection in sorted(rejected):
            context.log.warning(_rejection_message(activity_id, activity_date, rejection))
        reused = len(plan.reused_rows)
        ahead = len(plan.to_fetch) - requested + prefetched
        rows.sort(key=lambda row: (row["activity_date"], row["activity_id"]))  # sorting the frame copied every payload
        frame = pl.DataFrame(rows, schema=STREAMS_RAW_SCHEMA)
        del rows
        context.log.info(
            f"streams for {frame.height} activities: {requested + ahead} requested ({requested} by this run, "
            f"{ahead} ahead by the backfill), {reused} reused, {cached} from the landing cache (landed by an "
            f"earlier run), {len(in_archive)} read from the export archive instead, {len(rejected)} rejected"
        )
        return dg.Output(
            frame,
            metadata={"api_requests": requested, "reused_landed": reused, "reused_cached": cached,
                      "fetched_ahead": ahead, "in_export_archive": len(in_archive),
                      "rejected_bodies": len(rejected),
                      "rejected_activities": dg.MetadataValue.json(
                          {str(a): r.reason for a, _, r in sorted(rejected)})},
        )

    @dg.asset(
        name="activity_streams",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        partitions_def=partitions_def,
        backfill_policy=STREAMS_BACKFILL_POLICY,
        metadata=table_metadata(STREAM_SCHEMA, table="activity_streams"),
    )
    def activity_streams(
        streams_raw: pl.DataFrame, export_activities_raw: pl.DataFrame, landed: LandedDataResource
    ) -> pl.DataFrame:
        """One row per sample: time offset, position, altitude, distance, velocity, heart rate, cadence,
        power, temperature, moving, grade, and `source`. Built from `streams_raw` (unknown stream types stay
        raw) and, for activities whose original upload the export archive holds, from that file: one row per
        FIT record / GPX trkpt / TCX Trackpoint, the file being the lossless original.
        """
        data_dir = Path(landed.data_dir)
        exported = recorded_streams_frame(
            export_activities_raw, lambda sha, path: read_samples(data_dir, sha, path)
        )
        in_archive = archived_recordings(export_activities_raw)
        keep_api = in_archive and streams_raw.width
        api = streams_raw.filter(~pl.col("activity_id").is_in(sorted(in_archive))) if keep_api else streams_raw
        return pl.concat([streams_frame(api), exported], how="vertical")

    return [streams_raw, activity_streams]


def _rejection_message(activity_id: int, activity_date: date, rejection: Rejection) -> str:
    """The warning for an activity whose streams were not landed: what was wrong, and what happens next."""
    what = f"streams of activity {activity_id} ({activity_date}) rejected, not landed: the body {rejection.reason}"
    if rejection.exhausted:
        return (f"{what}; bad {rejection.count} times, so not requested again automatically: run "
                f"`strava-pipeline backfill --refetch` over {activity_date} (streams_raw config refetch: true) "
                f"to request it again")
    return f"{what}; it will be requested once more on the next run"


def _row(activity_id: int, activity_date: date, fingerprint: str, body: bytes, fetched_at: datetime) -> dict:
    """A raw row; an empty body is how a 404 ("this activity has no streams") is recorded."""
    return {
        "activity_id": activity_id,
        "activity_date": activity_date,
        "summary_fingerprint": fingerprint,
        "status": "ok" if body else "not_found",
        "fetched_at": fetched_at,
        "payload": body.decode("utf-8") if body else None,
    }
