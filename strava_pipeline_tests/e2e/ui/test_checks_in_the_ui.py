"""What a user sees in the Dagster UI after a ranged backfill, asked of the real webserver's GraphQL API (the
queries the UI itself sends): every backfilled day of `activities` has its checks Passed, the asset's
headline row count is the table's total with the last run's rows beside it, and every column is described
(in the UI and in PostgreSQL alike). Then the Checks tab itself, in headless Chromium driven over the
DevTools protocol: its Partitions view counts every backfilled day Passed and none Skipped; the screenshot
is saved to /tmp/ui-checks.png."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.transforms.column_docs import COLUMN_DOCS
from strava_pipeline_tests.conftest import SMALL_ATHLETE_END, SMALL_ATHLETE_START
from strava_pipeline_tests.instance import dagster_home

SCREENSHOT = Path("/tmp/ui-checks.png")
DAYS = [(SMALL_ATHLETE_START + timedelta(days=i)).isoformat()
        for i in range((SMALL_ATHLETE_END - SMALL_ATHLETE_START).days + 1)]
#: The last week again, alone: its run writes fewer rows than the table holds.
LAST_WEEK = SMALL_ATHLETE_END - timedelta(days=6)

#: The fields the UI's Checks tab asks for (AssetCheckTableFragment), the asset's latest materialisation
#: (its "Row count" headline) and its definition metadata (the column schema).
ASSET = """
query($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      partitionStats { numMaterialized }
      metadataEntries { label ... on TableSchemaMetadataEntry { schema { columns { name description } } } }
      assetMaterializations(limit: 1) { partition metadataEntries { label ... on IntMetadataEntry { intValue } } }
      assetChecksOrError {
        __typename
        ... on AssetChecks {
          checks {
            name blocking
            partitionStatuses {
              __typename ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
            }
          }
        }
      }
    }
  }
}"""
EXECUTION = """
query($key: AssetKeyInput!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 1) {
    status partition evaluation { description metadataEntries { label } }
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate: Callable[[], Any], deadline_s: float, what: str, log: Path) -> Any:
    """Poll another process's state until ``predicate`` answers (not a sleep standing in for readiness)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[tuple[str, Callable[..., dict[str, Any]]]]:
    """``dagster-webserver`` on the test's DAGSTER_HOME and database, ready to answer; stopped afterwards."""
    port = _free_port()
    log_path = tmp_path / "webserver.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-m", "strava_pipeline.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def graphql(query: str, **variables: Any) -> dict[str, Any]:
        body = requests.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=60).json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def loaded() -> bool:
        try:
            if not requests.get(f"{base}/server_info", timeout=2).ok:
                return False
            node = graphql(ASSET, key={"path": ["activities"]})["assetNodeOrError"]
        except requests.ConnectionError:
            return False
        return node["__typename"] == "AssetNode"  # the code location has loaded

    try:
        _wait_until(loaded, 240, "the webserver to load the code location", log_path)
        yield base, graphql
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands
    on fd 3, answers on fd 4, NUL-terminated JSON), so a test can click and wait without a browser library.
    Only the webserver on 127.0.0.1 is reachable."""

    def __init__(self, chromium: str, profile: Path) -> None:
        commands_in, self._commands = os.pipe()
        self._answers, answers_out = os.pipe()
        # A trampoline puts the pipe ends on fds 3 and 4, then becomes Chromium (no preexec_fn: this process
        # has threads; no shell: dash cannot redirect fds above 9).
        remap = ("import fcntl, os, sys\n"
                 "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]\n"
                 "os.dup2(high[0], 3)\nos.dup2(high[1], 4)\nos.execv(sys.argv[3], sys.argv[3:])")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", remap, str(commands_in), str(answers_out),
             chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "about:blank"],
            pass_fds=(commands_in, answers_out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(commands_in)
        os.close(answers_out)
        self._buffer, self._last_id, self._session = b"", 0, None

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._last_id:
                    assert "error" not in answer, (method, answer["error"])
                    return answer.get("result", {})
            ready, _, _ = select.select([self._answers], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"Chromium did not answer {method} within {timeout} s"
            chunk = os.read(self._answers, 1 << 20)
            assert chunk, f"Chromium exited while answering {method}"
            self._buffer += chunk

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        result = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                           returnByValue=True)
        return str(result["result"].get("value") or "")

    def wait_for_text(self, needle: str, timeout: float = 60) -> str:
        """Poll the page until it shows ``needle`` (the UI renders after its GraphQL queries answer)."""
        deadline = time.monotonic() + timeout
        while needle not in (text := self.text()):
            assert time.monotonic() < deadline, f"the page never showed {needle!r}:\n{text[:2000]}"
            time.sleep(0.25)
        return text

    def click_last(self, label: str) -> None:
        """Click the last tab or button labelled ``label`` (the innermost of nested tab bars)."""
        clicked = self.call("Runtime.evaluate", returnByValue=True, expression=(
            "(() => { const found = [...document.querySelectorAll('[role=tab], button')]"
            f".filter(e => e.textContent.trim() === {json.dumps(label)});"
            " if (!found.length) return false; found[found.length - 1].click(); return true; })()"))
        assert clicked["result"]["value"], f"no tab or button {label!r} on the page"

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(timeout=30)
        os.close(self._commands)
        os.close(self._answers)


def _statuses(ranges: list[dict[str, str]]) -> dict[str, str]:
    """Day -> status, from the UI's run-length-encoded ranges of daily partitions."""
    days = {}
    for r in ranges:
        day, last = date.fromisoformat(r["startKey"]), date.fromisoformat(r["endKey"])
        while day <= last:
            days[day.isoformat()] = r["status"]
            day += timedelta(days=1)
    return days


