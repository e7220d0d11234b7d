"""A sensor that notices late uploads, edits and deletions for one API request per tick.

Strava accepts uploads days late and lets athletes edit or delete old activities; a daily schedule with
a short lookback misses those. Each tick reads the newest page of the listing (per_page=200, one
request), compares it with what landed in ``activities_raw`` for the days that page spans, and requests a
run for every day holding an activity that is new, changed, or gone. Social counters (kudos, comments,
achievements) change constantly and mean nothing for the mirror, so they don't count as changes.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from strava_pipeline.resources import LandedDataResource, StravaResource
from strava_pipeline.transforms.activities import activity_id_of, activity_local_date

#: Summary fields that change without the activity changing.
VOLATILE_FIELDS = frozenset(
    {"kudos_count", "comment_count", "achievement_count", "athlete_count", "photo_count",
     "total_photo_count", "has_kudoed", "pr_count"}
)
DEFAULT_INTERVAL_SECONDS = 1800
PAGE_SIZE = 200


def _stable(summary: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in summary.items() if k not in VOLATILE_FIELDS}, sort_keys=True)


def changed_days(
    newest_page: Iterable[Mapping[str, Any]], landed: Iterable[tuple[int, date, str]], *, complete: bool
) -> set[date]:
    """Days whose landed activities differ from the newest listing page.

    Deletions are only judged on days the page covers entirely: after its oldest day, or from it on
    when the page is ``complete`` (shorter than a full page, so it holds the whole history).
    ``landed`` holds ``(activity_id, local date, payload json)``.
    """
    listed = {activity_id_of(s): (activity_local_date(s), _stable(s)) for s in newest_page}
    if not listed:
        return set()
    span_start = min(d for d, _ in listed.values())
    affected: set[date] = set()
    known: set[int] = set()
    for activity_id, day, payload in landed:
        known.add(activity_id)
        if activity_id not in listed:
            if day > span_start or (complete and day == span_start):
                affected.add(day)  # gone (deleted, or made private without read_all)
            continue
        listed_day, stable = listed[activity_id]
        if listed_day != day:
            affected.update({day, listed_day})  # moved to another day
        elif _stable(json.loads(payload)) != stable:
            affected.add(day)  # edited
    affected.update(day for activity_id, (day, _) in listed.items() if activity_id not in known)
    return affected


def build_new_activity_sensor(
    job: UnresolvedAssetJobDefinition,
    partitions_def: dg.PartitionsDefinition,
    *,
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
) -> dg.SensorDefinition:
    """The late-upload sensor for a job over ``partitions_def``."""

    @dg.sensor(
        name="new_or_changed_activities",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One request per tick: re-sync days whose activities were uploaded late, edited or deleted.",
    )
    def new_or_changed_activities(
        context: dg.SensorEvaluationContext, strava: StravaResource, landed: LandedDataResource
    ) -> dg.SensorResult:
        page = next(iter(strava.get_client().iter_activity_pages(per_page=PAGE_SIZE)), None)
        summaries = page.json() if page is not None else []
        if not summaries:
            return dg.SensorResult(skip_reason="no activities listed")
        valid_keys = set(partitions_def.get_partition_keys())
        days_listed = sorted({activity_local_date(s) for s in summaries})
        span = [d for d in _days_between(days_listed[0], days_listed[-1]) if d.isoformat() in valid_keys]
        raw = landed.read("activities_raw", span)
        rows = raw.select("activity_id", "activity_date", "payload").iter_rows()
        complete = len(summaries) < PAGE_SIZE
        days = sorted(d for d in changed_days(summaries, rows, complete=complete) if d.isoformat() in valid_keys)
        if not days:
            return dg.SensorResult(skip_reason="the mirror matches the newest activities")
        by_day: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
        for s in summaries:
            by_day[activity_local_date(s)].append(s)
        requests = []
        for day in days:
            state = hashlib.sha256("".join(sorted(_stable(s) for s in by_day.get(day, []))).encode()).hexdigest()
            requests.append(dg.RunRequest(run_key=f"{day.isoformat()}-{state[:16]}", partition_key=day.isoformat()))
        context.log.info(f"requesting runs for {', '.join(d.isoformat() for d in days)}")
        return dg.SensorResult(run_requests=requests)

    return new_or_changed_activities


def _days_between(first: date, last: date) -> list[date]:
    return [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]
