"""Which activities' streams a batch needs to request, and which it can reuse.

An activity's streams are looked for (1) in the landed raw layer, reused when the summary fields the
recording depends on are unchanged, and (2) in the landing cache, where every response is written the
moment it arrives so a failed run never wastes what it fetched. Manual activities have no streams.

A body ``streams_raw`` cannot store (see ``unstorable_reason``) is never landed: a rejection marker
(``<key>.rejected``: the reason and how many bad bodies came) takes its place, so the activity is asked
once more on a later run (Strava may have fixed it) and then no more until a forced refetch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from strava_pipeline.ingest import progress
from strava_pipeline.ingest.summaries import SUMMARY_KEYS
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.transforms.streams import unstorable_reason

#: Bad bodies after which an activity is no longer requested automatically: the first, and one retry.
MAX_BAD_BODIES = 2


def cache_key(activity_id: int, fingerprint: str) -> str:
    """Landing-cache key of one activity's streams: a changed recording never matches an old entry."""
    return f"{activity_id}-{fingerprint}"


def committed_keys(streams_raw: pl.DataFrame) -> Iterable[str]:
    """Landing-cache keys of raw stream rows: once these rows are committed, their cache entries are redundant."""
    return (cache_key(a, f) for a, f in streams_raw.select("activity_id", "summary_fingerprint").iter_rows())


@dataclass(frozen=True)
class Rejection:
    """Why an activity's streams were not landed, and how many unstorable bodies have come for it."""

    reason: str
    count: int

    @property
    def exhausted(self) -> bool:
        """No more automatic requests: the retry came back bad too (a forced refetch still asks)."""
        return self.count >= MAX_BAD_BODIES


def _marker(key: str) -> str:
    return f"{key}.rejected"


def read_rejection(cache: LandingCache, key: str) -> Rejection | None:
    """The rejection recorded for a landing-cache key, if any (an unreadable marker counts as one rejection)."""
    raw = cache.get(_marker(key))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        return Rejection(str(doc["reason"]), int(doc["count"]))
    except (ValueError, KeyError, TypeError):
        return Rejection("unknown (unreadable rejection marker)", 1)


def judge_and_land(cache: LandingCache, activity_id: int, fingerprint: str, body: bytes) -> bytes | Rejection:
    """Land a storable body (forgetting any earlier rejection), or drop it and record one more rejection.

    The single place a body enters the landing cache, so nothing the raw layer cannot store is replayed.
    """
    key = cache_key(activity_id, fingerprint)
    reason = unstorable_reason(body, f"activity {activity_id}")
    if reason is None:
        cache.put(key, body)
        cache.discard([_marker(key)])
        return body
    return _reject(cache, key, reason)


def _reject(cache: LandingCache, key: str, reason: str) -> Rejection:
    """Drop the key's body and count one more rejection in its marker."""
    cache.discard([key])
    previous = read_rejection(cache, key)
    rejection = Rejection(reason, (previous.count if previous else 0) + 1)
    cache.put(_marker(key), json.dumps({"reason": rejection.reason, "count": rejection.count}).encode())
    return rejection


def rejected_streams(summaries: pl.DataFrame, cache: LandingCache) -> dict[int, Rejection]:
    """Activities of ``summaries`` (``activity_id``, ``summary_fingerprint``) whose current recording's streams
    were rejected: they have no ``streams_raw`` row on purpose, which a completeness check must not block on."""
    found = {}
    for activity_id, fingerprint in summaries.select("activity_id", "summary_fingerprint").iter_rows():
        rejection = read_rejection(cache, cache_key(activity_id, fingerprint))
        if rejection is not None:
            found[activity_id] = rejection
    return found


@dataclass
class StreamsPlan:
    """What a batch of activities needs: rows to reuse as they are, and requests to make."""

    #: Landed raw rows reused as they are (dated as the summary now says).
    reused_rows: list[dict[str, Any]] = field(default_factory=list)
    #: (activity_id, activity_date, fingerprint, body) found in the landing cache.
    cached: list[tuple[int, date, str, bytes]] = field(default_factory=list)
    #: (activity_id, activity_date, fingerprint) to request.
    to_fetch: list[tuple[int, date, str]] = field(default_factory=list)
    #: (activity_id, activity_date, rejection) not requested: their bodies were unstorable twice already.
    rejected: list[tuple[int, date, Rejection]] = field(default_factory=list)


def plan_streams(
    summaries: pl.DataFrame,
    previous: Mapping[int, Mapping[str, Any]],
    cache: LandingCache,
    *,
    refetch: bool,
    discard_reused: bool = True,
    in_archive: Collection[int] = (),
    requestable: Collection[int] | None = None,
    judged: Callable[[str], bool] = lambda _key: False,
) -> StreamsPlan:
    """Split the batch's non-manual activities into reused landed rows, landing-cache hits and requests.

    ``summaries``: the batch's ``activities_raw`` rows (at least ``SUMMARY_KEYS``).
    ``previous``: landed ``streams_raw`` rows by activity id (empty when refetching). A landed row is
    reused when its summary fingerprint is unchanged; its leftover landing-cache entry, if any, is
    dropped (unless ``discard_reused`` is off: the prefetcher only looks).
    A cached body is judged before reuse (one landed before bodies were judged may be unstorable): a bad
    one is dropped and counted as a rejection. ``judged(key)``: whether this process itself landed that
    body, judging it on arrival (``judge_and_land``): then it is not parsed a second time.
    A rejected activity is requested again unless its rejection is exhausted; ``refetch`` requests it
    regardless.
    ``requestable``: the activities whose streams may be requested (those of the sports STRAVA_SPORT_TYPES
    selects; None: all); the others keep what already landed and are never requested.
    """
    plan = StreamsPlan()
    for activity_id, activity_date, manual, fingerprint in summaries.select(SUMMARY_KEYS).iter_rows():
        if manual or activity_id in in_archive:  # no streams, or the archive's original file stands for them
            continue
        key = cache_key(activity_id, fingerprint)
        old = previous.get(activity_id)
        if old is not None and old["summary_fingerprint"] == fingerprint:
            plan.reused_rows.append({**old, "activity_date": activity_date})
            if discard_reused:
                cache.discard([key])
            continue
        # A sport STRAVA_SPORT_TYPES leaves out keeps what landed (above) or waits in the cache; never requested.
        may_request = requestable is None or activity_id in requestable
        if refetch and not may_request:
            continue
        if refetch:
            plan.to_fetch.append((activity_id, activity_date, fingerprint))
            continue
        body = cache.get(key)
        rejection = None
        if body is not None:
            reason = None if judged(key) else unstorable_reason(body, f"activity {activity_id}")
            if reason is None:
                plan.cached.append((activity_id, activity_date, fingerprint, body))
                continue
            if not discard_reused:  # only looking: the run's own plan drops it and records the rejection
                continue
            rejection = _reject(cache, key, reason)
        else:
            rejection = read_rejection(cache, key)
        if not may_request:
            continue
        if rejection is not None and rejection.exhausted:
            plan.rejected.append((activity_id, activity_date, rejection))
        else:
            plan.to_fetch.append((activity_id, activity_date, fingerprint))
    progress.planned((cache_key(a, f) for a, _, f in plan.to_fetch), reused=len(plan.reused_rows),
                     cached=len(plan.cached))
    return plan
