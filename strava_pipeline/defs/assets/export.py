"""The export archive's raw layer as a daily-partitioned asset: what ``strava-pipeline import`` staged.

Staging (``ingest.export_import``) copies the archive into the raw blob store and writes the archive
index; this asset materialises the index's rows for its days in both stores, so the typed ``activities``
and ``activity_streams`` read the archive like any other upstream asset. It never makes a request.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from strava_pipeline.defs.metadata import WAREHOUSE_KINDS, table_metadata
from strava_pipeline.defs.partitions import BACKFILL_POLICY, partition_days
from strava_pipeline.defs.resources import LandedDataResource
from strava_pipeline.ingest.export_import import (
    api_local_dates,
    archives_in,
    read_index,
    redate_to_api,
    stage_archive,
)
from strava_pipeline.settings import Settings
from strava_pipeline.transforms.activities import EXPORT_ACTIVITY_RAW_SCHEMA

GROUP = "export"


def build_export_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The export archive's raw asset for a given partitioning."""

    @dg.asset(
        name="export_activities_raw",
        group_name=GROUP,
        kinds=WAREHOUSE_KINDS,
        partitions_def=partitions_def,
        backfill_policy=BACKFILL_POLICY,
        metadata=table_metadata(EXPORT_ACTIVITY_RAW_SCHEMA, table="export_activities_raw"),
        deps=["export_archive"],
    )
    def export_activities_raw(
        context: dg.AssetExecutionContext, landed: LandedDataResource, activities_raw: pl.DataFrame
    ) -> dg.Output[pl.DataFrame]:
        """Every `activities.csv` row of the imported export archives (the newest archive holding each
        activity), all columns verbatim as `[[header, occurrence, value], ...]`, with the original upload it
        names (path, SHA-256 in the raw blob store, format, size) and how reading it went (`status`, `error`).
        Partitioned by the activity's local date (the API's, once `activities_raw` lists it); built from the raw
        layer only: no request.
        """
        data_dir = Path(landed.data_dir)
        if activities_raw.width and activities_raw.height:
            redate_to_api(data_dir, dict(activities_raw.select("activity_id", "activity_date").iter_rows()))
        frame = read_index(data_dir, partition_days(context))
        statuses = dict(frame.group_by("status").len().iter_rows()) if frame.height else {}
        return dg.Output(frame, metadata={"api_requests": 0, **{f"status_{k}": v for k, v in statuses.items()}})

    return [export_activities_raw]


class ExportArchiveConfig(dg.Config):
    """Run configuration of ``export_archive``."""

    path: str | None = None
    """An export archive (export_<id>.zip or its folder), or a folder of archives; default STRAVA_EXPORT_PATH."""


def build_export_archive_asset(settings: Settings) -> dg.AssetsDefinition:
    """The staging asset: whatever archives ``STRAVA_EXPORT_PATH`` (or the run config) names, into the raw layer."""

    @dg.asset(name="export_archive", group_name=GROUP, kinds={"python"})
    def export_archive(context: dg.AssetExecutionContext, config: ExportArchiveConfig) -> dg.MaterializeResult:
        """Every file of the Strava export archives at `STRAVA_EXPORT_PATH` (a zip, its unpacked folder, or a
        folder you drop archives into), byte for byte into the raw blob store, and the archive index that
        `export_activities_raw` reads. An archive imported before is skipped; a newer one replaces the rows it
        holds again. The `changed_days` metadata are what the `export_archive_days` sensor then materialises.
        """
        where = Path(config.path).expanduser() if config.path else settings.export_path
        if where is None:
            return dg.MaterializeResult(metadata={"archives": 0, "note": "STRAVA_EXPORT_PATH is not set"})
        days: set[date] = set()
        imported = 0
        for archive in archives_in(where):
            staged = stage_archive(archive, settings.data_dir, timezone=settings.timezone,
                                   api_dates=api_local_dates(settings.data_dir))
            imported += not staged.already_imported
            days.update(staged.days)
            context.log.info(f"{archive.name}: {staged.activities} activities, {len(staged.days)} changed days")
        changed = sorted(days)
        return dg.MaterializeResult(metadata={
            "archives_imported": imported,
            "changed_days": dg.MetadataValue.json([d.isoformat() for d in changed]),
            "first_changed_day": changed[0].isoformat() if changed else "",
            "last_changed_day": changed[-1].isoformat() if changed else "",
            "api_requests": 0,
        })

    return export_archive
