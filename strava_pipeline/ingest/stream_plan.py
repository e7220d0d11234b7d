"""Which activities' streams a batch needs to request, and which it can reuse.

An activity's streams are looked for (1) in the landed raw layer, reused when the summary fields the
recording depends on are unchanged, and (2) in the landing cache, where every response is written the
moment it arrives so a failed run never wastes what it fetched. Manual activities have no streams.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from strava_pipeline.ingest.summaries import SUMMARY_KEYS
from strava_pipeline.storage.landing_cache import LandingCache


def cache_key(activity_id: int, fingerprint: str) -> str:
    """Landing-cache key of one activity's streams: a changed recording never matches an old entry."""
    return f"{activity_id}-{fingerprint}"


def committed_keys(streams_raw: pl.DataFrame) -> Iterable[str]:
    """Landing-cache keys of raw stream rows: once these rows are committed, their cache entries are redundant."""
    return (cache_key(a, f) for a, f in streams_raw.select("activity_id", "summary_fingerprint").iter_rows())


@dataclass
class StreamsPlan:
    """What a batch of activities needs: rows to reuse as they are, and requests to make."""

    #: Landed raw rows reused as they are (dated as the summary now says).
    reused_rows: list[dict[str, Any]] = field(default_factory=list)
    #: (activity_id, activity_date, fingerprint, body) found in the landing cache.
    cached: list[tuple[int, date, str, bytes]] = field(default_factory=list)
    #: (activity_id, activity_date, fingerprint) to request.
    to_fetch: list[tuple[int, date, str]] = field(default_factory=list)


def plan_streams(
    summaries: pl.DataFrame,
    previous: Mapping[int, Mapping[str, Any]],
    cache: LandingCache,
    *,
    refetch: bool,
    discard_reused: bool = True,
    in_archive: Collection[int] = (),
) -> StreamsPlan:
    """Split the batch's non-manual activities into reused landed rows, landing-cache hits and requests.

    ``summaries``: the batch's ``activities_raw`` rows (at least ``SUMMARY_KEYS``).
    ``previous``: landed ``streams_raw`` rows by activity id (empty when refetching). A landed row is
    reused when its summary fingerprint is unchanged; its leftover landing-cache entry, if any, is
    dropped (unless ``discard_reused`` is off: the prefetcher only looks).
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
        body = None if refetch else cache.get(key)
        if body is not None:
            plan.cached.append((activity_id, activity_date, fingerprint, body))
        else:
            plan.to_fetch.append((activity_id, activity_date, fingerprint))
    return plan
