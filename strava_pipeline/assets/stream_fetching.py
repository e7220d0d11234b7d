"""Deciding which activities' streams to request, requesting each at most once, and fetching ahead.

``streams_raw`` and the headless backfill's prefetcher both go through here:

- ``plan_streams`` splits a batch of activity summaries into what is reused (landed raw rows whose
  recording did not change, landing-cache entries) and what must be requested (never manual activities);
- ``InFlightFetches`` coalesces requests for the same activity within the process: a second caller waits
  for the first one's response instead of spending another request, and a prefetcher never fetches what
  this process has already fetched;
- ``StreamPrefetcher`` walks the batches of a backfill ahead of the Dagster runs, filling the landing
  cache, so the network time of quarter k+1 overlaps the loading of quarter k. Everything it fetches is
  in the landing cache before anything else happens, so a backfill that stops early wastes nothing: the
  next attempt reads it back.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.strava import StravaClient
from strava_pipeline.transforms.streams import summary_fingerprint

_log = logging.getLogger("strava_pipeline.streams")


def cache_key(activity_id: int, fingerprint: str) -> str:
    """Landing-cache key of one activity's streams: a changed recording never matches an old entry."""
    return f"{activity_id}-{fingerprint}"


def fetch_and_land(client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str) -> bytes:
    """Request one activity's streams and write the body (``b""`` for Strava's 404) to the landing cache
    before anything else is done with it."""
    response = client.get_activity_streams(activity_id)
    body = b"" if response is None else response.body
    cache.put(cache_key(activity_id, fingerprint), body)
    return body


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
    activities_raw: pl.DataFrame,
    previous: Mapping[int, Mapping[str, Any]],
    cache: LandingCache,
    *,
    refetch: bool,
    discard_reused: bool = True,
) -> StreamsPlan:
    """Split the batch's non-manual activities into reused landed rows, landing-cache hits and requests.

    ``previous``: landed ``streams_raw`` rows by activity id (empty when refetching). A landed row is
    reused when its summary fingerprint is unchanged; its leftover landing-cache entry, if any, is
    dropped (unless ``discard_reused`` is off: the prefetcher only looks).
    """
    plan = StreamsPlan()
    for activity_id, activity_date, payload in activities_raw.select(
        "activity_id", "activity_date", "payload"
    ).iter_rows():
        summary = json.loads(payload)
        if summary.get("manual"):
            continue
        fingerprint = summary_fingerprint(summary)
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


class InFlightFetches:
    """Per-process coalescing of stream requests, keyed by landing-cache key.

    A response is in the landing cache before its key leaves the in-flight table, so any caller either
    waits for the request in flight or finds the cached body: two callers never both pay for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[bytes]] = {}
        self._done: set[str] = set()

    def fetch(
        self, client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str
    ) -> tuple[bytes, bool]:
        """The streams body (``b""`` for Strava's 404), requested unless in flight or already cached, and
        whether this call made the request."""
        body = self._claim_or_wait(cache, cache_key(activity_id, fingerprint))
        if isinstance(body, bytes):
            return body, False
        return self._request(client, cache, activity_id, fingerprint, body), True

    def prefetch(self, client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str) -> None:
        """Like ``fetch``, but skip what this process already fetched (it may have landed and left the cache)."""
        key = cache_key(activity_id, fingerprint)
        with self._lock:
            if key in self._done or key in self._in_flight:
                return
        body = self._claim_or_wait(cache, key)
        if not isinstance(body, bytes):
            self._request(client, cache, activity_id, fingerprint, body)

    def _claim_or_wait(self, cache: LandingCache, key: str) -> bytes | Future[bytes]:
        """A body (cached, or from the request in flight), or a new future this caller must fulfil."""
        with self._lock:
            pending = self._in_flight.get(key)
            if pending is None:
                cached = cache.get(key)
                if cached is not None:
                    return cached
                pending = self._in_flight[key] = Future()
                pending.set_running_or_notify_cancel()
                return pending
        return pending.result()

    def _request(
        self, client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str, owned: Future[bytes]
    ) -> bytes:
        key = cache_key(activity_id, fingerprint)
        try:
            body = fetch_and_land(client, cache, activity_id, fingerprint)
        except BaseException as exc:
            owned.set_exception(exc)
            with self._lock:
                del self._in_flight[key]
            raise
        owned.set_result(body)
        with self._lock:
            del self._in_flight[key]
            self._done.add(key)
        return body


#: The process's one table of stream requests in flight.
IN_FLIGHT = InFlightFetches()


class StreamPrefetcher:
    """Fetch the streams of upcoming batches into the landing cache while earlier batches load.

    Batches are ``add``-ed as their activity summaries land (the backfill adds each quarter once the
    year holding it is committed), so fetching starts while later summaries are still being listed.
    ``read``: (asset, days, columns) -> landed frame. A failed request stops the prefetcher; the asset
    then makes (and reports) that request itself.
    """

    def __init__(
        self,
        client: StravaClient,
        cache: LandingCache,
        read: Callable[[str, list[date], list[str] | None], pl.DataFrame],
        max_concurrent_requests: int,
    ) -> None:
        self._client = client
        self._cache = cache
        self._read = read
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent_requests), thread_name_prefix="prefetch")
        self._batches: queue.Queue[list[date] | None] = queue.Queue()
        self._stopped = threading.Event()
        self._planner = threading.Thread(target=self._plan_all, name="prefetch-planner", daemon=True)
        self._planner.start()

    def add(self, days: list[date]) -> None:
        """Queue a batch whose activity summaries have landed; batches are fetched in the order added."""
        self._batches.put(days)

    def _plan_all(self) -> None:
        while (days := self._batches.get()) is not None and not self._stopped.is_set():
            previous = {
                row["activity_id"]: row
                for row in self._read("streams_raw", days, ["activity_id", "summary_fingerprint"]).iter_rows(named=True)
            }
            plan = plan_streams(self._read("activities_raw", days, None), previous, self._cache,
                                refetch=False, discard_reused=False)
            for activity_id, _, fingerprint in plan.to_fetch:
                if self._stopped.is_set():
                    return
                self._pool.submit(self._one, activity_id, fingerprint)

    def _one(self, activity_id: int, fingerprint: str) -> None:
        if self._stopped.is_set():
            return
        try:
            IN_FLIGHT.prefetch(self._client, self._cache, activity_id, fingerprint)
        except Exception as exc:  # the asset makes this request itself and reports what went wrong
            if not self._stopped.is_set():
                _log.info("fetching streams ahead stopped (the runs fetch the rest themselves): %s", exc)
            self._stopped.set()

    def stop(self) -> None:
        """Cancel what has not started; wait for the requests in flight (they land in the cache)."""
        self._stopped.set()
        self._batches.put(None)
        self._planner.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

