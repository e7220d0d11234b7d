"""A hand-driven clock, so tests advance time instead of sleeping.

Token expiry and rate-limit windows both read the simulator's clock; with a `ManualClock` a test
can jump across a 15-minute boundary or past `expires_at` in microseconds and without flakiness.
"""

from __future__ import annotations

import threading
import time


class ManualClock:
    """A callable returning epoch seconds that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self._now = float(start if start is not None else time.time())
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds`; returns the new time."""
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, epoch_seconds: float) -> None:
        """Jump to an absolute time."""
        with self._lock:
            self._now = float(epoch_seconds)
