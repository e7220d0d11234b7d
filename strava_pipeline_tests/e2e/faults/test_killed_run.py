"""A backfill killed with SIGKILL while its ``streams_raw`` step holds the Strava API pool's only slot: the
next command must notice the dead run, fail it and free the slot, instead of waiting for it forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from strava_pipeline.defs.resources import STRAVA_API_POOL
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline_tests.e2e.faults._truth import END, START, STREAM_ASSETS, month_config, wait_for
from strava_pipeline_tests.instance import dagster_home


def _backfill(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "strava_pipeline.cli", "backfill", "--start", START.isoformat(),
               "--end", END.isoformat(), "--select", ",".join(STREAM_ASSETS)]
    handle = open(log, "wb")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _streams_step_holding_the_slot(instance: dg.DagsterInstance) -> str | None:
    info = instance.event_log_storage.get_concurrency_info(STRAVA_API_POOL)
    return next((s.run_id for s in info.claimed_slots if "streams_raw" in s.step_key), None)


def test_killed_run_is_failed_and_its_slot_freed(make_pipeline, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    p = make_pipeline(month_config(seed=47, latency_ms=300))
    apply_migrations(p.database_url)
    home = dagster_home(tmp_path / "dagster_home")
    # What the CLI exports before opening the instance, so the test opens the very same one.
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_DIR", str(tmp_path / "dagster"))
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_LOGS_DIR", str(tmp_path / "dagster" / "logs"))
    env = dict(os.environ)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        first_log = tmp_path / "first.log"
        proc = _backfill(env, first_log)
        try:
            killed_run = wait_for(
                lambda: (any(e.path.endswith("/streams") for e in p.sim.request_log)
                         and _streams_step_holding_the_slot(instance)),
                180, "streams_raw to hold the API slot and request streams", proc, first_log)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        run = instance.get_run_by_id(killed_run)
        assert run is not None and run.status == dg.DagsterRunStatus.STARTED, "the kill left the run STARTED"

        second_log = tmp_path / "second.log"
        rerun = _backfill(env, second_log)
        try:
            rerun.wait(timeout=120)
        except subprocess.TimeoutExpired:
            rerun.kill()
            rerun.wait(30)
            pytest.fail("the rerun waited for the dead run's slot:\n" + second_log.read_text()[-3000:])
        output = second_log.read_text()
        assert rerun.returncode == 0, output[-3000:]
        assert f"run {killed_run} (started " in output and "was killed: marked failed and its Strava API slot freed" \
            in output, output[-3000:]
        assert p.ids("activities") == sorted(p.sim.activity_ids())
        streamed = {i for (i,) in p.query("SELECT activity_id FROM strava.streams_raw WHERE status = 'ok'")}
        assert streamed == {s["id"] for s in p.sim.activities() if not s["manual"]}

        run = instance.get_run_by_id(killed_run)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(STRAVA_API_POOL).claimed_slots
