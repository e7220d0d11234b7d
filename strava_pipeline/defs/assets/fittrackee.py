"""The FitTrackee sink: every activity of the mirror as a workout on your own FitTrackee instance.

Enabled when ``FITTRACKEE_URL``, ``FITTRACKEE_CLIENT_ID`` and ``FITTRACKEE_CLIENT_SECRET`` are set (the client
id and secret reach Dagster as ``EnvVar``) and ``strava-pipeline auth fittrackee`` has stored tokens;
otherwise the asset materialises with the reason and makes no request. What is sent, and why a re-run sends
nothing, is :mod:`strava_pipeline.fittrackee.sync`.
"""


import time
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from strava_pipeline.defs.io_manager import ready_database_url
from strava_pipeline.defs.resources import LandedDataResource, SportFilterResource, optional_env
from strava_pipeline.fittrackee import (
    Activity,
    FitTrackeeClient,
    FitTrackeeConfigError,
    FitTrackeeRateLimiter,
    FitTrackeeSettings,
    FitTrackeeTokenStore,
    SyncReport,
    WorkoutTable,
    run_sync,
)
from strava_pipeline.fittrackee.config import normalize_instance_url, parse_bool
from strava_pipeline.settings import Settings
from strava_pipeline.strava.rate_limiter import SHUTDOWN
from strava_pipeline.transforms.activity_files import FILES_DIR
from strava_pipeline.transforms.sport_filter import SPORT_TYPES_VARIABLE

__all__ = ["ACTIVITY_COLUMNS", "FitTrackeeResource", "build_fittrackee_asset", "fittrackee_resource"]

#: The columns of ``activities`` the sink reads.
ACTIVITY_COLUMNS = ("activity_id", "activity_date", "start_date", "name", "sport_type", "commute", "distance_m",
                    "moving_time_s", "elapsed_time_s")
_ALL = dg.AllPartitionMapping()


class FitTrackeeResource(dg.ConfigurableResource):
    """Access to one FitTrackee instance through an OAuth2 app, with the tokens of the pipeline's token store."""

    url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_file: str
    #: FITTRACKEE_DELETE_REMOVED, parsed when the asset runs (a typo fails the run, not the code location).
    delete_removed: str | None = None
    database_url: str | None = None
    #: The longest single rate-limit wait before the run fails instead.
    max_wait_seconds: float = 900.0
    request_timeout_seconds: float = 120.0

    _client: FitTrackeeClient | None = PrivateAttr(default=None)

    def settings(self) -> FitTrackeeSettings:
        return FitTrackeeSettings(url=normalize_instance_url(self.url) if self.url else None,
                                  client_id=self.client_id, client_secret=self.client_secret,
                                  delete_removed=parse_bool("FITTRACKEE_DELETE_REMOVED", self.delete_removed, True))

    def get_client(self) -> FitTrackeeClient:
        """The run's client (created on first use)."""
        if self._client is None:
            settings = self.settings()
            if settings.disabled_reason() is not None or not (settings.url and settings.client_id
                                                               and settings.client_secret):
                raise FitTrackeeConfigError(settings.disabled_reason() or "FitTrackee is not configured")
            store = FitTrackeeTokenStore(self.token_file, instance_url=settings.url, client_id=settings.client_id)
            self._client = FitTrackeeClient(
                settings.url, settings.client_id, settings.client_secret, store,
                limiter=FitTrackeeRateLimiter(max_wait_s=self.max_wait_seconds, shutdown=SHUTDOWN),
                timeout=(10.0, self.request_timeout_seconds))
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def fittrackee_resource(settings: Settings, **overrides: Any) -> FitTrackeeResource:
    """The FitTrackee resource of a configuration: secrets stay ``EnvVar`` references (None when unset)."""
    fields: dict[str, Any] = {
        "url": optional_env("FITTRACKEE_URL"),
        "client_id": optional_env("FITTRACKEE_CLIENT_ID"),
        "client_secret": optional_env("FITTRACKEE_CLIENT_SECRET"),
        "token_file": str(settings.token_file),
        "delete_removed": optional_env("FITTRACKEE_DELETE_REMOVED"),
        "database_url": optional_env("STRAVA_PIPELINE_DATABASE_URL"),
    }
    return FitTrackeeResource(**{**fields, **overrides})


def read_activities(landed: LandedDataResource) -> list[Activity]:
    """Every activity of the mirror (all written days) with its file, if the ``activity_files`` asset wrote one."""
    frame = landed.read("activities", None)
    if frame.is_empty() or "activity_id" not in frame.columns:
        return []
    present = [c for c in ACTIVITY_COLUMNS if c in frame.columns]
    files_root = Path(landed.data_dir) / FILES_DIR
    return [Activity.from_row(row, files_root) for row in frame.select(present).iter_rows(named=True)]


