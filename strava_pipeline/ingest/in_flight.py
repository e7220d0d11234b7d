"""Each activity's streams requested at most once per process, and landed before anything else happens.

``streams_raw`` and the backfill's prefetcher share one table of requests in flight: a second caller
waits for the first one's response instead of spending another request, and a prefetcher never fetches
what this process has already fetched.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from strava_pipeline.ingest.stream_plan import cache_key
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.strava import StravaClient


def fetch_and_land(client: StravaClient, cache: LandingCache, activity_id: int, fingerprint: str) -> bytes:
    """Request one activity's streams and write the body (``b""`` for Strava's 404) to the landing cache
    before anything else is done with it."""
    response = client.get_activity_streams(activity_id)
    body = b"" if response is None else response.body
    cache.put(cache_key(activity_id, fingerprint), body)
    return body


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
