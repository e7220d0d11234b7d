"""Each activity's streams requested at most once per process, and landed before anything else happens.

``streams_raw`` and the backfill's prefetcher share one table of requests in flight: a second caller
waits for the first one's response instead of spending another request, and a prefetcher never fetches
what this process has already fetched. A body judged unstorable is not landed (see ``judge_and_land``);
callers get the ``Rejection`` instead, and one the prefetcher received is kept for the run that needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future

from strava_pipeline.ingest import progress
from strava_pipeline.ingest.stream_plan import Rejection, cache_key, judge_and_land
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.strava import StravaClient

#: What a stream request yields: the landed body (``b""`` for Strava's 404), or why it was not landed.
Fetched = bytes | Rejection


def fetch_and_land(client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str) -> Fetched:
    """Request one activity's streams and land the body (``b""`` for Strava's 404) before anything else is
    done with it, or record its rejection when ``streams_raw`` could not store it."""
    response = client.get_activity_streams(activity_id)
    landed = judge_and_land(cache, activity_id, fingerprint, b"" if response is None else response.body)
    progress.emit(progress.StreamsFetched(cache_key(activity_id, fingerprint), isinstance(landed, Rejection)))
    return landed


class InFlightFetches:
    """Per-process coalescing of stream requests, keyed by landing-cache key.

    A response is in the landing cache before its key leaves the in-flight table, so any caller either
    waits for the request in flight or finds the cached body: two callers never both pay for it. A
    rejected body is not cached, so a prefetched rejection is held here until a run's fetch claims it:
    otherwise that run would ask again for what it was just refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[Fetched]] = {}
        self._done: set[str] = set()
        self._ahead: set[str] = set()  # requested by the prefetcher: a run finds them cached, not requested
        self._rejected_ahead: dict[str, Rejection] = {}

    def fetch(
        self, client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str
    ) -> tuple[Fetched, bool]:
        """The streams body (``b""`` for Strava's 404) or its rejection, requested unless in flight, already
        cached or already rejected ahead, and whether this call made the request."""
        key = cache_key(activity_id, fingerprint)
        result = self._claim_or_wait(cache, key, retry_failed=True)
        if not isinstance(result, Future):
            with self._lock:  # a prefetched rejection is claimed by the first run that receives it
                self._rejected_ahead.pop(key, None)
            return result, False
        return self._request(client, cache, activity_id, fingerprint, result, ahead=False), True

    def prefetch(self, client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str) -> None:
        """Like ``fetch``, but skip what this process already fetched (it may have landed and left the cache)."""
        key = cache_key(activity_id, fingerprint)
        with self._lock:
            if key in self._done or key in self._in_flight:
                return
        result = self._claim_or_wait(cache, key)
        if isinstance(result, Future):
            self._request(client, cache, activity_id, fingerprint, result, ahead=True)

    def landed_here(self, key: str) -> bool:
        """Whether this process requested and landed (so judged) the body under this landing-cache key."""
        with self._lock:
            return key in self._done

    def fetched_ahead(self, keys: Iterable[str]) -> int:
        """How many of these landing-cache keys this process's prefetcher requested (the rest of a batch's
        cache hits landed in an earlier run or process): what a run reports as fetched ahead, not cached."""
        with self._lock:
            return sum(1 for key in keys if key in self._ahead)

    def _claim_or_wait(self, cache: LandingCache, key: str, *, retry_failed: bool = False
                       ) -> Fetched | Future[Fetched]:
        """A result (cached, rejected ahead, or from the request in flight), or a new future this caller must
        fulfil. ``retry_failed``: when the request waited for fails, claim it again (and make it) instead of
        failing too: the prefetcher's client never waits for the budget, so its "rate limit used up" must not
        fail the run that was waiting for the same activity."""
        while True:
            with self._lock:
                pending = self._in_flight.get(key)
                if pending is None:
                    cached = cache.get(key)
                    if cached is not None:
                        return cached
                    if key in self._rejected_ahead:
                        return self._rejected_ahead.pop(key)
                    pending = self._in_flight[key] = Future()
                    pending.set_running_or_notify_cancel()
                    return pending
            try:
                return pending.result()
            except Exception:  # the owner failed and left the table (an interrupt is no Exception: it ends us too)
                if not retry_failed:
                    raise

    def _request(
        self,
        client: StravaClient,
        cache: LandingCache,
        activity_id: int,
        fingerprint: str,
        owned: Future[Fetched],
        *,
        ahead: bool,
    ) -> Fetched:
        key = cache_key(activity_id, fingerprint)
        try:
            result = fetch_and_land(client, cache, activity_id, fingerprint)
        except BaseException as exc:
            owned.set_exception(exc)
            with self._lock:
                del self._in_flight[key]
            raise
        with self._lock:
            del self._in_flight[key]
            self._done.add(key)
            if ahead:
                self._ahead.add(key)
                if isinstance(result, Rejection):
                    self._rejected_ahead[key] = result
        owned.set_result(result)  # after the table is updated: a waiter that claims the rejection finds it
        return result


#: The process's one table of stream requests in flight.
IN_FLIGHT = InFlightFetches()