@pytest.fixture
def backfilled_in_dagster_home(make_pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The ``backfilled`` athlete, its runs recorded in a persistent instance (what the webserver reads), then
    the last week of summaries again."""
    p = make_pipeline(SimulatorConfig(seed=11, start_date=SMALL_ATHLETE_START, end_date=SMALL_ATHLETE_END,
                                      activities=14))
    apply_migrations(p.database_url)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster_home")))
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_DIR", str(tmp_path / "dagster"))
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_LOGS_DIR", str(tmp_path / "dagster" / "logs"))
    with dg.DagsterInstance.get() as instance:
        run_backfill(p.settings, SMALL_ATHLETE_START, SMALL_ATHLETE_END, instance=instance, progress=lambda _: None)
        run_backfill(p.settings, LAST_WEEK, SMALL_ATHLETE_END, select=["activities_raw", "activities"],
                     instance=instance, progress=lambda _: None)
    return p


def test_the_ui_shows_every_day_checked_the_table_total_and_each_column_described(
    backfilled_in_dagster_home, webserver, chromium: str, tmp_path: Path
) -> None:
    p = backfilled_in_dagster_home
    base, graphql = webserver
    node = graphql(ASSET, key={"path": ["activities"]})["assetNodeOrError"]

    # Checks tab: every check of `activities` Passed on every day of the backfill, none skipped or failed.
    assert node["partitionStats"]["numMaterialized"] == len(DAYS)
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    assert set(checks) == {"unique_activity_ids", "raw_and_typed_row_counts_agree", "stores_agree"}
    for name, check in checks.items():
        assert check["blocking"], name
        statuses = _statuses(check["partitionStatuses"]["ranges"])
        assert statuses == dict.fromkeys(DAYS, "SUCCEEDED"), (name, check["partitionStatuses"])
    # One day's evaluation, as the check's detail page shows it: recorded against that day.
    busiest = p.query("SELECT activity_date::text FROM strava.activities GROUP BY 1 ORDER BY count(*) DESC, 1 "
                      "LIMIT 1")[0][0]
    execution = graphql(EXECUTION, key={"path": ["activities"]}, check="raw_and_typed_row_counts_agree",
                        partition=busiest)["assetCheckExecutions"]
    assert [(e["status"], e["partition"]) for e in execution] == [("SUCCEEDED", busiest)]
    assert {m["label"] for m in execution[0]["evaluation"]["metadataEntries"]} == {"raw_rows", "typed_rows"}

    # Headline "Row count": the table's total after the last run, which itself wrote only the last week.
    total = p.query("SELECT count(*) FROM strava.activities")[0][0]
    in_last_week = p.query("SELECT count(*) FROM strava.activities WHERE activity_date >= %s", LAST_WEEK)[0][0]
    assert 0 < in_last_week < total
    latest = {m["label"]: m.get("intValue") for m in node["assetMaterializations"][0]["metadataEntries"]}
    assert latest["dagster/row_count"] == total
    assert latest["rows_in_run"] == in_last_week and latest["partitions_in_run"] == 7

    # Every column described in the UI, with the text PostgreSQL holds as the column's comment.
    schema = next(m["schema"] for m in node["metadataEntries"] if m["label"] == "dagster/column_schema")
    described = {c["name"]: c["description"] for c in schema["columns"]}
    assert described == dict(COLUMN_DOCS["activities"])
    comments = dict(p.query(
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = 'strava.activities'::regclass AND attnum > 0 AND NOT attisdropped"))
    assert comments == described

    # The Checks tab as a user opens it: the first check, then its Partitions view.
    browser = DevTools(chromium, tmp_path / "chromium-profile")
    try:
        browser.open(f"{base}/assets/activities?view=checks")
        browser.wait_for_text("Latest execution")
        browser.click_last("Partitions")
        shown = browser.wait_for_text("Passed (")
        SCREENSHOT.write_bytes(browser.screenshot())
    finally:
        browser.close()
    for status, days in (("Passed", len(DAYS)), ("Skipped", 0), ("Failed", 0), ("Execution Failed", 0)):
        assert f"{status}\n({days})" in shown or f"{status} ({days})" in shown, (status, shown[:1500])
    assert SCREENSHOT.stat().st_size > 20_000
