"""Both stores switch together: writes, kills at each step, recovery, moved entities, a full disk.

The kills are real: a child process runs a switch and SIGKILLs itself at the named step (the step's
function is wrapped in the child only), and the test then looks at what a later process finds.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest

from strava_pipeline.storage import partition_switch as ps
from strava_pipeline.storage.block_range_summaries import wait_for_summaries
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.storage.partition_switch import PartitionSwitcher
from strava_pipeline.storage.postgres_writer import PartitionWriteError

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)
TABLE = "acts"
VERSIONS = "partition_versions"

DDL = f"""
CREATE TABLE {TABLE} (activity_id bigint NOT NULL UNIQUE, activity_date date NOT NULL, name text);
CREATE TABLE {VERSIONS} (
    table_name text NOT NULL, partition_key text NOT NULL, switch_id text NOT NULL,
    row_count bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, partition_key));
"""


def frame(rows: list[tuple[int, date, str]]) -> pl.DataFrame:
    schema = {"activity_id": pl.Int64, "activity_date": pl.Date, "name": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


OLD = frame([(1, D1, "old one"), (2, D2, "old two")])
NEW = frame([(10, D1, "new ten"), (11, D1, "new eleven"), (20, D2, "new twenty")])


@pytest.fixture
def switcher(pg_url: str, tmp_path: Path) -> Iterator[PartitionSwitcher]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL)
    yield PartitionSwitcher(ParquetStore(tmp_path / "parquet"), pg_url, versions_table=VERSIONS)


def write(switcher: PartitionSwitcher, rows: pl.DataFrame, days: list[date]) -> None:
    switcher.replace(
        TABLE, TABLE, rows, partition_column="activity_date", partitions=days, entity_key="activity_id"
    )


def postgres_rows(switcher: PartitionSwitcher) -> list[tuple]:
    with psycopg.connect(switcher.database_url) as conn:
        return conn.execute(f"SELECT activity_id, activity_date, name FROM {TABLE} ORDER BY activity_id").fetchall()


def parquet_rows(switcher: PartitionSwitcher) -> list[tuple]:
    return sorted(switcher.store.read(TABLE).rows())


def leftovers(switcher: PartitionSwitcher) -> list[str]:
    """Anything under the Parquet root that is not a final file: staged, temporary, journals."""
    root = switcher.store.root
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in {"part.parquet", "_schema.parquet", "data.parquet"}
    )


def run_killed_at(switcher: PartitionSwitcher, step: str, rows: pl.DataFrame, days: list[date]) -> None:
    """In a child process, write ``rows`` and SIGKILL the child when it reaches ``step``."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from datetime import date
        import polars as pl
        from strava_pipeline.storage import partition_switch as ps
        from strava_pipeline.storage.parquet_store import ParquetStore

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        step = {step!r}
        if step == "before_commit":          # staged in Parquet, the transaction not committed
            ps.replace_partitions = die
        elif step == "after_commit":          # committed in PostgreSQL, nothing renamed yet
            ps.PartitionSwitcher._roll_forward = die
        elif step == "mid_rename":            # committed, one day renamed, the other not
            ps._WORKERS = 1                   # renames one at a time, each followed by fsync_dir
            calls = []
            def fsync_then_die(directory):
                calls.append(directory)
                if len(calls) == 2:           # 1: the journal's folder; 2: after the first rename
                    die()
            ps.fsync_dir = fsync_then_die
        elif step == "mid_stage":             # a staged file half written
            def half(frame, path, *args):
                with open(path, "wb") as f:
                    f.write(b"PAR1 half a file")
                die()
            ps._write = half
        rows = pl.read_ipc(sys.argv[1])
        days = [date.fromisoformat(d) for d in sys.argv[2].split(",")]
        switcher = ps.PartitionSwitcher(ParquetStore({str(switcher.store.root)!r}), {switcher.database_url!r},
                                        versions_table={VERSIONS!r})
        switcher.replace({TABLE!r}, {TABLE!r}, rows, partition_column="activity_date", partitions=days,
                         entity_key="activity_id")
        """
    )
    data = switcher.store.root.parent / f"rows-{uuid.uuid4().hex}.arrow"
    rows.write_ipc(data)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, str(data), ",".join(d.isoformat() for d in days)],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        data.unlink()
    assert proc.returncode == -9, f"the child was meant to be killed at {step}: {proc.returncode}\n{proc.stderr}"


def test_a_write_lands_in_both_stores_with_its_version(switcher: PartitionSwitcher) -> None:
    write(switcher, OLD, [D1, D2])
    write(switcher, NEW, [D1, D2, D3])

    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted(NEW.rows())
    assert switcher.compare(TABLE, TABLE, "activity_date", [D1, D2, D3]) == []
    assert leftovers(switcher) == []


def test_a_refused_write_leaves_both_stores_as_they_were(switcher: PartitionSwitcher) -> None:
    write(switcher, OLD, [D1, D2])
    duplicate = frame([(5, D1, "a"), (5, D2, "the same id twice")])

    with pytest.raises(PartitionWriteError, match="nothing was changed"):
        write(switcher, duplicate, [D1, D2])

    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted(OLD.rows())
    assert leftovers(switcher) == []


def test_a_parquet_file_failing_after_the_rows_were_copied_rolls_the_transaction_back(
    switcher: PartitionSwitcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Parquet files are written while the transaction runs: one that fails only after PostgreSQL has
    taken every row must still leave both stores as they were (the commit waits for every file)."""
    write(switcher, OLD, [D1, D2])
    copied = threading.Event()
    real_replace, real_write = ps.replace_partitions, ps._write

    def replace_then_signal(*args, **kwargs):
        rows = real_replace(*args, **kwargs)
        copied.set()
        return rows

    def write_fails_for_d2(part: pl.DataFrame, path: Path, *args) -> None:
        if part.height and part.get_column("activity_date")[0] == D2:
            assert copied.wait(20), "the rows were never copied while this file was being written"
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(part, path, *args)

    monkeypatch.setattr(ps, "replace_partitions", replace_then_signal)
    monkeypatch.setattr(ps, "_write", write_fails_for_d2)
    with pytest.raises(PartitionWriteError, match=r"No space left on device.*nothing was changed in either store"):
        write(switcher, NEW, [D1, D2])

    assert copied.is_set()
    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted(OLD.rows())
    assert leftovers(switcher) == []