def _not_selected(activities: list[Activity], sports: frozenset[str] | None) -> dict[int, str]:
    """Activities of sports STRAVA_SPORT_TYPES leaves out: the sink neither uploads nor deletes them."""
    if sports is None:
        return {}
    reason = f"sport not selected ({SPORT_TYPES_VARIABLE})"
    return {a.activity_id: reason for a in activities if a.sport_type not in sports}


def _report_metadata(report: SyncReport, instance: str, seconds: float) -> dict[str, Any]:
    total = sum(report.requests.values())
    return {
        "instance": dg.MetadataValue.url(instance),
        "uploaded": report.uploads,
        "created": report.created,
        "updated": report.updated,
        "replaced": report.replaced,
        "deleted": report.deleted,
        "unchanged": report.unchanged,
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "sent_without_track": len(report.without_track),
        "sent_with_reduced_track": len(report.reduced_track),
        "reduced_tracks": dg.MetadataValue.json({str(k): v for k, v in list(report.reduced_track.items())[:50]}),
        "kept_removed": report.kept_removed,
        "fittrackee_requests": total,
        "requests_by_route": dg.MetadataValue.json(dict(sorted(report.requests.items()))),
        "rate_limit_waits": report.rate_limit_waits,
        "rate_limit_waited_s": round(report.rate_limit_waited_s, 1),
        "rate_limited_429": report.rate_limited,
        "uploads_per_min": round(report.uploads / seconds * 60, 1) if seconds > 0 and report.uploads else 0.0,
        "skipped_reasons": dg.MetadataValue.json({str(k): v for k, v in list(report.skipped.items())[:50]}),
        "failures": dg.MetadataValue.json({str(k): v for k, v in list(report.failed.items())[:50]}),
    }


#: The single place that wires the sink after what it uploads: every day of ``activities``, and the GPX files
#: that ``activity_files`` (daily partitioned) writes under ``<data dir>/files/`` when the code location has it.
def _upstream(has_activity_files: bool) -> list[dg.AssetDep]:
    deps = [dg.AssetDep("activities", partition_mapping=_ALL)]
    if has_activity_files:
        deps.append(dg.AssetDep("activity_files", partition_mapping=_ALL))
    return deps


def build_fittrackee_asset(*, has_activity_files: bool) -> dg.AssetsDefinition:
    """The sink asset, downstream of ``activities`` (and ``activity_files`` when it exists)."""

    @dg.asset(name="fittrackee_workouts", group_name="sinks", kinds={"python", "postgres"},
              deps=_upstream(has_activity_files))
    def fittrackee_workouts(context: dg.AssetExecutionContext, landed: LandedDataResource,
                            fittrackee: FitTrackeeResource, sport_filter: SportFilterResource) -> dg.MaterializeResult:
        """Every activity of the mirror as a workout on your FitTrackee instance (`FITTRACKEE_URL`): uploaded
        with its GPX/TCX file (or, without one, from its date, distance and moving time), titled with its name,
        the Strava link in its notes, its sport mapped to FitTrackee's. `strava.fittrackee_workouts` remembers
        what was sent: an unchanged activity costs no request, an edited one is updated (or re-uploaded when its
        track changed), a deleted one is deleted there too (`FITTRACKEE_DELETE_REMOVED=false` keeps it).
        FitTrackee's rate limit (300 requests / 5 min by default) and its 429s are respected.
        """
        settings = fittrackee.settings()
        reason = settings.disabled_reason()
        if reason is not None or settings.url is None:
            context.log.info(f"FitTrackee sink skipped: {reason}")
            return dg.MaterializeResult(metadata={"skipped": reason or "not configured", "fittrackee_requests": 0})
        activities = read_activities(landed)
        excluded = _not_selected(activities, sport_filter.selected())
        url = ready_database_url(fittrackee.database_url, Path(landed.data_dir))
        started = time.monotonic()
        report = run_sync(fittrackee.get_client(), WorkoutTable(url, settings.url), activities,
                          delete_removed=settings.delete_removed, excluded=excluded,
                          log=context.log)  # type: ignore[arg-type]
        seconds = time.monotonic() - started
        context.log.info(
            f"FitTrackee: {report.created} created, {report.updated} updated, {report.replaced} replaced, "
            f"{report.deleted} deleted, {report.unchanged} unchanged, {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed, {sum(report.requests.values())} requests in {seconds:.1f}s")
        return dg.MaterializeResult(metadata=_report_metadata(report, settings.url, seconds))

    return fittrackee_workouts


