"""Configuration of one simulator instance.

Everything that makes two simulator runs differ lives here, so a test or a benchmark can rebuild
exactly the same athlete, the same limits and the same faults from one value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date


@dataclass
class SimulatorConfig:
    """Knobs of the simulated Strava.

    `clock` returns "now" as epoch seconds; inject a `ManualClock` to drive token expiry and
    rate-limit windows deterministically from a test. `activity_seconds` forces every generated
    activity to that elapsed time (benchmarks want uniform one-hour activities).
    """

    seed: int = 1
    start_date: date = date(2024, 1, 1)
    end_date: date | None = None  # None = today (UTC)
    activities: int = 200
    latency_ms: float = 0
    read_limit: tuple[int, int] = (100, 1000)
    overall_limit: tuple[int, int] = (200, 2000)
    window_seconds: int = 900
    faults: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    token_ttl_seconds: int = 21600
    clock: Callable[[], float] | None = None
    activity_seconds: int | None = None
    slow_seconds_default: float = 10.0
    stream_cache_mb: int = 256  # serialised streams kept in memory (LRU)

    def now(self) -> float:
        """The current time as the simulator sees it (epoch seconds)."""
        return self.clock() if self.clock is not None else time.time()
