"""A backfill launched through the webserver's GraphQL API, as the UI does, run by the daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from strava_pipeline_tests.instance import dagster_home

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } ... on PythonError { message } }
}"""
ASSETS = ["activities_raw", "activities", "streams_raw", "activity_streams"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate, deadline_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)  # polling an external process's state, not synchronising on a guess
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")


@pytest.mark.slow
def test_backfill_launched_through_graphql_lands_the_range(make_pipeline, tmp_path: Path) -> None:
    p = make_pipeline()
    port = _free_port()
    env = dict(os.environ)
    env.update({
        "DAGSTER_HOME": str(dagster_home(tmp_path / "dagster_home")),
        "STRAVA_PIPELINE_DAGSTER_DIR": str(tmp_path / "dagster"),
        "STRAVA_PIPELINE_DAGSTER_LOGS_DIR": str(tmp_path / "dagster" / "logs"),
        "STRAVA_SENSOR_INTERVAL_SECONDS": "86400",
    })
    log = (tmp_path / "dagster-dev.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "strava_pipeline.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
            except requests.ConnectionError:
                return False

        _wait_until(ready, 180, "the webserver")
        days = [(date(2024, 1, 1) + timedelta(days=i)).isoformat() for i in range(31)]
        params = {"assetSelection": [{"path": [a]} for a in ASSETS], "partitionNames": days, "fromFailure": False}
        launched = requests.post(url, json={"query": LAUNCH, "variables": {"params": params}}, timeout=60).json()
        result = launched["data"]["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        backfill_id = result["backfillId"]

        def finished() -> str | None:
            body = requests.post(url, json={"query": STATUS, "variables": {"id": backfill_id}}, timeout=30).json()
            status = body["data"]["partitionBackfillOrError"].get("status")
            return status if status in {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED",
                                        "CANCELED"} else None

        assert _wait_until(finished, 600, "the backfill") in {"COMPLETED", "COMPLETED_SUCCESS"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()

    january = sorted(s["id"] for s in p.sim.activities() if s["start_date_local"].startswith("2024-01"))
    assert [r[0] for r in p.query(
        "SELECT activity_id FROM strava.activities WHERE activity_date < '2024-02-01' ORDER BY 1")] == january
    with_streams = {s["id"] for s in p.sim.activities() if s["start_date_local"].startswith("2024-01")
                    and not s["manual"]}
    assert {r[0] for r in p.query("SELECT DISTINCT activity_id FROM strava.activity_streams")} == with_streams
