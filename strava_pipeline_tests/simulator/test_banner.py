"""`strava-pipeline simulate` prints export lines a user can paste as they are."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _banner(*options: str, timeout: float = 60.0) -> str:
    """Start the simulator, return its stdout up to "Press Ctrl-C", and stop it (a reader thread bounds the wait)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "strava_pipeline.cli", "simulate", "--port", "0", "--activities", "5", *options],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while not any("Press Ctrl-C" in x for x in seen):
            line = lines.get(timeout=timeout)
            assert line, f"simulator exited before its banner: {''.join(seen)}"
            seen.append(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return "".join(seen)


def _exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*export (STRAVA_[A-Z_]+)=(\S+)\s*$", text, re.M))


def test_banner_prints_pasteable_exports_without_api_path() -> None:
    text = _banner()
    exports = _exports(text)
    assert {"STRAVA_BASE_URL", "STRAVA_CLIENT_ID", "STRAVA_CLIENT_SECRET", "STRAVA_REFRESH_TOKEN"} <= set(exports)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["STRAVA_BASE_URL"])
    assert "/api/v3" not in exports["STRAVA_BASE_URL"]
    assert "STRAVA_RATE_WINDOW_SECONDS" not in exports  # real 15-minute windows: nothing to configure
    assert "rotates" in text and "token store" in text


def test_banner_exports_compressed_rate_window() -> None:
    exports = _exports(_banner("--window-seconds", "30"))
    assert exports["STRAVA_RATE_WINDOW_SECONDS"] == "30"
