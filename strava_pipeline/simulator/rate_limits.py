"""Strava's two rate-limit buckets (overall and read), each with a short and a daily window.

Windows are aligned to multiples of their length since the epoch: with the default 900 s that is
:00/:15/:30/:45 UTC and 00:00 UTC, as Strava documents. `window_seconds` shrinks the short window
for tests and the daily one by the same factor (96 short windows a day). A request over a limit is
still counted, so a 429 storm keeps eating the daily budget exactly as Strava's docs warn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    short_limit: int
    daily_limit: int
    short_used: int = 0
    daily_used: int = 0

    def limit_header(self) -> str:
        return f"{self.short_limit},{self.daily_limit}"

    def usage_header(self) -> str:
        return f"{self.short_used},{self.daily_used}"

    def exceeded(self) -> bool:
        return self.short_used > self.short_limit or self.daily_used > self.daily_limit


class RateLimiter:
    """Counts API requests and answers whether the latest one went over a limit."""

    def __init__(self, read: tuple[int, int], overall: tuple[int, int], window_seconds: int,
                 clock: Callable[[], float]) -> None:
        self.clock = clock
        self.window = max(1, int(window_seconds))
        self.read = Bucket(*read)
        self.overall = Bucket(*overall)
        self._lock = threading.Lock()
        self._short_id = self._daily_id = -1

    def _roll(self) -> None:
        now = self.clock()
        short_id = int(now // self.window)
        daily_id = int(now // (self.window * 96))
        if short_id != self._short_id:
            self._short_id = short_id
            self.read.short_used = self.overall.short_used = 0
        if daily_id != self._daily_id:
            self._daily_id = daily_id
            self.read.daily_used = self.overall.daily_used = 0

    def hit(self, *, read: bool = True) -> tuple[bool, list[tuple[str, str]]]:
        """Count one request; returns (allowed, headers as they stand after counting)."""
        with self._lock:
            self._roll()
            buckets = [self.overall, self.read] if read else [self.overall]
            for b in buckets:
                b.short_used += 1
                b.daily_used += 1
            allowed = not any(b.exceeded() for b in buckets)
            return allowed, self._headers()

    def peek(self) -> list[tuple[str, str]]:
        """Headers without counting (for responses to unauthenticated requests)."""
        with self._lock:
            self._roll()
            return self._headers()

    def _headers(self) -> list[tuple[str, str]]:
        return [
            ("X-Ratelimit-Limit", self.overall.limit_header()),
            ("X-Ratelimit-Usage", self.overall.usage_header()),
            ("X-Readratelimit-Limit", self.read.limit_header()),
            ("X-Readratelimit-Usage", self.read.usage_header()),
        ]

    def set_limits(self, read: tuple[int, int] | None = None, overall: tuple[int, int] | None = None) -> None:
        with self._lock:
            if read is not None:
                self.read.short_limit, self.read.daily_limit = read
            if overall is not None:
                self.overall.short_limit, self.overall.daily_limit = overall

    def reset(self) -> None:
        with self._lock:
            for b in (self.read, self.overall):
                b.short_used = b.daily_used = 0

    def seconds_to_next_window(self) -> float:
        now = self.clock()
        return self.window - (now % self.window)
