"""Jobs the schedule and the sensor launch."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

#: Everything that depends on Strava for a range of days: the athlete and every activity-level asset.
SYNC_JOB_NAME = "sync_days"


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