@pytest.mark.parametrize("step", ["mid_stage", "before_commit"])
def test_a_kill_before_the_commit_is_undone(switcher: PartitionSwitcher, step: str) -> None:
    write(switcher, OLD, [D1, D2])

    run_killed_at(switcher, step, NEW, [D1, D2])
    assert leftovers(switcher), "the kill should leave a journal and staged or temporary files"

    assert switcher.recover(TABLE)
    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted(OLD.rows())
    assert switcher.compare(TABLE, TABLE, "activity_date", [D1, D2]) == []
    assert leftovers(switcher) == []


@pytest.mark.parametrize("step", ["after_commit", "mid_rename"])
def test_a_kill_after_the_commit_is_finished_and_caught_by_the_comparison_until_then(
    switcher: PartitionSwitcher, step: str
) -> None:
    write(switcher, OLD, [D1, D2])

    run_killed_at(switcher, step, NEW, [D1, D2])
    assert postgres_rows(switcher) == sorted(NEW.rows())
    assert parquet_rows(switcher) != sorted(NEW.rows())  # the window the issue describes
    disagreeing = switcher.compare(TABLE, TABLE, "activity_date", [D1, D2])
    assert disagreeing and all("switch" in str(problem) for problem in disagreeing)

    (line,) = switcher.recover(TABLE)
    assert "finished an interrupted write of 2 partitions" in line
    assert parquet_rows(switcher) == sorted(NEW.rows())
    assert switcher.compare(TABLE, TABLE, "activity_date", [D1, D2]) == []
    assert leftovers(switcher) == []


def test_the_next_write_recovers_first(switcher: PartitionSwitcher) -> None:
    write(switcher, OLD, [D1, D2])
    run_killed_at(switcher, "after_commit", NEW, [D1, D2])

    result = switcher.replace(
        TABLE, TABLE, frame([(30, D3, "third")]), partition_column="activity_date", partitions=[D3],
        entity_key="activity_id",
    )

    assert len(result.recovered) == 1
    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted([*NEW.rows(), (30, D3, "third")])


