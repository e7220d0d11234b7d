"""The progress of a headless command counts what the rate limiter and ingestion really did, and its ETA
knows that a used-up window means waiting for the next one."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from strava_pipeline.cli.progress import CommandProgress, duration, requests_eta
from strava_pipeline.ingest import progress as ingest_progress
from strava_pipeline.strava.rate_limiter import RateLimiter, RateLimitSnapshot, WindowUsage

WINDOW = 900.0


def _snapshot(usage15: int, limit15: int | None, usage_day: int = 0, limit_day: int | None = 1000,
              *, into_window: float = 0.0) -> RateLimitSnapshot:
    taken = datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=into_window)
    window_end = datetime(2026, 1, 1, 12, 15, tzinfo=UTC)
    day_end = datetime(2026, 1, 2, tzinfo=UTC)
    windows = []
    for bucket, scale in (("overall", 2), ("read", 1)):
        windows.append(WindowUsage(bucket, "15min", limit15 and limit15 * scale, usage15, usage15, False, window_end))
        windows.append(WindowUsage(bucket, "daily", limit_day and limit_day * scale, usage_day, usage_day, False,
                                   day_end))
    return RateLimitSnapshot(taken_at=taken, window_seconds=WINDOW, windows=tuple(windows))


def test_eta_within_the_budget_is_the_sending_time() -> None:
    assert requests_eta(50, 10.0, _snapshot(10, 100)) == pytest.approx(5.0)


def test_eta_past_the_window_waits_for_each_reset() -> None:
    # 88 usable now (100 - margin 2 - 10 used), 98 per later window: 150 requests need this window and the next.
    eta = requests_eta(150, 10.0, _snapshot(10, 100, into_window=300))
    assert eta == pytest.approx(600.0)  # the current window resets in 10 minutes
    # 300 requests: two more resets after this one.
    assert requests_eta(300, 10.0, _snapshot(10, 100, into_window=300)) == pytest.approx(600 + 2 * WINDOW)


def test_eta_past_the_daily_budget_waits_for_the_next_day() -> None:
    eta = requests_eta(100, 10.0, _snapshot(0, 100, usage_day=990, limit_day=1000, into_window=0))
    assert eta == pytest.approx(12 * 3600)  # the day resets at midnight, 12 h after the snapshot


def test_eta_unknown_without_rate_or_limits() -> None:
    assert requests_eta(10, None, None) is None
    assert requests_eta(0, None, None) == 0.0


def test_counts_come_from_the_limiter_and_ingestion_events(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    headers = {"X-ReadRateLimit-Limit": "100,1000", "X-ReadRateLimit-Usage": "7,70"}
    now = [1_000_000.0 * WINDOW]
    # A fake clock: after the 429 the limiter waits for the next window, which passes at once.
    limiter = RateLimiter(window_seconds=WINDOW, clock=lambda: now[0],
                          sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    with CommandProgress(lines.append, interval=3600) as progress:
        progress.plan(2)
        progress.batch_started(1, "2024-01-01..2024-01-02", ["streams_raw"], [date(2024, 1, 1), date(2024, 1, 2)])
        progress.activities({date(2024, 1, 1): 2, date(2024, 1, 2): 1})
        ingest_progress.planned(["a-1", "b-2", "c-3"], reused=0, cached=0)
        for status in (200, 429, 200):  # three attempts from two threads, one answered 429
            thread = threading.Thread(target=lambda s=status: (limiter.acquire(), limiter.observe(headers, s)))
            thread.start()
            thread.join()
        ingest_progress.emit(ingest_progress.StreamsFetched("a-1"))
        ingest_progress.emit(ingest_progress.StreamsFetched("b-2", rejected=True))
        status = progress.status_line()
        progress.batch_finished("run-1", samples=1234)
    # Another command's limiter later is not counted: the observers are gone.
    limiter.acquire()
    assert "batch 1/2" in status and "streams 2/3 requested" in status and "requests 3" in status
    assert "429s 1" in status and "budget 15 min" in status and "/100" in status
    assert any(line.startswith("batch 1/2: 2024-01-01..2024-01-02 [streams_raw] done") and "3 requests" in line
               and "1,234 samples" in line for line in lines)
    assert lines[-1].startswith("done in ") and "3 activities, 1,234 samples, 3 requests (1 answered 429)" in lines[-1]
    assert progress.totals.requests == 3


def test_a_wait_is_announced_with_its_resume_time_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0 * WINDOW]  # the start of a window
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(window_seconds=WINDOW, clock=lambda: now[0], sleep=sleep, safety_margin=0)
    limiter.observe({"X-ReadRateLimit-Limit": "1,1000", "X-ReadRateLimit-Usage": "1,1"}, 200)
    lines: list[str] = []
    with CommandProgress(lines.append, interval=3600, clock=lambda: now[0]) as progress:
        limiter.acquire()  # the window is used up: waits for the next one
    waiting = [line for line in lines if line.startswith("waiting ")]
    assert len(waiting) == 1 and "read 15-minute window" in waiting[0] and "resuming at" in waiting[0]
    assert slept and progress.totals.waits == 1 and progress.totals.requests == 1
    assert progress.totals.waited_seconds == pytest.approx(slept[0], abs=0.01)
    assert "1 rate-limit wait (" in lines[-1]


def test_a_failing_command_still_prints_what_it_did() -> None:
    lines: list[str] = []
    with pytest.raises(RuntimeError), CommandProgress(lines.append) as progress:
        progress.plan(2)
        progress.batch_started(1, "2024-01-01..2024-01-31", ["activities_raw"])
        raise RuntimeError("the database went away")
    assert lines[-1].startswith("stopped in ")
    lines.clear()
    with pytest.raises(RuntimeError), CommandProgress(lines.append):
        raise RuntimeError("a corrupt archive")  # before any work: its own message is the whole story
    assert lines == []


def test_without_a_terminal_the_status_line_repeats_on_stdout(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from strava_pipeline.cli import progress as module

    monkeypatch.setattr(module, "PLAIN_INTERVAL_SECONDS", 0.05)
    seen = ""
    with CommandProgress() as progress:  # stdout is pytest's capture: not a terminal
        progress.plan(3)
        deadline = time.monotonic() + 10
        while "batch 0/3 |" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the output of the progress thread
            seen += capsys.readouterr().out
    seen += capsys.readouterr().out
    status = next(line for line in seen.splitlines() if line.startswith("batch 0/3 |"))
    assert "requests 0" in status and "ETA" in status and "so far" in status
    assert seen.splitlines()[-1].startswith("done in ")


@pytest.mark.parametrize(("seconds", "text"), [(0.84, "0.8s"), (42, "42s"), (185, "3m05s"), (3725, "1h02m")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
