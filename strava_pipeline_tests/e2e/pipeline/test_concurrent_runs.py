"""Two backfill processes in flight at once share Strava's budget instead of each spending all of it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg

from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline_tests.instance import dagster_home

SELECT = "activities_raw,activities,streams_raw,activity_streams"


def test_two_processes_together_stay_within_the_read_limit(make_pipeline, tmp_path: Path) -> None:
    config = SimulatorConfig(seed=21, start_date=date(2024, 1, 1), end_date=date(2024, 2, 29), activities=30,
                             read_limit=(6, 10_000), overall_limit=(12, 20_000), window_seconds=2)
    p = make_pipeline(config)
    env = dict(os.environ)
    env.update({
        "DAGSTER_HOME": str(dagster_home(tmp_path / "dagster_home")),
        "STRAVA_PIPELINE_DAGSTER_DIR": str(tmp_path / "dagster"),
        "STRAVA_PIPELINE_DAGSTER_LOGS_DIR": str(tmp_path / "dagster" / "logs"),
    })
    # Create the Dagster instance's tables once, so two first-time processes don't race on them.
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "STRAVA_PIPELINE_DAGSTER_DIR",
                                           "STRAVA_PIPELINE_DAGSTER_LOGS_DIR")})
    try:
        with dg.DagsterInstance.get():
            pass
    finally:
        for key in ("DAGSTER_HOME", "STRAVA_PIPELINE_DAGSTER_DIR", "STRAVA_PIPELINE_DAGSTER_LOGS_DIR"):
            os.environ.pop(key, None)

    def backfill(start: str, end: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "strava_pipeline.cli", "backfill", "--start", start, "--end", end,
             "--select", SELECT],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    january, february = backfill("2024-01-01", "2024-01-31"), backfill("2024-02-01", "2024-02-29")
    outputs = [proc.communicate(timeout=600)[0] for proc in (january, february)]
    assert [january.returncode, february.returncode] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    assert p.ids("activities") == sorted(p.sim.activity_ids())
    with_streams = sorted(s["id"] for s in p.sim.activities() if not s["manual"])
    assert [r[0] for r in p.query("SELECT activity_id FROM strava.streams_raw ORDER BY 1")] == with_streams
    statuses = [e.status for e in p.sim.request_log if e.path.startswith("/api/v3/")]
    assert len(statuses) > 6 * 3, "together they needed several windows' worth of requests"
    assert statuses.count(429) <= 1, "the shared limiter kept both processes inside one budget"
