"""The CLI banner and the HTTP server's concurrency and keep-alive behaviour."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import requests

from strava_pipeline import simulator
from strava_pipeline_tests.simulator.conftest import Api

REPO = Path(__file__).resolve().parents[2]


def test_cli_prints_usable_credentials() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "strava_pipeline.simulator.cli", "--port", "0", "--activities", "20",
         "--read-limit", "50,500", "--faults", "streams:500=0.1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        lines = []
        assert proc.stdout is not None
        while not any("Press Ctrl-C" in x for x in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            lines.append(line)
        text = "".join(lines)
        base = re.search(r"listening on (http://\S+)", text)[1]
        fields = dict(re.findall(r"^\s+(client id|client secret|refresh token):\s+(\S+)", text, re.M))
        r = requests.post(base + "/oauth/token", data={
            "client_id": fields["client id"], "client_secret": fields["client secret"],
            "grant_type": "refresh_token", "refresh_token": fields["refresh token"]})
        assert r.status_code == 200
        auth = {"Authorization": "Bearer " + r.json()["access_token"]}
        athlete = requests.get(base + "/api/v3/athlete", headers=auth)
        assert athlete.status_code == 200 and athlete.headers["X-Readratelimit-Limit"] == "50,500"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_concurrent_keep_alive_clients(sim, api: Api) -> None:
    ids = [a["id"] for a in sim.activities() if not a["manual"]][:8]
    errors: list[str] = []

    def client(aid: int) -> None:
        s = requests.Session()
        for _ in range(10):
            r = s.get(f"{sim.base_url}/api/v3/activities/{aid}/streams", params={"keys": "time"},
                      headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=client, args=(aid,)) for aid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Latency (no ~40 ms Nagle/delayed-ACK stall) is measured by benchmarks/simulator_throughput.py.


def test_public_api() -> None:
    assert {"StravaSimulator", "SimulatorConfig", "RequestLogEntry"} <= set(simulator.__all__)
