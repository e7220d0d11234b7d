"""Embedded PostgreSQL: URL usable by psycopg and SQLAlchemy, start races, stale holders, lifetimes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from strava_pipeline.storage.databases import create_database, drop_database, with_database
from strava_pipeline.storage.embedded_postgres import (
    EmbeddedPostgres,
    resolve_database_url,
    start_embedded_postgres,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _server_pid(data_dir: Path) -> int | None:
    pidfile = data_dir / "postgres" / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().splitlines()[0])
    return pid if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None


def _wait_stopped(data_dir: Path, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _server_pid(data_dir) is None:
            return True
        time.sleep(0.1)
    return False


def _spawn(code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_url_works_for_psycopg_and_sqlalchemy(pg_server: EmbeddedPostgres) -> None:
    assert pg_server.url.startswith("postgresql://postgres@/postgres?host=/")
    with psycopg.connect(pg_server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(pg_server.url)  # what dagster-postgres does with postgres_url
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar() == "postgres"
    finally:
        engine.dispose()


def test_create_and_drop_database(pg_server: EmbeddedPostgres) -> None:
    url = create_database(pg_server.url, "scratch_db")
    assert url == with_database(pg_server.url, "scratch_db")
    conn = psycopg.connect(url, autocommit=True)
    assert conn.execute("SELECT current_database()").fetchone() == ("scratch_db",)
    drop_database(url, "scratch_db")  # forces the open session out
    conn.close()
    with psycopg.connect(pg_server.url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'scratch_db'").fetchone() == (0,)


def test_configured_url_wins(tmp_path: Path) -> None:
    assert resolve_database_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"
    assert not (tmp_path / "postgres").exists()


def test_resolve_starts_embedded_when_unconfigured(pg_data_dir: Path) -> None:
    url = resolve_database_url(None, pg_data_dir)
    try:
        assert resolve_database_url("", pg_data_dir) == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        from strava_pipeline.storage import embedded_postgres

        embedded_postgres._resolved.pop(pg_data_dir.resolve()).stop()
    assert _wait_stopped(pg_data_dir)


def test_handles_in_one_process_are_reference_counted(pg_data_dir: Path) -> None:
    first = start_embedded_postgres(pg_data_dir)
    second = start_embedded_postgres(pg_data_dir)
    assert first.url == second.url
    first.stop()
    with psycopg.connect(second.url) as conn:  # still up for the other handle
        assert conn.execute("SELECT 1").fetchone() == (1,)
    second.stop()
    second.stop()  # idempotent
    assert _wait_stopped(pg_data_dir)


def test_keep_running_leaves_server_up(pg_data_dir: Path) -> None:
    with start_embedded_postgres(pg_data_dir, keep_running=True):
        pass
    assert _server_pid(pg_data_dir) is not None
    again = start_embedded_postgres(pg_data_dir)  # default mode: last holder stops it
    with again, psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _wait_stopped(pg_data_dir)


def test_two_processes_starting_at_once(pg_data_dir: Path) -> None:
    """Both must get the same running server; without the file lock one of them fails."""
    go = pg_data_dir / "go"
    code = f"""
        import time, pathlib, psycopg
        from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.005)
        with start_embedded_postgres(pathlib.Path({str(pg_data_dir)!r})) as pg:
            with psycopg.connect(pg.url) as conn:
                conn.execute("SELECT 1")
            print(pg.url, flush=True)
            time.sleep(1.0)
    """
    procs = [_spawn(code) for _ in range(2)]
    time.sleep(1.0)  # let both interpreters reach the wait loop
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert outputs[0][0].strip() == outputs[1][0].strip() != ""
    assert _wait_stopped(pg_data_dir)


def test_stale_holder_pid_after_kill_9_is_dropped(pg_data_dir: Path) -> None:
    """A holder killed with -9 leaves its pid behind; the next holder must still stop the server."""
    code = f"""
        import time, pathlib
        from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
        pg = start_embedded_postgres(pathlib.Path({str(pg_data_dir)!r}))
        print("ready", flush=True)
        time.sleep(600)
    """
    proc = _spawn(code)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    pids_file = pg_data_dir / "postgres" / ".handle_pids.json"
    assert proc.pid in json.loads(pids_file.read_text())
    assert _server_pid(pg_data_dir) is not None  # orphaned server still running

    with start_embedded_postgres(pg_data_dir) as pg:
        assert proc.pid not in json.loads(pids_file.read_text())
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _wait_stopped(pg_data_dir)
