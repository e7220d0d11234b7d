"""FitTrackee's own rate limit, respected from its headers.

FitTrackee limits its API with Flask-Limiter (``API_RATE_LIMITS``, default ``300 per 5 minutes``; fixed
windows, counted per client address and per route and method). Every answer carries the state of its
route's window::

    X-RateLimit-Limit: 300
    X-RateLimit-Remaining: 12
    X-RateLimit-Reset: 1796150416      (epoch seconds)
    Retry-After: 187                   (seconds until that reset)

so the limiter keeps one bucket per route and method: when a bucket has nothing left, the next request in it
waits for the reset instead of spending a 429. A 429 (another client of the same address spent the budget,
or the limit changed) waits ``Retry-After`` — or the reset — and is then retried. The standard
``RateLimit-*`` (reset in seconds) and combined ``RateLimit: limit=…, remaining=…, reset=…`` spellings are
read too, for an instance behind a proxy that rewrites them. Every wait ends early when ``shutdown`` is set
(SIGINT/SIGTERM), raising :class:`FitTrackeeInterrupted`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from .errors import FitTrackeeInterrupted, FitTrackeeRateLimitError

__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW_S", "FitTrackeeRateLimiter", "RateState", "parse_rate_headers"]

#: FitTrackee's default ``API_RATE_LIMITS``: 300 requests per 5 minutes (per route).
DEFAULT_LIMIT = 300
DEFAULT_WINDOW_S = 300.0
#: Added to every wait: the server's window must really have reset when we resume.
SLACK_S = 0.5


@dataclass(frozen=True)
class RateState:
    """What one answer said about its route's window; ``reset_in`` in seconds from when it was received."""

    limit: int | None = None
    remaining: int | None = None
    reset_in: float | None = None


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.match(r"\s*(-?\d+)", value)
    return int(match.group(1)) if match else None


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def parse_rate_headers(headers: Mapping[str, str], *, now: float | None = None) -> RateState:
    """The window state an answer's headers announce (missing parts None)."""
    wall = time.time() if now is None else now
    limit = _int(_header(headers, "X-RateLimit-Limit", "RateLimit-Limit"))
    remaining = _int(_header(headers, "X-RateLimit-Remaining", "RateLimit-Remaining"))
    reset_in = _retry_after(_header(headers, "Retry-After"), wall)
    if reset_in is None and (value := _header(headers, "RateLimit-Reset")) is not None:
        reset_in = _retry_after(value, wall)  # the IETF spelling is a delta in seconds
    if reset_in is None and (value := _int(_header(headers, "X-RateLimit-Reset"))) is not None:
        # Epoch seconds of the server's clock: measured against its Date header when there is one.
        server_now = wall
        if (date := _header(headers, "Date")) is not None:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                server_now = parsedate_to_datetime(date).timestamp()
        reset_in = max(0.0, value - server_now)
    if (combined := _header(headers, "RateLimit")) is not None:
        parts = dict(re.findall(r"\b(limit|remaining|reset|r|t)\s*=\s*(\d+)", combined))
        remaining = remaining if remaining is not None else _int(parts.get("remaining") or parts.get("r"))
        limit = limit if limit is not None else _int(parts.get("limit"))
        if reset_in is None and (parts.get("reset") or parts.get("t")):
            reset_in = float(parts.get("reset") or parts["t"])
    return RateState(limit=limit, remaining=remaining, reset_in=reset_in)


@dataclass
class _Bucket:
    remaining: int | None = None
    reset_at: float | None = None  # monotonic


@dataclass
class FitTrackeeRateLimiter:
    """Waits before a request whose route has no budget left, and after a 429, as FitTrackee's headers say.

    ``max_wait_s`` bounds a single wait (a longer one raises :class:`FitTrackeeRateLimitError`: an instance
    configured with a daily limit should fail the run, not hang it). ``waited_s`` and ``rate_limited``
    count what it did, for the asset's metadata.
    """

    max_wait_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    shutdown: threading.Event | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("strava_pipeline.fittrackee"))
    waited_s: float = 0.0
    waits: int = 0
    rate_limited: int = 0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _sleep(self, seconds: float, why: str) -> None:
        if seconds <= 0:
            return
        if seconds > self.max_wait_s:
            raise FitTrackeeRateLimitError(
                f"FitTrackee's rate limit asks to wait {seconds:.0f}s ({why}), longer than the "
                f"{self.max_wait_s:.0f}s we wait at most; run again later or raise the instance's API_RATE_LIMITS",
                status=429)
        self.logger.warning("FitTrackee rate limit: waiting %.1fs (%s)", seconds, why)
        self.waits += 1
        self.waited_s += seconds
        stop = self.shutdown or threading.Event()
        if stop.wait(seconds):
            raise FitTrackeeInterrupted("interrupted while waiting for FitTrackee's rate limit")

    def check_shutdown(self) -> None:
        """Refuse to start a request once the process is shutting down."""
        if self.shutdown is not None and self.shutdown.is_set():
            raise FitTrackeeInterrupted("shutting down: no new FitTrackee request")

    def before(self, bucket: str) -> None:
        """Wait until ``bucket`` has budget (no-op while nothing is known about it)."""
        self.check_shutdown()
        with self._lock:
            state = self._buckets.get(bucket)
            wait = 0.0
            if state is not None and state.remaining is not None and state.remaining <= 0 and state.reset_at:
                wait = state.reset_at - self.clock()
        if wait > 0:
            self._sleep(wait + SLACK_S, f"{bucket}: no request left in the window")
            with self._lock:
                self._buckets.pop(bucket, None)

    def after(self, bucket: str, status: int, headers: Mapping[str, str]) -> float | None:
        """Record an answer; for a 429, the seconds to wait before retrying (the caller calls :meth:`backoff`)."""
        state = parse_rate_headers(headers)
        now = self.clock()
        with self._lock:
            current = self._buckets.setdefault(bucket, _Bucket())
            if state.remaining is not None:
                current.remaining = state.remaining
            if state.reset_in is not None:
                current.reset_at = now + state.reset_in
            if status == 429:
                current.remaining = 0
                if current.reset_at is None or current.reset_at <= now:
                    current.reset_at = now + (state.reset_in if state.reset_in is not None else DEFAULT_WINDOW_S)
        if status != 429:
            return None
        self.rate_limited += 1
        return state.reset_in if state.reset_in is not None else DEFAULT_WINDOW_S

    def backoff(self, bucket: str, seconds: float) -> None:
        """Wait out a 429 before retrying its request."""
        self._sleep(seconds + SLACK_S, f"{bucket}: 429 Too Many Requests")
        with self._lock:
            self._buckets.pop(bucket, None)
