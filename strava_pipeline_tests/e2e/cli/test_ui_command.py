"""``strava-pipeline ui`` starts without deprecation or backfill-policy warnings, serves the runs a CLI
backfill recorded as runs of the code location's job (what the Overview timeline draws), and stops
cleanly, children and all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from strava_pipeline.cli.backfill import COMMAND_TAG

RUNS = """
query($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { id pipelineName repositoryOrigin { repositoryName repositoryLocationName } } }
  }
}"""
# The Overview timeline's own queries (dagster-webserver's useRunsForTimeline.tsx) read the same fields: it
# drops every run whose `repositoryOrigin` is null, and puts the others in the row of their job.
WORKSPACE = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name pipelines { name } } }
          ... on PythonError { message }
        }
      }
    }
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate, deadline_s: float, what: str, proc: subprocess.Popen):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the ui command exited ({proc.returncode}) while waiting for {what}"
        value = predicate()
        if value:
            return value
        time.sleep(0.5)  # polling another process's server
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_ui_starts_quietly_shows_cli_runs_and_stops_cleanly(make_pipeline, tmp_path: Path, monkeypatch,
                                                            stop: str) -> None:
    """``stop``: SIGTERM to the command alone (systemd, a test), or SIGINT to its whole process group, as a
    terminal's Ctrl-C sends it."""
    make_pipeline(STRAVA_SENSOR_INTERVAL_SECONDS="86400")  # the simulator, the database, the environment
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    cli = [sys.executable, "-m", "strava_pipeline.cli"]
    # The whole simulated history's summaries: the late-upload sensor's first tick then finds nothing new and
    # launches no run that could outlive the test.
    backfill = subprocess.run([*cli, "backfill", "--start", "2024-01-01", "--end", "2024-03-31", "--select",
                               "activities_raw,activities"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, check=False)
    assert backfill.returncode == 0, backfill.stderr[-3000:]

    port = _free_port()
    err_path, out_path = tmp_path / "ui.err", tmp_path / "ui.out"
    with err_path.open("w") as err, out_path.open("w") as out:
        ui = subprocess.Popen([*cli, "ui", "--port", str(port)], cwd=tmp_path, stdout=out, stderr=err,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    descendants: list[psutil.Process] = []
    try:
        def answering() -> bool:
            try:
                return requests.get(f"{url}/server_info", timeout=2).ok
            except requests.ConnectionError:
                return False

        _wait_until(answering, 240, "the webserver", ui)

        def workspace() -> dict | None:
            body = requests.post(f"{url}/graphql", json={"query": WORKSPACE}, timeout=30).json()
            entries = body["data"]["workspaceOrError"]["locationEntries"]
            loaded = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"]
            return {(e["name"], r["name"]): {j["name"] for j in r["pipelines"]}
                    for e in loaded for r in e["locationOrLoadError"]["repositories"]} or None

        jobs = _wait_until(workspace, 120, "the code location", ui)
        runs_filter = {"tags": [{"key": COMMAND_TAG, "value": "backfill"}]}
        body = requests.post(f"{url}/graphql", json={"query": RUNS, "variables": {"filter": runs_filter}},
                             timeout=30).json()
        runs = body["data"]["runsOrError"]["results"]
        assert len(runs) == 1  # the quarter's summaries, one batch
        for run in runs:
            origin = run["repositoryOrigin"]
            assert origin is not None, "a run without an origin is left off the Overview timeline"
            key = (origin["repositoryLocationName"], origin["repositoryName"])
            assert run["pipelineName"] in jobs.get(key, set()), (run, sorted(jobs))
        descendants = psutil.Process(ui.pid).children(recursive=True)
        assert len(descendants) >= 3  # code server, daemon, webserver (and the code server's worker)
    finally:
        if stop == "sigterm":
            os.kill(ui.pid, signal.SIGTERM)
        else:
            os.killpg(ui.pid, signal.SIGINT)
        try:
            code = ui.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            raise
    assert code == 0
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert not alive, f"left running: {alive}"
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    output = stderr + out_path.read_text(encoding="utf-8", errors="replace")  # Dagster's services log to stdout
    assert "deprecat" not in output.lower(), output[-3000:]
    assert "superseded" not in output.lower(), output[-3000:]
    assert "backfill polic" not in output.lower(), output[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "Launching run" not in output, "the sensor launched a run the test does not wait for"
