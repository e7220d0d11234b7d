"""Process-level faults: processes killed with SIGKILL at chosen points, the database connection dropped
mid-load, concurrent processes sharing the token store and the same days. After each, a rerun leaves the
tables equal to the simulator's ground truth: nothing lost, nothing duplicated, no half-written day."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.strava import StravaClient, TokenStore
from strava_pipeline_tests.e2e.faults._truth import (
    END,
    START,
    STREAM_ASSETS,
    SUMMARY_ASSETS,
    assert_matches_truth,
    backfill_process,
    month_config,
    wait_for,
)

_BLOCKED_COPY = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
  AND query ILIKE %s
"""


def _quiet(_: str) -> None:
    return None


def _blocked_copy_pid(url: str, table: str) -> int | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(_BLOCKED_COPY, (f"COPY %{table}%",)).fetchone()
    return row[0] if row else None


def _backend_gone(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0


def _day_snapshot(p, day: date) -> list[tuple]:
    return p.query("SELECT activity_id, payload->>'name' FROM strava.activities_raw WHERE activity_date = %s "
                   "ORDER BY 1", day)


def _change_a_landed_day(p) -> tuple[date, int]:
    """A new activity and a rename on one day already landed: the rerun must replace that day wholesale."""
    day = date(2024, 1, 17)
    new_id = p.sim.add_activity(start_date_local=f"{day}T06:30:00", sport_type="Run", zone="Europe/Paris")
    p.sim.update_activity(new_id, name="new activity")
    landed = [i for (i,) in p.query("SELECT activity_id FROM strava.activities_raw WHERE activity_date = %s", day)]
    if landed:
        p.sim.update_activity(landed[0], name="renamed after landing")
    return day, new_id


def _block_copy_of(url: str, activity_id: int, day: date) -> psycopg.Connection:
    """An open transaction holding an uncommitted row with this id: a COPY of that id waits on it, i.e. the
    loader is stopped *inside* its transaction, after DELETE, in the middle of COPY."""
    blocker = psycopg.connect(url)
    blocker.execute("INSERT INTO strava.activities_raw VALUES (%s, %s, now(), '{}')", (activity_id, day))
    return blocker


@pytest.fixture
def migrated(make_pipeline):
    def make(config):
        p = make_pipeline(config)
        apply_migrations(p.database_url)  # before child processes start, so they never race on migrations
        return p

    return make


def test_sigkill_while_fetching_then_rerun(migrated, tmp_path: Path) -> None:
    p = migrated(month_config(seed=41))
    p.sim.set_faults("streams:slow=1@1.5")
    log = tmp_path / "backfill.log"
    proc = backfill_process(START, END, STREAM_ASSETS, log=log)
    try:
        wait_for(lambda: any(e.path.endswith("/streams") for e in p.sim.request_log), 120,
                 "the first stream request", proc, log)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    # The summaries batch committed before streams were fetched; no stream day is half there.
    assert sorted(i for (i,) in p.query("SELECT activity_id FROM strava.activities")) == sorted(p.sim.activity_ids())
    assert p.query("SELECT count(*) FROM strava.streams_raw")[0][0] == 0
    assert p.query("SELECT count(*) FROM strava.activity_streams")[0][0] == 0

    p.sim.set_faults("")
    run_backfill(p.settings, START, END, select=STREAM_ASSETS, progress=_quiet)
    assert_matches_truth(p)


def test_sigkill_inside_the_database_transaction_then_rerun(migrated, tmp_path: Path) -> None:
    p = migrated(month_config(seed=42))
    run_backfill(p.settings, START, END, select=SUMMARY_ASSETS, progress=_quiet)
    day, new_id = _change_a_landed_day(p)
    before = _day_snapshot(p, day)
    blocker = _block_copy_of(p.database_url, new_id, day)
    log = tmp_path / "backfill.log"
    try:
        proc = backfill_process(day - timedelta(days=2), day + timedelta(days=2), SUMMARY_ASSETS, log=log)
        try:
            pid = wait_for(lambda: _blocked_copy_pid(p.database_url, "activities_raw"), 120,
                           "the loader's COPY into strava.activities_raw", proc, log)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        blocker.rollback()
        blocker.close()
    wait_for(lambda: _backend_gone(p.database_url, pid), 30, "the killed loader's backend to end")
    assert _day_snapshot(p, day) == before, "the day is exactly as before: the DELETE was rolled back"

    run_backfill(p.settings, START, END, select=SUMMARY_ASSETS, progress=_quiet)
    assert_matches_truth(p, streams=False)


_DIE_WHILE_WRITING_PARQUET = """
import os, signal, sys
from strava_pipeline.storage import partition_switch

def die_halfway(frame, path, *args):
    # The first staged day file of the typed `activities` asset: half a temp file, then SIGKILL (no cleanup).
    if path.parent.parent.name == "activities" and ".staged." in path.name:
        frame.write_parquet(path)
        os.truncate(path, path.stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(frame, path, *args)

original = partition_switch._write
partition_switch._write = die_halfway
from strava_pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_while_writing_parquet_then_rerun(migrated, tmp_path: Path) -> None:
    p = migrated(month_config(seed=43))
    log = tmp_path / "backfill.log"
    with open(log, "wb") as out:
        proc = subprocess.run(
            [sys.executable, "-c", _DIE_WHILE_WRITING_PARQUET, "backfill", "--start", START.isoformat(),
             "--end", END.isoformat(), "--select", ",".join(SUMMARY_ASSETS)],
            stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    parquet = ParquetStore(p.settings.parquet_dir)
    assert list((p.settings.parquet_dir / "activities").rglob("*.tmp")), "killed mid-write"
    assert list((p.settings.parquet_dir / ".switches").glob("activities.*.json")), "the switch's journal is left"
    assert parquet.read("activities").height == 0, "no torn Parquet file is visible"

    run_backfill(p.settings, START, END, select=SUMMARY_ASSETS, progress=_quiet)
    assert_matches_truth(p, streams=False)
    left = [f for f in p.settings.parquet_dir.rglob("*") if f.is_file() and f.suffix not in {".parquet"}]
    assert left == [], "the rerun removed the killed run's temporary files and journal"


#: SIGKILL at the first rename of a finished `activities_raw` day file into place: PostgreSQL has committed
#: the batch, the Parquet copy (what every downstream asset reads) is not switched yet.
_DIE_BETWEEN_THE_STORES = """
import os, signal, sys
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if "/activities_raw/date=" in str(dst) and str(dst).endswith("/part.parquet"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from strava_pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_between_the_two_stores_then_only_downstream_reruns(migrated, tmp_path: Path) -> None:
    p = migrated(month_config(seed=45))
    log = tmp_path / "backfill.log"
    with open(log, "wb") as out:
        proc = subprocess.run(
            [sys.executable, "-c", _DIE_BETWEEN_THE_STORES, "backfill", "--start", START.isoformat(),
             "--end", END.isoformat(), "--select", "activities_raw"],
            stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert p.query("SELECT count(*) FROM strava.activities_raw")[0][0] == len(p.sim.activity_ids())
    assert ParquetStore(p.settings.parquet_dir).read("activities_raw").height == 0, "killed before the switch"

    # Only the typed layer runs next: it reads activities_raw from Parquet, which must first be switched.
    run_backfill(p.settings, START, END, select=["activities"], progress=_quiet)
    assert_matches_truth(p, streams=False)


def test_database_connection_dropped_mid_load_fails_clearly_and_rerun_completes(migrated) -> None:
    p = migrated(month_config(seed=44))
    run_backfill(p.settings, START, END, select=SUMMARY_ASSETS, progress=_quiet)
    day, new_id = _change_a_landed_day(p)
    before = _day_snapshot(p, day)
    parquet_before = ParquetStore(p.settings.parquet_dir).read("activities_raw", [day]).get_column(
        "activity_id").sort().to_list()
    blocker = _block_copy_of(p.database_url, new_id, day)
    terminated: list[bool] = []

    def kill_the_loaders_backend() -> None:
        try:
            pid = wait_for(lambda: _blocked_copy_pid(p.database_url, "activities_raw"), 120, "the COPY")
            with psycopg.connect(p.database_url, autocommit=True) as admin:
                terminated.append(admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0])
        finally:
            blocker.rollback()
            blocker.close()

    helper = threading.Thread(target=kill_the_loaders_backend, daemon=True)
    helper.start()
    with pytest.raises(Exception) as failure:
        run_backfill(p.settings, day, day, select=SUMMARY_ASSETS, progress=_quiet)
    helper.join(60)
    assert terminated == [True]
    chain, exc = [], failure.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    message = "\n".join(chain)
    assert "strava.activities_raw" in message and day.isoformat() in message, message
    assert _day_snapshot(p, day) == before, "no half-written partition in PostgreSQL"
    assert ParquetStore(p.settings.parquet_dir).read("activities_raw", [day]).get_column(
        "activity_id").sort().to_list() == parquet_before, "Parquet untouched"

    run_backfill(p.settings, START, END, select=SUMMARY_ASSETS, progress=_quiet)
    assert_matches_truth(p, streams=False)


def test_two_processes_refresh_with_strictly_rotating_tokens(migrated, tmp_path: Path) -> None:
    p = migrated(month_config(seed=45))
    store = TokenStore(p.settings.token_file, seed_refresh_token=p.settings.refresh_token)
    with StravaClient(base_url=p.sim.base_url, client_id=p.sim.client_id, client_secret=p.sim.client_secret,
                      token_store=store) as client:
        client.get_athlete()  # the seed is exchanged and the rotated token stored
    first = store.require()
    p.sim.expire_access_tokens()  # both processes start with a dead access token and must refresh
    p.sim.clear_request_log()

    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [backfill_process(START, date(2024, 1, 15), SUMMARY_ASSETS, log=logs[0]),
             backfill_process(date(2024, 1, 16), END, SUMMARY_ASSETS, log=logs[1])]
    codes = [proc.wait(300) for proc in procs]
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)

    final = store.require()
    live = set(p.sim.app.oauth._refresh)
    assert live == {final.refresh_token}, "the store holds the one live (newest) refresh token"
    assert final.refresh_token != first.refresh_token
    refreshes = [e for e in p.sim.request_log if e.path == "/oauth/token"]
    assert all(e.status == 200 for e in refreshes), "no refresh was attempted with a rotated-away token"
    assert 1 <= len(refreshes) <= 2
    assert_matches_truth(p, streams=False)


@pytest.mark.slow
def test_two_overlapping_backfills_at_once(migrated, tmp_path: Path) -> None:
    p = migrated(month_config(seed=46))
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [backfill_process(START, date(2024, 1, 20), STREAM_ASSETS, log=logs[0]),
             backfill_process(date(2024, 1, 10), END, STREAM_ASSETS, log=logs[1])]
    try:
        codes = [proc.wait(240) for proc in procs]
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        raise AssertionError("deadlock: the overlapping backfills did not finish\n"
                             + "\n".join(log.read_text()[-3000:] for log in logs)) from None
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    assert_matches_truth(p)
