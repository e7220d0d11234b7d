"""Fetching the streams of a backfill's coming batches while earlier batches load.

The network time of quarter k+1 overlaps the loading of quarter k. Everything fetched is in the landing
cache before anything else happens, so a backfill that stops early wastes nothing: the next attempt reads
it back. On an interrupt (the limiter's ``SHUTDOWN`` set) the prefetcher stops at once and its ``stop`` does
not wait for requests still in flight: the command must end within seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from strava_pipeline.ingest.in_flight import IN_FLIGHT
from strava_pipeline.ingest.stream_plan import plan_streams
from strava_pipeline.ingest.summaries import LandedReader, read_summary_keys
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.strava import StravaClient
from strava_pipeline.strava.rate_limiter import SHUTDOWN, StravaInterrupted
from strava_pipeline.transforms.streams import archived_recordings

_log = logging.getLogger("strava_pipeline.streams")


class StreamPrefetcher:
    """Fetch the streams of upcoming batches into the landing cache while earlier batches load.

    Batches are ``add``-ed as their activity summaries land (the backfill adds each quarter once the
    year holding it is committed), so fetching starts while later summaries are still being listed.
    ``read``: (asset, days, columns) -> landed frame. A failed request stops the prefetcher; the asset
    then makes (and reports) that request itself. ``sport_types`` (STRAVA_SPORT_TYPES): only activities of
    those sports are fetched, as the asset would.
    """

    def __init__(
        self,
        client: StravaClient,
        cache: LandingCache,
        read: LandedReader,
        max_concurrent_requests: int,
        sport_types: Collection[str] | None = None,
    ) -> None:
        self._client = client
        self._sport_types = sport_types
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

    def _halted(self) -> bool:
        return self._stopped.is_set() or SHUTDOWN.is_set()

    def _plan_all(self) -> None:
        while (days := self._batches.get()) is not None and not self._halted():
            previous = {
                row["activity_id"]: row
                for row in self._read("streams_raw", days, ["activity_id", "summary_fingerprint"]).iter_rows(named=True)
            }
            archived = archived_recordings(self._read("export_activities_raw", days, ["activity_id", "status"]))
            plan = plan_streams(read_summary_keys(self._read, days, self._sport_types), previous, self._cache,
                                refetch=False, discard_reused=False, in_archive=archived)
            for activity_id, _, fingerprint in plan.to_fetch:
                if self._halted():
                    return
                self._pool.submit(self._one, activity_id, fingerprint)

    def _one(self, activity_id: int, fingerprint: str) -> None:
        if self._halted():
            return
        try:
            IN_FLIGHT.prefetch(self._client, self._cache, activity_id, fingerprint)
        except StravaInterrupted:
            self._stopped.set()
        except Exception as exc:  # the asset makes this request itself and reports what went wrong
            if not self._stopped.is_set():
                _log.info("fetching streams ahead stopped (the runs fetch the rest themselves): %s", exc)
            self._stopped.set()

    def stop(self) -> None:
        """Cancel what has not started; wait for the requests in flight (they land in the cache), unless the
        process is shutting down: then whatever is still running ends on its own (the limiter refuses it)."""
        self._stopped.set()
        self._batches.put(None)
        interrupted = SHUTDOWN.is_set()
        self._planner.join(timeout=1.0 if interrupted else None)
        self._pool.shutdown(wait=not interrupted, cancel_futures=True)
        self._client.close()
