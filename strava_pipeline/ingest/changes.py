"""Which days of the mirror the newest activity listing contradicts: new, edited, moved or deleted activities.

Strava accepts uploads days late and lets athletes edit or delete old activities; a daily schedule with a
short lookback misses those. Comparing the newest listing page with what landed finds them for one request.
Social counters (kudos, comments, achievements) change constantly and mean nothing for the mirror, so they
don't count as changes.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from strava_pipeline.transforms.activities import activity_id_of, activity_local_date

#: Summary fields that change without the activity changing.
VOLATILE_FIELDS = frozenset(
    {"kudos_count", "comment_count", "achievement_count", "athlete_count", "photo_count",
     "total_photo_count", "has_kudoed", "pr_count"}
)


def stable_summary(summary: Mapping[str, Any]) -> str:
    """The summary as canonical JSON without its social counters: equal exactly when nothing real changed."""
    return json.dumps({k: v for k, v in summary.items() if k not in VOLATILE_FIELDS}, sort_keys=True)


def changed_days(
    newest_page: Iterable[Mapping[str, Any]], landed: Iterable[tuple[int, date, str]], *, complete: bool
) -> set[date]:
    """Days whose landed activities differ from the newest listing page.

    Deletions are only judged on days the page covers entirely: after its oldest day, or from it on
    when the page is ``complete`` (shorter than a full page, so it holds the whole history).
    ``landed`` holds ``(activity_id, local date, payload json)``.
    """
    listed = {activity_id_of(s): (activity_local_date(s), stable_summary(s)) for s in newest_page}
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
        elif stable_summary(json.loads(payload)) != stable:
            affected.add(day)  # edited
    affected.update(day for activity_id, (day, _) in listed.items() if activity_id not in known)
    return affected




def day_states(summaries: Iterable[Mapping[str, Any]], days: Iterable[date]) -> dict[date, str]:
    """A digest of each day's listed activities (without social counters): a run key that changes with them."""
    by_day: dict[date, list[str]] = defaultdict(list)
    for s in summaries:
        by_day[activity_local_date(s)].append(stable_summary(s))
    return {day: hashlib.sha256("".join(sorted(by_day.get(day, []))).encode()).hexdigest()[:16] for day in days}


def days_between(first: date, last: date) -> list[date]:
    return [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]
