"""Compare what landed (PostgreSQL and Parquet) with the simulator's ground truth; run backfills as processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.storage.parquet_store import ParquetStore

SUMMARY_ASSETS = ["activities_raw", "activities"]
STREAM_ASSETS = ["activities_raw", "activities", "streams_raw", "activity_streams"]
START, END = date(2024, 1, 1), date(2024, 1, 31)


def month_config(seed: int, activities: int = 20, **kwargs) -> SimulatorConfig:
    return SimulatorConfig(seed=seed, start_date=START, end_date=END, activities=activities, **kwargs)


def assert_matches_truth(p, *, streams: bool = True) -> None:
    """Every simulated activity exactly once, as served, in both stores; streams complete and not doubled."""
    truth = {s["id"]: s for s in p.sim.activities()}
    rows = p.query("SELECT activity_id, name FROM strava.activities")
    assert len(rows) == len({r[0] for r in rows}), "duplicate activities"
    assert dict(rows) == {i: s["name"] for i, s in truth.items()}
    raw = p.query("SELECT activity_id, payload->>'name' FROM strava.activities_raw")
    assert len(raw) == len(truth) and dict(raw) == {i: s["name"] for i, s in truth.items()}
    parquet = ParquetStore(p.settings.parquet_dir)
    pq_ids = parquet.read("activities").get_column("activity_id").to_list()
    assert sorted(pq_ids) == sorted(truth), "Parquet activities differ from the truth"
    assert sorted(parquet.read("activities_raw").get_column("activity_id").to_list()) == sorted(truth)
    if not streams:
        return
    with_streams = {i for i, s in truth.items() if not s["manual"]}
    status = p.query("SELECT activity_id, status FROM strava.streams_raw")
    assert len(status) == len({r[0] for r in status}), "duplicate streams_raw rows"
    assert dict(status) == dict.fromkeys(with_streams, "ok")
    lengths = dict(p.query(
        "SELECT activity_id, json_array_length(payload->'time'->'data') FROM strava.streams_raw"))
    samples = dict(p.query("SELECT activity_id, count(*) FROM strava.activity_streams GROUP BY 1"))
    assert samples == lengths, "typed samples differ from the raw stream lengths"
    doubled = p.query("SELECT count(*) FROM (SELECT 1 FROM strava.activity_streams "
                      "GROUP BY activity_id, sample_index HAVING count(*) > 1) d")[0][0]
    assert doubled == 0, "duplicate stream samples"
    typed = parquet.read("activity_streams")
    assert typed.height == sum(samples.values())
    assert typed.select(["activity_id", "sample_index"]).is_unique().all()


def backfill_process(start: date, end: date, select: list[str], *, log: Path,
                     env: dict[str, str] | None = None) -> subprocess.Popen:
    """``strava-pipeline backfill`` in a child process, with the test's environment (simulator, database)."""
    command = [sys.executable, "-m", "strava_pipeline.cli", "backfill", "--start", start.isoformat(),
               "--end", end.isoformat(), "--select", ",".join(select)]
    child_env = {**os.environ, **(env or {})}
    child_env.pop("DAGSTER_HOME", None)
    handle = open(log, "wb")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(command, env=child_env, stdout=handle, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], object], timeout: float, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> object:
    """Poll ``condition`` every 20 ms until truthy; fail naming ``what`` (with the child's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}:\n"
                                 f"{log.read_text() if log else ''}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
