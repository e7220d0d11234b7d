"""Progress of a headless command (``backfill``, ``sync``, ``import``, ``demo``): live on a terminal, plain
lines otherwise (cron, CI), and closing totals either way.

How progress reaches the command: the command runs Dagster in its own process (``dg.materialize``-style
in-process runs, see ``cli.backfill``), so plain in-process observers see everything as it happens:

* the rate limiter's observers (``strava.rate_limiter.add_observer``): every request let through (one per
  attempt, retries included, the prefetcher's too), every answer's status (429s), every wait for a window
  (its resume time, for the countdown), and the budget used after each;
* ingestion's events (``ingest.progress``): the stream requests each batch plan needs, and each one made;
* the backfill itself: batch k of n, and each finished run's rows (activities, samples).

Dagster's event log was the alternative, but it only records a step when it ends (one event for a
quarter of streams), and the prefetcher's requests happen outside any run; the limiter's shared state file
counts other processes' requests too and resets every window, so it is right for "of the budget" (which
the observed snapshots carry) but not for what this command did.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType

from strava_pipeline.ingest import progress as ingest_progress
from strava_pipeline.strava.rate_limiter import LimiterEvent, RateLimitSnapshot, add_observer

#: Seconds between two status lines when the output is not a terminal (a cron log gets two a minute).
PLAIN_INTERVAL_SECONDS = 30.0
#: Requests whose timing gives the current request rate (for the ETA).
_RATE_SAMPLE = 50


@dataclass
class Totals:
    """What a command did, for its closing line."""

    activities: int = 0
    samples: int = 0
    requests: int = 0
    rate_limited: int = 0
    waits: int = 0
    waited_seconds: float = 0.0
    wall_seconds: float = 0.0


@dataclass
class _Batch:
    index: int
    label: str
    assets: Sequence[str]
    days: Sequence[date]
    started: float
    requests_at_start: int


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``, ``0.8s``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _budget(snapshot: RateLimitSnapshot, bucket: str, window: str, margin: int) -> tuple[int, int | None, float]:
    """(usable now, usable per window or None if the limit is unknown, seconds to the window's reset)."""
    w = snapshot.get(bucket, window)
    reset_in = max(0.0, (w.resets_at - snapshot.taken_at).total_seconds())
    if w.limit is None:
        return (0 if w.exhausted else 1 << 30), None, reset_in
    per = max(1, w.limit - margin)
    return (0 if w.exhausted else max(0, per - w.usage)), per, reset_in


def requests_eta(remaining: int, rate: float | None, snapshot: RateLimitSnapshot | None, margin: int = 2,
                 ) -> float | None:
    """Seconds until ``remaining`` requests are made at ``rate`` per second inside the budget ``snapshot``
    shows (the limiter waits for the next window, or day, once one is used up); None when nothing is known.

    The window that binds is the tighter of the read and overall buckets; time spent between requests
    (loading, writing) is not included.
    """
    if remaining <= 0:
        return 0.0
    sending = remaining / rate if rate else 0.0
    if snapshot is None:
        return sending if rate else None
    worst = 0.0
    known = bool(rate)
    for window in ("15min", "daily"):
        available, per, reset_in = min(
            (_budget(snapshot, bucket, window, margin) for bucket in ("read", "overall")),
            key=lambda b: (b[1] is None, b[0]),
        )
        if per is None:
            continue
        known = True
        if remaining > available:
            length = snapshot.window_seconds * (1 if window == "15min" else 96)
            windows = math.ceil((remaining - available) / per)
            worst = max(worst, reset_in + (windows - 1) * length)
    return max(worst, sending) if known else None


class CommandProgress:
    """Counts of one command, fed by the observers above, shown live or as plain lines.

    ``out``: where lines go; None means stdout: a live display when it is a terminal (``rich``), else plain
    lines with a status line every ``interval`` seconds (default ``PLAIN_INTERVAL_SECONDS``). A callable gets
    the event lines (a batch done, a wait starting, the totals), and status lines only if ``interval`` is
    given. Use as a context manager: it listens while the block runs, then reports the totals (also when
    the command fails or is interrupted: what was done stays done).
    """

    def __init__(self, out: Callable[[str], None] | None = None, *, interval: float | None = None,
                 margin: int = 2, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._margin = margin
        console = None
        if out is None:
            from rich.console import Console

            console = Console(file=sys.stdout)
            if not console.is_terminal:
                console, out = None, _print_flushed
                interval = PLAIN_INTERVAL_SECONDS if interval is None else interval
        self._interval = interval
        self.totals = Totals()
        self._started = clock()
        self._batches_total = 0
        self._batch: _Batch | None = None
        self._batches_done = 0
        self._batch_seconds: list[float] = []
        self._activities_by_day: dict[date, int] = {}
        self._days_done: set[date] = set()
        self._planned: set[str] = set()
        self._fetched: set[str] = set()
        self._request_times: deque[float] = deque(maxlen=_RATE_SAMPLE)
        self._snapshot: RateLimitSnapshot | None = None
        self._waiting: tuple[float, str, str] | None = None  # (resume_at, bucket, window)
        self._wait_started: dict[float, float] = {}
        self._stop = threading.Event()
        self._undo: list[Callable[[], None]] = []
        self._ticker: threading.Thread | None = None
        self._live = None
        if console is not None:
            from rich.live import Live

            self._live = Live(console=console, get_renderable=self._render, refresh_per_second=4, transient=True)
            out = console.print
        assert out is not None
        self._out = out

    # -- life cycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> CommandProgress:
        self._undo.append(add_observer(self._on_limiter))
        watch = ingest_progress.watching(self._on_ingest)
        watch.__enter__()
        self._undo.append(lambda: watch.__exit__(None, None, None))
        if self._live is not None:
            self._live.start()
        elif self._interval is not None:
            self._ticker = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                 ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
        if self._live is not None:
            self._live.stop()
        for undo in reversed(self._undo):
            undo()
        self._close_waits(self._clock())
        self.totals.wall_seconds = self._clock() - self._started
        self.totals.activities = sum(self._activities_by_day.values())
        if kind is None or self._batches_done or self._batch is not None or self.totals.requests:
            self._out(self.closing_line(finished=kind is None))  # a failure before any work: its message says all

    def _tick(self) -> None:
        assert self._interval is not None
        while not self._stop.wait(self._interval):
            self._out(self.status_line())

    # -- what the backfill reports --------------------------------------------------------------------------

    def plan(self, batches: int) -> None:
        """The command will run ``batches`` Dagster runs."""
        with self._lock:
            self._batches_total = batches

    def note(self, line: str) -> None:
        """A line of the command's own (what an import staged, a killed run freed)."""
        self._out(line)

    def activities(self, by_day: Mapping[date, int]) -> None:
        """Activities landed on these days (the total is their sum over the command's days)."""
        with self._lock:
            self._activities_by_day.update(by_day)

    def batch_started(self, index: int, label: str, assets: Sequence[str], days: Sequence[date] = ()) -> None:
        """Run ``index`` (1-based) of the plan starts."""
        with self._lock:  # shown by the live display and the status lines; a line comes when it is done
            self._batch = _Batch(index, label, list(assets), list(days), self._clock(), self.totals.requests)

    def batch_finished(self, run_id: str, *, samples: int = 0, final_for_days: bool = True) -> None:
        """The current run succeeded; ``samples``: stream rows it wrote; ``final_for_days``: nothing later in
        the command touches its days again, so their activities count as done."""
        with self._lock:
            batch = self._batch
            assert batch is not None, "batch_finished without batch_started"
            seconds = self._clock() - batch.started
            self._batch_seconds.append(seconds)
            self._batches_done += 1
            self.totals.samples += samples
            if final_for_days:
                self._days_done.update(batch.days)
            requests = self.totals.requests - batch.requests_at_start
            self._batch = None
        extra = f", {samples:,} samples" if samples else ""
        self._out(f"batch {batch.index}/{self._batches_total}: {batch.label} [{', '.join(batch.assets)}] done in "
                  f"{duration(seconds)} (run {run_id}): {_count(requests, 'request')}{extra}")

    # -- observers (any thread) -----------------------------------------------------------------------------

    def _on_limiter(self, event: LimiterEvent) -> None:
        now = self._clock()
        line = None
        with self._lock:
            if event.snapshot is not None:
                self._snapshot = event.snapshot
            if event.kind == "request":
                self.totals.requests += 1
                self._request_times.append(now)
                self._close_waits(now)
            elif event.kind == "response" and event.status == 429:
                self.totals.rate_limited += 1
            elif event.kind == "wait" and event.resume_at is not None:
                self._waiting = (event.resume_at, event.bucket or "?", event.window or "?")
                if event.resume_at not in self._wait_started:
                    self._wait_started[event.resume_at] = now
                    self.totals.waits += 1
                    line = self._waiting_text(now, starting=True)
        if line is not None and self._live is None:
            self._out(line)

    def _on_ingest(self, event: ingest_progress.Event) -> None:
        with self._lock:
            if isinstance(event, ingest_progress.StreamsPlanned):
                self._planned.update(event.keys)
            else:
                self._planned.add(event.key)
                self._fetched.add(event.key)

    def _close_waits(self, now: float) -> None:
        """Waits end when a request gets through (or their reset passes): add their length to the total."""
        for resume_at, started in list(self._wait_started.items()):
            self.totals.waited_seconds += max(0.0, min(now, resume_at) - started)
            del self._wait_started[resume_at]
        self._waiting = None

    # -- views ----------------------------------------------------------------------------------------------

    def eta(self) -> float | None:
        """Seconds left: the stream requests still to make within the budget, or the batches still to run at
        the pace of those done, whichever is longer; None before anything is known."""
        with self._lock:
            remaining = len(self._planned - self._fetched)
            times = list(self._request_times)
            rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else None
            by_requests = requests_eta(remaining, rate, self._snapshot, self._margin)
            by_batches = None
            if self._batch_seconds and self._batches_total:
                left = self._batches_total - self._batches_done
                by_batches = sum(self._batch_seconds) / len(self._batch_seconds) * left
        known = [e for e in (by_requests, by_batches) if e is not None]
        return max(known) if known else None

    def _budget_text(self) -> str:
        snap = self._snapshot
        if snap is None:
            return ""
        parts = []
        for window, name in (("15min", "15 min"), ("daily", "day")):
            w = snap.get("read", window)
            parts.append(f"{name} {w.usage}/{w.limit if w.limit is not None else '?'}")
        return f" (budget {', '.join(parts)})"

    def _waiting_text(self, now: float, *, starting: bool = False) -> str:
        assert self._waiting is not None
        resume_at, bucket, window = self._waiting
        name = "15-minute" if window == "15min" else "daily"
        at = datetime.fromtimestamp(resume_at, UTC).strftime("%H:%M:%S")
        left = duration(max(0.0, resume_at - now))
        used = self._budget_text()
        if starting:
            return f"waiting {left} for Strava's {bucket} {name} window{used}: resuming at {at} UTC"
        return f"waiting for Strava's {bucket} {name} window: resuming in {left} ({at} UTC)"

    def _counts(self) -> dict[str, object]:
        with self._lock:
            known = sum(self._activities_by_day.values())
            done = sum(n for d, n in self._activities_by_day.items() if d in self._days_done)
            return {
                "batch": (self._batch.index if self._batch else self._batches_done, self._batches_total),
                "activities": (min(done, known), known),
                "streams": (len(self._fetched), len(self._planned)),
                "requests": self.totals.requests,
                "rate_limited": self.totals.rate_limited,
                "budget": self._budget_text(),
                "waiting": self._waiting_text(self._clock()) if self._waiting else None,
            }

    def status_line(self) -> str:
        """One line with every count: what the plain output prints every ``interval`` seconds."""
        c = self._counts()
        (k, n), (done, known), (fetched, planned) = c["batch"], c["activities"], c["streams"]  # type: ignore[misc]
        eta = self.eta()
        line = (f"batch {k}/{n} | activities {done}/{known} | streams {fetched}/{planned} requested | "
                f"requests {c['requests']}{c['budget']} | 429s {c['rate_limited']} | "
                f"ETA {duration(eta) if eta is not None else '?'} | {duration(self._clock() - self._started)} so far")
        return f"{line} | {c['waiting']}" if c["waiting"] else line

    def closing_line(self, *, finished: bool = True) -> str:
        t = self.totals
        waits = f", {_count(t.waits, 'rate-limit wait')} ({duration(t.waited_seconds)})" if t.waits else ""
        what = "done" if finished else "stopped"
        return (f"{what} in {duration(t.wall_seconds)}: {t.activities:,} activities, {t.samples:,} samples, "
                f"{_count(t.requests, 'request')} ({t.rate_limited} answered 429){waits}")

    def _render(self):  # type: ignore[no-untyped-def]  # a rich renderable
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        c = self._counts()
        (k, n), (done, known), (fetched, planned) = c["batch"], c["activities"], c["streams"]  # type: ignore[misc]
        eta = self.eta()
        grid = Table.grid(padding=(0, 1))
        with self._lock:
            label = f"{self._batch.label} [{', '.join(self._batch.assets)}]" if self._batch else ""
        grid.add_row("batch", f"{k}/{n}", label)
        grid.add_row("activities", ProgressBar(total=max(known, 1), completed=done, width=30), f"{done}/{known}")
        grid.add_row("streams", ProgressBar(total=max(planned, 1), completed=fetched, width=30),
                     f"{fetched}/{planned} requested")
        grid.add_row("requests", str(c["requests"]), f"{c['rate_limited']} answered 429{c['budget']}")
        grid.add_row("ETA", duration(eta) if eta is not None else "?",
                     f"{duration(self._clock() - self._started)} so far")
        if c["waiting"]:
            grid.add_row("waiting", "", str(c["waiting"]))
        return grid


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _print_flushed(line: str) -> None:
    print(line, flush=True)


__all__ = ["PLAIN_INTERVAL_SECONDS", "CommandProgress", "Totals", "duration", "requests_eta"]
