"""Athlete-level assets: the profile, heart-rate zones and gear (raw), and their typed tables."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from strava_pipeline.defs.metadata import WAREHOUSE_KINDS, table_metadata
from strava_pipeline.defs.resources import STRAVA_API_POOL, LandedDataResource, StravaResource
from strava_pipeline.ingest.export_import import read_archive_athlete
from strava_pipeline.strava import ApiResponse, StravaNotFoundError, StravaScopeError
from strava_pipeline.transforms.athlete import (
    ATHLETE_RAW_SCHEMA,
    ATHLETE_SCHEMA,
    GEAR_SCHEMA,
    NOT_FOUND_PAYLOAD,
    athlete_frame,
    gear_frame,
    gear_ids,
)

GROUP = "athlete"


def _raw_row(resource: str, resource_id: str, response: ApiResponse) -> dict[str, object]:
    return {
        "resource": resource,
        "resource_id": resource_id,
        "fetched_at": response.fetched_at,
        "payload": response.body.decode("utf-8"),
    }


def _not_found_row(resource: str, resource_id: str) -> dict[str, object]:
    """A 404 kept as a document, so the raw layer shows the profile listed it and Strava no longer has it."""
    return {"resource": resource, "resource_id": resource_id, "fetched_at": datetime.now(UTC),
            "payload": NOT_FOUND_PAYLOAD}


@dg.asset(
    group_name=GROUP,
    kinds=WAREHOUSE_KINDS,
    pool=STRAVA_API_POOL,
    metadata=table_metadata(ATHLETE_RAW_SCHEMA, table="athlete_raw", partitioned=False),
)
def athlete_raw(context: dg.AssetExecutionContext, strava: StravaResource) -> dg.Output[pl.DataFrame]:
    """Verbatim Strava responses for the authenticated athlete: `/athlete`, `/athlete/zones` and
    `/gear/{id}` for every bike and pair of shoes (2 + gear requests). One row per document, payload as JSON.

    A sub-resource Strava cannot serve does not fail the asset (the profile and the other gear still land):
    a gear that answers 404 (deleted since `/athlete` listed it) is a row with payload
    `{"not_found": true, "status": 404}` (metadata `gear_not_found`); zones without `profile:read_all` get
    no row (metadata `zones_skipped`: the reason). Both log a warning.
    """
    client = strava.get_client()
    profile = client.get_athlete()
    athlete = profile.json()
    athlete_id = str(athlete.get("id")) if isinstance(athlete, dict) else "unknown"
    rows = [_raw_row("athlete", athlete_id, profile)]
    metadata: dict[str, object] = {}
    try:
        rows.append(_raw_row("zones", athlete_id, client.get_athlete_zones()))
    except StravaScopeError as exc:
        # Named here: Strava's 401 names `profile:read_permission`, which the client reports as `profile:read`.
        metadata["zones_skipped"] = f"/athlete/zones needs `profile:read_all`: {exc}"
        context.log.warning(f"Heart-rate zones skipped: {metadata['zones_skipped']}")
    not_found = 0
    for gear_id in gear_ids(athlete if isinstance(athlete, dict) else {}):
        try:
            rows.append(_raw_row("gear", gear_id, client.get_gear(gear_id)))
        except StravaNotFoundError as exc:
            context.log.warning(f"Gear {gear_id} is listed by /athlete but Strava no longer has it; "
                                f"recorded as not found ({exc})")
            rows.append(_not_found_row("gear", gear_id))
            not_found += 1
    frame = pl.DataFrame(rows, schema=ATHLETE_RAW_SCHEMA)
    return dg.Output(frame, metadata={"api_requests": len(rows), "gear_not_found": not_found, **metadata})


def _documents(athlete_raw: pl.DataFrame, landed: LandedDataResource, resource: str) -> pl.DataFrame:
    """The API's documents of a kind when it has any, else the imported archive's (an archive-only mirror)."""
    if athlete_raw.width and athlete_raw.filter(pl.col("resource") == resource).height:
        return athlete_raw
    return read_archive_athlete(Path(landed.data_dir))


@dg.asset(group_name=GROUP, kinds=WAREHOUSE_KINDS,
          metadata=table_metadata(ATHLETE_SCHEMA, table="athlete", partitioned=False), deps=["export_archive"])
def athlete(athlete_raw: pl.DataFrame, landed: LandedDataResource) -> pl.DataFrame:
    """The athlete profile as one typed row with heart-rate zone bounds, built from `athlete_raw` (or, in a
    mirror without API access, from the export archive's `profile.csv`)."""
    return athlete_frame(_documents(athlete_raw, landed, "athlete"))


@dg.asset(group_name=GROUP, kinds=WAREHOUSE_KINDS,
          metadata=table_metadata(GEAR_SCHEMA, table="gear", partitioned=False), deps=["export_archive"])
def gear(athlete_raw: pl.DataFrame, landed: LandedDataResource) -> pl.DataFrame:
    """Bikes and shoes with their lifetime distance, built from `athlete_raw` (or, without API access, the
    names, brands and models of the export archive's `bikes.csv` and `shoes.csv`). A gear Strava answered
    404 for has no row: it no longer exists, and its id stays in `athlete_raw` and on its activities."""
    return gear_frame(_documents(athlete_raw, landed, "gear"))