def test_a_live_writers_journal_is_left_alone(switcher: PartitionSwitcher) -> None:
    import fcntl

    switcher.journal_dir.mkdir(parents=True)
    journal = switcher.journal_dir / f"{TABLE}.feedfacefeedface.json"
    journal.write_text('{"switch_id": "feedfacefeedface", "asset": "acts", "table": "acts", '
                       '"partitions": ["2024-05-01"], "removals": []}')
    fd = os.open(journal, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert switcher.recover(TABLE) == []
        assert journal.exists()
    finally:
        os.close(fd)
    assert switcher.recover(TABLE)  # its writer is gone now: undone
    assert not journal.exists()


def test_an_entity_that_moved_day_leaves_its_old_day_in_both_stores(switcher: PartitionSwitcher) -> None:
    write(switcher, OLD, [D1, D2])  # 1 on D1, 2 on D2

    result = switcher.replace(
        TABLE, TABLE, frame([(1, D3, "one, moved to the 3rd")]), partition_column="activity_date",
        partitions=[D3], entity_key="activity_id",
    )

    assert result.moved_from == {D1: 1}
    expected = [(1, D3, "one, moved to the 3rd"), (2, D2, "old two")]
    assert postgres_rows(switcher) == parquet_rows(switcher) == expected
    assert not switcher.store.partition_path(TABLE, D1).exists()  # D1 has no rows left: no file
    assert switcher.compare(TABLE, TABLE, "activity_date", [D1, D2, D3]) == []


def test_without_an_entity_key_a_move_is_refused_whole(switcher: PartitionSwitcher) -> None:
    write(switcher, OLD, [D1, D2])

    with pytest.raises(PartitionWriteError, match="nothing was changed"):
        switcher.replace(TABLE, TABLE, frame([(1, D3, "moved")]), partition_column="activity_date", partitions=[D3])

    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted(OLD.rows())


def _heap_blocks_read_for(conn: psycopg.Connection, day: date) -> str:
    """The BRIN bitmap scan's "Heap Blocks" line for a query of ``day`` ('' when it read none)."""
    conn.execute("SET enable_seqscan = off")
    plan = [row[0] for row in conn.execute(
        f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*) FROM {TABLE} WHERE activity_date = %s", (day,))]
    assert any("Bitmap Index Scan on acts_day_brin" in line for line in plan), plan
    return next((line.strip() for line in plan if "Heap Blocks" in line), "")


def test_a_write_leaves_its_rows_summarised_so_queries_of_other_days_skip_them(switcher: PartitionSwitcher) -> None:
    with psycopg.connect(switcher.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE INDEX acts_day_brin ON {TABLE} USING brin (activity_date) WITH (pages_per_range = 1)")
    many = frame([(i, D1 if i < 3_000 else D2, "x" * 40) for i in range(6_000)])  # dozens of pages per day

    write(switcher, many, [D1, D2])
    wait_for_summaries()  # the write has handed its summary to a worker thread

    with psycopg.connect(switcher.database_url, autocommit=True) as conn:
        # A day the write did not fill reads no block at all: the new ranges are summarised, not scanned.
        assert _heap_blocks_read_for(conn, D3) == ""
        assert conn.execute("SELECT brin_summarize_new_values('acts_day_brin')").fetchone() == (0,)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real ENOSPC (needs root, as in CI)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_fails_the_write_and_changes_neither_store(pg_url: str, full_disk: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL)
    switcher = PartitionSwitcher(ParquetStore(full_disk / "parquet"), pg_url, versions_table=VERSIONS)
    write(switcher, OLD, [D1, D2])
    big = pl.DataFrame({
        "activity_id": range(100, 40_100),
        "activity_date": [D1] * 40_000,
        "name": [uuid.uuid4().hex * 4 for _ in range(40_000)],  # incompressible: far more than 64 KiB
    })

    with pytest.raises(PartitionWriteError, match=r"No space left on device.*nothing was changed in either store"):
        write(switcher, big, [D1, D2])

    assert postgres_rows(switcher) == parquet_rows(switcher) == sorted(OLD.rows())
    assert leftovers(switcher) == []
