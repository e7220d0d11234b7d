"""SIGTERM and Ctrl-C end a backfill within seconds even while its fetch threads wait for a rate-limit window.

The limiter's wait may last until the next quarter hour (or the next day); an interrupt must not wait for it.
The process exits 143/130 with one line and no traceback, and a rerun lands everything (nothing left claimed:
no Dagster run left STARTED, no concurrency slot held).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline_tests.e2e.faults._truth import (
    END,
    START,
    STREAM_ASSETS,
    assert_matches_truth,
    backfill_process,
    month_config,
    wait_for,
)

MESSAGE = "interrupted: finished batches are kept; run the same command again to continue"
READ_LIMIT = 8  # the client keeps a margin of 2: it waits after 6 requests, far fewer than 20 activities


def _long_window(minimum_left: float = 300.0) -> int:
    """A window length (about 10 minutes) whose current window has at least ``minimum_left`` seconds to run.

    Windows are aligned to multiples of their length since the epoch; picking the length rather than sleeping
    keeps the test from starting just before a reset (the backfill would then simply continue).
    """
    length = 600
    while length - time.time() % length < minimum_left:
        length += 7
    return length


def _api_requests(p) -> int:
    return sum(1 for e in p.sim.request_log if e.path.startswith("/api/v3/"))


def _quiet(_: str) -> None:
    return None


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_while_waiting_for_the_rate_limit_window(
    make_pipeline, tmp_path: Path, signum: int, code: int
) -> None:
    config = month_config(
        seed=51, read_limit=(READ_LIMIT, 100_000), overall_limit=(1000, 100_000), window_seconds=_long_window()
    )
    p = make_pipeline(config)
    apply_migrations(p.database_url)
    log = tmp_path / "backfill.log"
    proc = backfill_process(START, END, STREAM_ASSETS, log=log)
    try:
        wait_for(lambda: _api_requests(p) >= READ_LIMIT - 2, 120, "the read limit reached", proc, log)
        # The limiter now waits for the window's reset, minutes away: nothing more may reach the simulator.
        proc.send_signal(signum)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 10 s after {signal.Signals(signum).name}:\n{log.read_text()}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    output = log.read_text()
    assert proc.returncode == code, output
    assert "Traceback" not in output, output
    assert output.strip().splitlines()[-1] == MESSAGE, output
    assert output.count(MESSAGE) == 1, output
    assert _api_requests(p) <= READ_LIMIT - 2, "requests were made after the limiter decided to wait"
    statuses = dict(p.query("SELECT run_id, status FROM runs"))
    assert "STARTED" not in statuses.values(), statuses

    p.sim.set_rate_limits(read=(10_000, 100_000))
    p.sim.reset_rate_usage()
    p.settings.rate_limit_state_file.unlink()  # the client's own count of the window would still say "wait"
    run_backfill(p.settings, START, END, select=STREAM_ASSETS, progress=_quiet)
    assert_matches_truth(p)
