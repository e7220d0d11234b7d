"""How much a busy main thread slows the stream requests of a backfill, and what a shorter GIL switch costs it.

Why: in a backfill the streams are fetched by 8 threads (``ingest.prefetch``) while the main thread runs the
Dagster runs: pure Python most of the time (events, checks, serialisation). Every return from a socket read,
an fsync or the rate limiter's file operations needs the GIL back, and with the main thread holding it a
thread waits up to the switch interval (5 ms) each time. This measures that, in isolation: the simulator's
1,000 one-hour activities (``--latency-ms`` per request), each stream set requested by one of 8 threads
through ``StravaClient`` with a file-backed ``RateLimiter`` and landed through ``LandingCache.put`` (temporary
file, fsync, rename, fsync of the folder), as the prefetcher does. Modes:

* idle: nothing else runs;
* busy: one more thread loops in pure Python for the whole fetch (a stand-in for the main thread);
* busy, no landing: the same without ``LandingCache.put`` (what the landing's syscalls cost under contention);
* busy, switch 0.5 ms: ``sys.setswitchinterval(0.0005)``.

Printed per mode: the fetch's wall time and requests per second, and the busy thread's work rate relative to
running alone (what the fetch's gain costs the main thread).

    .venv/bin/python benchmarks/fetch_contention.py [--activities 1000] [--latency-ms 100] [--workers 8]

Last line: ``RESULT idle_s=<s> busy_s=<s> busy_switch_s=<s> busy_work_switch=<fraction of busy's>``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peers import _warm_up

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.strava import StravaClient
from strava_pipeline.strava.rate_limiter import RateLimiter
from strava_pipeline.strava.tokens import TokenStore


@dataclass
class Busy:
    """A thread doing pure-Python work until stopped, counting rounds."""

    rounds: int = 0
    stop: threading.Event | None = None

    def run(self) -> None:
        assert self.stop is not None
        while not self.stop.is_set():
            total = 0
            for i in range(1000):
                total += i * i
            self.rounds += 1


def _solo_rate(seconds: float = 2.0) -> float:
    """Rounds per second of the busy loop with nothing else running."""
    busy = Busy(stop=threading.Event())
    thread = threading.Thread(target=busy.run)
    thread.start()
    time.sleep(seconds)  # measuring a rate over a fixed interval, not waiting for anything
    busy.stop.set()  # type: ignore[union-attr]
    thread.join()
    return busy.rounds / seconds


def _fetch(sim: StravaSimulator, root: Path, ids: list[int], *, workers: int, land: bool, busy: bool,
           switch: float | None) -> tuple[float, float | None]:
    """Wall seconds to request (and land) every id's streams, and the busy thread's rounds per second."""
    store = TokenStore(root / "tokens.json", seed_refresh_token=sim.authorize()["refresh_token"])
    (root / "landing").mkdir()
    cache = LandingCache(root / "landing")
    limiter = RateLimiter(state_path=root / "rate_limits.json")
    previous = sys.getswitchinterval()
    with StravaClient(base_url=sim.base_url, client_id=sim.client_id, client_secret=sim.client_secret,
                      token_store=store, rate_limiter=limiter, pool_size=workers) as client:
        client.get_athlete()  # the token exchange, outside the clock

        def one(activity_id: int) -> None:
            response = client.get_activity_streams(activity_id)
            if land and response is not None:
                cache.put(f"streams-{activity_id}", response.body)

        worker = Busy(stop=threading.Event())
        thread = threading.Thread(target=worker.run) if busy else None
        if switch is not None:
            sys.setswitchinterval(switch)
        try:
            if thread is not None:
                thread.start()
            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, ids))
            seconds = time.perf_counter() - began
        finally:
            worker.stop.set()  # type: ignore[union-attr]
            if thread is not None:
                thread.join()
            sys.setswitchinterval(previous)
    return seconds, (worker.rounds / seconds if busy else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    end = datetime.now(UTC).date() - timedelta(days=1)
    config = SimulatorConfig(seed=3, start_date=end - timedelta(days=730), end_date=end, activities=args.activities,
                             activity_seconds=3600, latency_ms=args.latency_ms, stream_cache_mb=2048,
                             read_limit=(1_000_000, 10_000_000), overall_limit=(1_000_000, 10_000_000))
    modes = {
        "idle": {"land": True, "busy": False, "switch": None},
        "busy": {"land": True, "busy": True, "switch": None},
        "busy, no landing": {"land": False, "busy": True, "switch": None},
        "busy, switch 0.5 ms": {"land": True, "busy": True, "switch": 0.0005},
    }
    with StravaSimulator(config) as sim, tempfile.TemporaryDirectory() as tmp:
        with_streams, _ = _warm_up(sim)
        ids = [summary["id"] for summary in sim.activities()]
        solo = _solo_rate()
        print(f"simulator: {len(ids)} activities ({with_streams} with streams), {args.latency_ms:g} ms latency, "
              f"{args.workers} threads, switch interval {sys.getswitchinterval() * 1000:g} ms")
        results: dict[str, tuple[float, float | None]] = {}
        for n, (name, options) in enumerate(modes.items()):
            root = Path(tmp) / str(n)
            root.mkdir()
            seconds, rate = _fetch(sim, root, ids, workers=args.workers, **options)  # type: ignore[arg-type]
            results[name] = (seconds, rate)
            work = f", busy thread at {rate / solo:.0%} of its solo rate" if rate is not None else ""
            print(f"  {name:<22} {seconds:6.1f} s  {len(ids) / seconds:6.1f} requests/s{work}", flush=True)
    busy_rate = results["busy"][1] or 1.0
    switch_rate = results["busy, switch 0.5 ms"][1] or 0.0
    print(f"RESULT idle_s={results['idle'][0]:.1f} busy_s={results['busy'][0]:.1f} "
          f"busy_switch_s={results['busy, switch 0.5 ms'][0]:.1f} busy_work_switch={switch_rate / busy_rate:.2f}")


if __name__ == "__main__":
    main()
