"""Nothing the product creates is readable by other local users: every file 0600-like, every folder 0700-like.

A real ``strava-pipeline backfill`` (and the report) in a child process, as a user runs it, under a data
dir and token store the command creates itself; then every path under them is inspected. The embedded
server's own folder is included (its files belong to the server's user, with no group or other bits).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

from strava_pipeline.simulator import SimulatorConfig


def test_a_backfill_creates_nothing_other_users_can_read(make_pipeline, tmp_path: Path) -> None:
    config = SimulatorConfig(seed=5, start_date=date(2024, 1, 1), end_date=date(2024, 1, 20), activities=8)
    p = make_pipeline(config)
    env = {k: v for k, v in os.environ.items() if k not in {"DAGSTER_HOME", "STRAVA_PIPELINE_DATABASE_URL"}}
    data_dir = tmp_path / "fresh" / "data"  # the command creates it (and its parent)
    env["STRAVA_PIPELINE_DATA_DIR"] = str(data_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "strava_pipeline.cli", "backfill", "--start", "2024-01-01", "--end", "2024-01-20"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(data_dir.glob("parquet/activities/date=*/part.parquet")), "the backfill landed activities"
    assert (data_dir / "reports").is_dir()

    exposed = []
    for path in [data_dir.parent, *data_dir.rglob("*"), p.settings.token_file]:
        if path.is_symlink() or path.is_socket():  # a socket's access is its folder's (checked here too)
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            exposed.append(f"{oct(mode)} {path.relative_to(tmp_path)}")
    assert exposed == [], "readable by group or others:\n" + "\n".join(sorted(exposed)[:40])
