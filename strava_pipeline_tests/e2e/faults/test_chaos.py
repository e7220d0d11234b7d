"""Chaos: a full backfill of every asset, SIGKILLed again and again at random moments, then run to the end.

The kills include one while stream requests are in flight and one between the two stores' writes
(PostgreSQL committed, Parquet not yet switched). After the last, uninterrupted run: every table is the
same in both stores and equal to the simulator's ground truth, no stream was fetched twice except those
in flight at a kill, and no run hung (each later run finishes on its own).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from strava_pipeline.defs.io_manager import VERSIONS_TABLE
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.storage.partition_switch import PartitionSwitcher
from strava_pipeline_tests.e2e.faults._truth import assert_matches_truth, wait_for

START, END = date(2024, 1, 1), date(2024, 2, 29)
PARTITIONED = ["activities_raw", "activities", "streams_raw", "activity_streams", "activity_metrics"]
WHOLE = ["daily_training_load", "weekly_summary"]
#: A stream request that ended this shortly before a kill may not have reached the landing cache yet.
IN_FLIGHT_MARGIN_S = 1.0
RUN_TIMEOUT_S = 300

#: A backfill that SIGKILLs itself right after its Nth commit, before that switch renames its Parquet files.
_DIE_BETWEEN_THE_STORES = """
import os, signal, sys
from strava_pipeline.storage import partition_switch

commits = []
original = partition_switch.PartitionSwitcher._roll_forward

def roll_forward(self, journal, keys=None):
    if keys is None:  # a writer's own switch (recovery passes its keys)
        commits.append(journal.switch_id)
        if len(commits) == int(os.environ["CHAOS_KILL_AT_COMMIT"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return original(self, journal, keys)

partition_switch.PartitionSwitcher._roll_forward = roll_forward
from strava_pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _backfill(tmp_path: Path, attempt: int, *, kill_at_commit: int | None = None) -> tuple[subprocess.Popen, Path]:
    args = ["backfill", "--start", START.isoformat(), "--end", END.isoformat()]
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    if kill_at_commit is None:
        command = [sys.executable, "-m", "strava_pipeline.cli", *args]
    else:
        command = [sys.executable, "-c", _DIE_BETWEEN_THE_STORES, *args]
        env["CHAOS_KILL_AT_COMMIT"] = str(kill_at_commit)
    log = tmp_path / f"attempt-{attempt}.log"
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT), log


def _stream_requests(p) -> list:
    return [e for e in p.sim.request_log if e.path.endswith("/streams") and e.status == 200]


@pytest.mark.timeout(1500)
def test_random_sigkills_lose_and_duplicate_nothing(make_pipeline, tmp_path: Path) -> None:
    rng = random.Random(20261201)
    p = make_pipeline(SimulatorConfig(seed=99, start_date=START, end_date=END, activities=36, latency_ms=40,
                                          read_limit=(10_000, 100_000), overall_limit=(20_000, 200_000)))
    apply_migrations(p.database_url)
    kills: list[tuple[str, float]] = []  # (how, when)
    in_flight: set[str] = set()

    attempts: list[tuple[str, float, float]] = []  # (plan, started, ended): for the failure message
    plans = ["streams_in_flight", "between_the_stores", "random", "random", "between_the_stores", "random"]
    for attempt, plan in enumerate(plans):
        started = time.time()
        if plan == "between_the_stores":
            proc, log = _backfill(tmp_path, attempt, kill_at_commit=rng.randint(2, 12))
            proc.wait(RUN_TIMEOUT_S)
            if proc.returncode == -signal.SIGKILL:
                kills.append((plan, time.time()))
        else:
            before = len(_stream_requests(p))
            proc, log = _backfill(tmp_path, attempt)
            if plan == "streams_in_flight":
                wait_for(lambda n=before: len(_stream_requests(p)) > n + 2, RUN_TIMEOUT_S, "stream requests", proc, log)
            else:
                deadline = time.monotonic() + rng.uniform(1.0, 12.0)
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append((plan, time.time()))
            proc.wait(RUN_TIMEOUT_S)
        # A stream whose response ended just before the kill may be asked for again: count those apart.
        if kills and kills[-1][1] > time.time() - 5:
            p.sim.wait_idle()  # requests the killed process had sent are logged once their handler returns
            kill_time = kills[-1][1]
            in_flight |= {e.path for e in _stream_requests(p) if e.time + e.duration > kill_time - IN_FLIGHT_MARGIN_S}
        attempts.append((plan, started, time.time()))
        assert proc.returncode in (0, -signal.SIGKILL), log.read_text()[-4000:]

    proc, log = _backfill(tmp_path, len(plans))
    assert proc.wait(RUN_TIMEOUT_S) == 0, log.read_text()[-4000:]  # no hang: it finishes on its own

    assert_matches_truth(p)
    switcher = PartitionSwitcher(ParquetStore(p.settings.parquet_dir), p.database_url, versions_table=VERSIONS_TABLE)
    days = [date.fromordinal(o) for o in range(START.toordinal(), END.toordinal() + 1)]
    disagreeing = {a: switcher.compare(a, f"strava.{a}", "activity_date", days) for a in PARTITIONED}
    disagreeing |= {a: switcher.compare(a, f"strava.{a}", None, None) for a in WHOLE}
    assert {a: d for a, d in disagreeing.items() if d} == {}
    left = [f for f in p.settings.parquet_dir.rglob("*") if f.is_file() and f.suffix != ".parquet"]
    assert left == [], "no journal, staged or temporary file is left"

    fetched = Counter(e.path for e in _stream_requests(p))
    twice = {path for path, n in fetched.items() if n > 1}
    truth = {s["id"] for s in p.sim.activities() if not s["manual"]}
    lost = truth - {i for (i,) in p.query("SELECT activity_id FROM strava.streams_raw")}
    duplicated = p.query("SELECT count(*) - count(DISTINCT activity_id) FROM strava.activities")[0][0]
    print(f"chaos: kills={len(kills)} ({Counter(k for k, _ in kills)}) lost={len(lost)} duplicated={duplicated} "
          f"refetched={len(twice)} of which in flight at a kill={len(twice & in_flight)}")
    assert len(kills) >= 4, f"too few runs were killed before finishing: {kills}"
    assert not lost and duplicated == 0
    timeline = {path: [round(e.time, 2) for e in _stream_requests(p) if e.path == path] for path in twice - in_flight}
    runs = [(plan, round(a, 2), round(b, 2)) for plan, a, b in attempts]
    assert twice <= in_flight, f"streams fetched twice that were not in flight at a kill: {timeline}; runs {runs}"
