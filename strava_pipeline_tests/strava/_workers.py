"""Functions run in child processes by the cross-process tests (must be importable by module name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def refresh_and_fetch(args: tuple[str, str, str, Any]) -> int:
    """Wait at the barrier, then make one API call with a store that needs a refresh; return the athlete id."""
    base_url, store_path, state_path, barrier = args
    from strava_pipeline.strava import RateLimiter, StravaClient, TokenStore

    client = StravaClient(
        base_url=base_url,
        client_id="1",
        client_secret="mini-secret",
        token_store=TokenStore(Path(store_path)),
        rate_limiter=RateLimiter(state_path=Path(state_path)),
        backoff_factor=0.01,
    )
    barrier.wait(timeout=30)
    try:
        return int(client.get_athlete().json()["id"])
    finally:
        client.close()


def acquire_many(args: tuple[str, int, Any]) -> int:
    """Acquire ``n`` times on a shared limiter state file."""
    state_path, n, barrier = args
    from strava_pipeline.strava import RateLimiter

    limiter = RateLimiter(state_path=Path(state_path))
    barrier.wait(timeout=30)
    for _ in range(n):
        limiter.acquire()
    return n
