"""What a headless command reports is what happened: its progress lines against the simulator's request
log, its runs in the instance under a named job with their range and assets, its streams log line against
the stream requests the simulator answered."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from strava_pipeline.cli.backfill import (
    BATCH_TAG,
    CODE_LOCATION,
    COMMAND_TAG,
    RANGE_TAG,
    run_backfill,
)
from strava_pipeline.defs._dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from strava_pipeline.defs.automation import SYNC_JOB_NAME
from strava_pipeline.simulator import SimulatorConfig

CLOSING = re.compile(r"^done in \S+: ([\d,]+) activities, ([\d,]+) samples, ([\d,]+) requests? \((\d+) answered 429\)"
                     r"(?:, (\d+) rate-limit waits?)?")
BATCH_DONE = re.compile(r"^batch (\d+)/(\d+): (.+?) done in \S+ \(run ([0-9a-f-]{36})\): (\d+) requests?")


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def test_plain_progress_reports_the_requests_the_simulator_saw(make_pipeline, tmp_path: Path, monkeypatch) -> None:
    # A budget of 12 reads per 3 s window (the limiter waits several times) and two stream requests that
    # fail with 500 and are retried: every attempt is a request the simulator counts, and so must we.
    config = SimulatorConfig(seed=11, start_date=date(2024, 1, 1), end_date=date(2024, 3, 31), activities=30,
                             read_limit=(12, 10_000), overall_limit=(24, 20_000), window_seconds=3,
                             faults="streams:500=#2")
    p = make_pipeline(config)
    # Copied from Strava's API docs with the path: accepted, and never doubled.
    monkeypatch.setenv("STRAVA_BASE_URL", f"{p.sim.base_url}/api/v3/")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    p.sim.clear_request_log()

    proc = subprocess.run(
        [sys.executable, "-m", "strava_pipeline.cli", "backfill", "--start", "2024-01-01", "--end", "2024-03-31"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    api = [e for e in p.sim.request_log if e.path.startswith("/api/v3/")]
    assert not [e for e in api if e.path.startswith("/api/v3/api/")]
    assert sum(e.status == 500 for e in api) == 2

    closing = CLOSING.match(lines[-1])
    assert closing, lines[-1]
    activities, samples, requests, rate_limited = (_int(g) for g in closing.groups()[:4])
    assert requests == len(api)
    assert rate_limited == sum(e.status == 429 for e in api)
    assert activities == p.query("SELECT count(*) FROM strava.activities")[0][0] == len(p.sim.activities())
    assert samples == p.query("SELECT count(*) FROM strava.activity_streams")[0][0] > 0
    assert closing.group(5) and int(closing.group(5)) >= 1, "the budget made the limiter wait"
    waits = [line for line in lines if line.startswith("waiting ")]
    assert waits and all("read 15-minute window" in w and "resuming at" in w for w in waits)

    done = [m for m in map(BATCH_DONE.match, lines) if m]
    assert [(int(m.group(1)), int(m.group(2))) for m in done] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sum(int(m.group(5)) for m in done) <= requests
    assert int(done[2].group(5)) > 0, "the streams batch made requests"

    # The runs in the instance: the code location's job, the command, the range and batch in the tags.
    data = p.settings.data_dir / "dagster"
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_DIR", str(data))
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_LOGS_DIR", str(data / "logs"))
    with dg.DagsterInstance.from_config(str(data)) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={COMMAND_TAG: "backfill"}),
                                           ascending=True)
        runs = [r.dagster_run for r in records]
        assert [r.run_id for r in runs] == [m.group(4) for m in done]
        for k, run in enumerate(runs, start=1):
            assert run.job_name == SYNC_JOB_NAME != "__ephemeral_asset_job__"
            assert run.tags[RANGE_TAG] == "2024-01-01..2024-03-31" and run.tags[BATCH_TAG] == f"{k}/4"
            assert run.asset_selection, "the runs list shows which assets the run materialised"
            origin = run.remote_job_origin
            assert origin is not None and origin.job_name == SYNC_JOB_NAME
            assert origin.repository_origin.code_location_origin.location_name == CODE_LOCATION
        partitioned = [r for r in runs if ASSET_PARTITION_RANGE_START_TAG in r.tags]
        assert len(partitioned) == 2
        assert all((r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
                   == ("2024-01-01", "2024-03-31") for r in partitioned)
        assert {k.to_user_string() for k in partitioned[1].asset_selection} >= {"streams_raw", "activity_streams"}


STREAM_LINE = re.compile(r"streams for (\d+) activities: (\d+) requested \((\d+) by this run, (\d+) ahead by the "
                         r"backfill\), (\d+) reused, (\d+) from the landing cache")


def test_the_streams_log_line_counts_the_requests_fetched_ahead(make_pipeline, dagster_instance) -> None:
    """The backfill's prefetcher requests the coming quarters while earlier ones load; the run then finds
    them in the landing cache. They were requested by this backfill, not found: once a run said
    "0 requested ... 26 from the landing cache" for 26 requests the simulator had answered."""
    # A seed of its own: the process's table of stream requests remembers every activity fetched (by id
    # and recording) and its prefetcher never fetches one again, so another test's athlete must differ.
    p = make_pipeline(SimulatorConfig(seed=23, start_date=date(2024, 1, 1), end_date=date(2024, 9, 30),
                                      activities=45, latency_ms=20))
    p.sim.clear_request_log()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 9, 30),
                 select=["activities_raw", "activities", "streams_raw", "activity_streams"],
                 instance=dagster_instance, progress=lambda _: None)
    stream_requests = [e for e in p.sim.request_log if e.path.endswith("/streams")]
    found = []
    for record in dagster_instance.get_run_records():
        for entry in dagster_instance.all_logs(record.dagster_run.run_id):
            match = STREAM_LINE.search(entry.message or "")
            if match:
                found.append([int(g) for g in match.groups()])
    assert len(found) == 3  # one per quarter
    assert sum(f[1] for f in found) == len(stream_requests) > 0
    assert all(f[1] == f[2] + f[3] for f in found)
    assert sum(f[3] for f in found) > 0, "the prefetcher requested some"
    assert sum(f[5] for f in found) == 0, "nothing was in the landing cache before this backfill"


@pytest.fixture(autouse=True)
def _no_user_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
