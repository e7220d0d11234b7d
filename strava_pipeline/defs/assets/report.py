"""The training report: a self-contained HTML page written to ``<data dir>/reports/training_report.html``."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from strava_pipeline.defs.resources import LandedDataResource, SportFilterResource
from strava_pipeline.report import recent_route_activities, render_training_report
from strava_pipeline.storage.files import write_atomic
from strava_pipeline.transforms.activities import ACTIVITY_SCHEMA
from strava_pipeline.transforms.metrics import DAILY_TRAINING_LOAD_SCHEMA, WEEKLY_SUMMARY_SCHEMA
from strava_pipeline.transforms.training import ACTIVITY_METRICS_TABLE_SCHEMA, with_schema

REPORT_RELATIVE_PATH = Path("reports") / "training_report.html"
ROUTES = 6


def report_path(data_dir: str | Path) -> Path:
    """Where the report is written for a data dir."""
    return Path(data_dir) / REPORT_RELATIVE_PATH


_ALL = dg.AllPartitionMapping()


@dg.asset(
    group_name="report",
    kinds={"python", "html"},
    ins={
        "activities": dg.AssetIn(partition_mapping=_ALL),
        "activity_metrics": dg.AssetIn(partition_mapping=_ALL),
        "daily_training_load": dg.AssetIn(),
        "weekly_summary": dg.AssetIn(),
        "athlete": dg.AssetIn(),
    },
    deps=[dg.AssetDep("activity_streams", partition_mapping=_ALL)],
)
def training_report(
    context: dg.AssetExecutionContext,
    landed: LandedDataResource,
    sport_filter: SportFilterResource,
    activities: pl.DataFrame,
    activity_metrics: pl.DataFrame,
    daily_training_load: pl.DataFrame,
    weekly_summary: pl.DataFrame,
    athlete: pl.DataFrame,
) -> dg.MaterializeResult:
    """A self-contained HTML training report at `<data dir>/reports/training_report.html`: weekly volume per
    sport, fitness/fatigue/form, best efforts, power bests and the shapes of recent routes (drawn from their
    GPS samples as inline SVG). Works offline: no map tiles, fonts or CDN scripts. With STRAVA_SPORT_TYPES set,
    routes are drawn for those sports only; weekly volume counts every activity.
    """
    summaries = with_schema(activities, ACTIVITY_SCHEMA)
    recent = recent_route_activities(sport_filter.apply(summaries), ROUTES)
    route_points = pl.DataFrame()
    if not recent.is_empty():
        days = sorted(set(recent.get_column("activity_date").to_list()))
        streams = landed.read("activity_streams", days)
        if not streams.is_empty():
            route_points = streams.filter(pl.col("activity_id").is_in(recent.get_column("activity_id").to_list()))
    page = render_training_report(
        athlete=athlete,
        activities=summaries,
        metrics=with_schema(activity_metrics, ACTIVITY_METRICS_TABLE_SCHEMA),
        daily_load=with_schema(daily_training_load, DAILY_TRAINING_LOAD_SCHEMA),
        weekly=with_schema(weekly_summary, WEEKLY_SUMMARY_SCHEMA),
        route_points=route_points,
        generated_at=datetime.now(UTC),
    )
    path = report_path(landed.data_dir).resolve()
    write_atomic(path, page)
    context.log.info(f"training report written to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "url": dg.MetadataValue.url(path.as_uri()),
            "bytes": len(page.encode("utf-8")),
            "activities": summaries.height,
            "routes_drawn": recent.height,
            "preview": dg.MetadataValue.md(
                f"[Open the training report]({path.as_uri()}) ({len(page) // 1024} kB, self-contained)\n\n"
                f"- {summaries.height} activities, {weekly_summary.height} sport-weeks, "
                f"{daily_training_load.height} days of fitness/fatigue/form\n"
                f"- {recent.height} recent routes drawn from their GPS samples"
            ),
        }
    )
