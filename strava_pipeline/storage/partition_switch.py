"""Replace partitions in PostgreSQL and Parquet together: both stores show the old rows, or both the new.

One re-materialisation is a *switch*, named by a random id:

1. **journal**: ``<parquet root>/.switches/<asset>.<id>.json`` says which partitions the switch touches; the
   writer holds an exclusive ``flock`` on it for the switch's whole life (the kernel drops it when the
   process dies, even by ``kill -9``, which is how recovery tells a dead switch from a running one).
2. **stage**: each partition's new Parquet file is written (fsynced) under a staged name next to its final
   one, with the switch id in its footer; a partition without rows is listed as a removal instead. Worker
   threads write them while step 3's transaction runs (the two stores load at once).
3. **commit**: one PostgreSQL transaction deletes and COPYs the rows, removes rows that moved here from
   other partitions (same entity key, see below), and records ``(table, partition, switch id, rows)`` in
   the versions table; it commits only once every staged file is durable, and rolls back if one failed.
   The commit is the point of no return.
4. **switch**: staged files are renamed over the final ones, removals unlinked, directories fsynced; the
   new rows' BRIN block ranges are summarised (best effort, in the background: see
   ``block_range_summaries``), so later reads of other days skip them.
5. **done**: the journal is removed.

Per-partition session advisory locks are held from before the commit until the renames are done, so two
writers of the same day cannot commit in one order and rename in the other.

**Recovery** (:meth:`PartitionSwitcher.recover`, run before every read and write of an asset): a journal
whose lock can be taken belongs to a writer that died. For each of its partitions, if the versions table
names the journal's switch id, the partition is rolled forward (step 4); otherwise (the commit never
happened, or a later switch replaced the partition since) its staged file is deleted. Temporary files of
dead writers are deleted too.

**Moved entities.** A row is identified across partitions by an *entity key* (e.g. an id whose rows all
live in one partition). Writing partition B with an entity that the store holds in partition A removes it
from A in both stores, in the same switch: the move lands instead of violating a unique constraint, and
no entity is ever in two partitions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import psycopg
import pyarrow.parquet as pq
from psycopg import sql

from strava_pipeline.storage.block_range_summaries import summarize_later
from strava_pipeline.storage.databases import connect
from strava_pipeline.storage.files import PRIVATE_FILE_MODE, TMP_SUFFIX, fsync_dir, write_atomic
from strava_pipeline.storage.parquet_store import (
    PARQUET_OPTIONS,
    SCHEMA_FILENAME,
    ParquetStore,
    remove_day,
    rows_by_day,
)
from strava_pipeline.storage.postgres_writer import (
    PartitionWriteError,
    lock_days,
    prefer_indexes,
    replace_partitions,
)

__all__ = [
    "FOOTER_SWITCH_KEY",
    "Disagreement",
    "PartitionSwitcher",
    "SwitchResult",
]

SWITCH_DIRNAME = ".switches"
STAGED_SUFFIX = ".staged"
#: Key of the Parquet footer entry holding the switch id that wrote the file.
FOOTER_SWITCH_KEY = "strava_pipeline.switch_id"
#: The partition key of an unpartitioned table in the versions table.
WHOLE_TABLE = ""
_WORKERS = 8
_TMP_PID = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]+" + re.escape(TMP_SUFFIX) + "$")


@dataclass
class SwitchResult:
    """What one switch changed: its id, rows written, and the days entities moved away from."""

    switch_id: str
    rows: int
    moved_from: dict[date, int] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)  # switches of dead writers finished or undone first


@dataclass(frozen=True)
class Disagreement:
    """A partition whose two stores differ: rows, checksum and the switch id each one says wrote it."""

    partition: str
    postgres_rows: int
    parquet_rows: int
    postgres_switch: str | None
    parquet_switch: str | None
    postgres_sum: int | None = None
    parquet_sum: int | None = None

    def __str__(self) -> str:
        sums = f", sums {self.postgres_sum} vs {self.parquet_sum}" if self.postgres_sum != self.parquet_sum else ""
        return (
            f"{self.partition or 'whole table'}: PostgreSQL {self.postgres_rows} rows (switch "
            f"{self.postgres_switch or '-'}), Parquet {self.parquet_rows} rows (switch {self.parquet_switch or '-'})"
            f"{sums}"
        )


def _key(day: date | None) -> str:
    return WHOLE_TABLE if day is None else day.isoformat()


@dataclass
class _Journal:
    """The on-disk record of one switch (see the module docstring)."""

    switch_id: str
    asset: str
    table: str
    partitions: list[str]  # partition keys ('' for the whole table)
    removals: list[str]  # partitions that end with no file

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> _Journal:
        data = json.loads(text)
        return cls(**{name: data[name] for name in ("switch_id", "asset", "table", "partitions", "removals")})


class PartitionSwitcher:
    """Writes and recovers switches for the tables of one Parquet root and one PostgreSQL database."""

    def __init__(self, store: ParquetStore, database_url: str, *, versions_table: str) -> None:
        self.store = store
        self.database_url = database_url
        self.versions_table = versions_table

    # -- paths -------------------------------------------------------------------------------------

    @property
    def journal_dir(self) -> Path:
        return self.store.root / SWITCH_DIRNAME

    def _journal_path(self, asset: str, switch_id: str) -> Path:
        return self.journal_dir / f"{asset}.{switch_id}.json"

    def _final(self, asset: str, key: str) -> Path:
        if key == WHOLE_TABLE:
            return self.store.unpartitioned_path(asset)
        return self.store.partition_path(asset, date.fromisoformat(key))

    @staticmethod
    def _staged(final: Path, switch_id: str) -> Path:
        return final.with_name(f"{final.name}.{switch_id}{STAGED_SUFFIX}")

    # -- writing -----------------------------------------------------------------------------------

    def replace(
        self,
        asset: str,
        table: str,
        frame: pl.DataFrame,
        *,
        partition_column: str | None,
        partitions: Sequence[date] | None,
        entity_key: str | None = None,
    ) -> SwitchResult:
        """Make ``partitions`` of ``asset`` (or the whole table when ``None``) hold exactly ``frame``'s rows
        in both stores. Raises :class:`PartitionWriteError` (nothing changed) or ``ValueError``/``TypeError``
        for a frame that does not fit the partitions (checked before anything is written)."""
        recovered = self.recover(asset)
        switch_id = secrets.token_hex(8)
        days = None if partitions is None else sorted(set(partitions))
        groups = self._groups(asset, frame, partition_column, days)
        journal = _Journal(
            switch_id,
            asset,
            table,
            [_key(d) for d in days] if days is not None else [WHOLE_TABLE],
            [_key(d) for d in days or [] if d not in groups],
        )
        self.journal_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        journal_path = self._journal_path(asset, switch_id)
        with self._held(journal_path, journal) as state:
            try:
                with self._staging(asset, switch_id, groups, entity_key) as staged:
                    if days is not None and partition_column is not None:
                        write_atomic(self.store.asset_dir(asset) / SCHEMA_FILENAME,
                                     lambda tmp: _write(frame.clear(), tmp))
                    result = self._commit(journal_path, journal, frame, groups, partition_column, days, entity_key,
                                          state, staged)
            except BaseException:
                if not state["committed"]:
                    self._roll_back(journal)
                    state["finished"] = True
                # else: committed but not fully switched (e.g. a rename failed): the journal stays, and the
                # next read or write of the asset finishes the switch.
                raise
            state["finished"] = True
        result.recovered = recovered
        return result

    @staticmethod
    def _groups(
        asset: str, frame: pl.DataFrame, partition_column: str | None, days: list[date] | None
    ) -> dict[date | None, pl.DataFrame]:
        if days is None:
            return {None: frame}
        if partition_column is None:
            raise ValueError(f"{asset}: a partitioned write needs its partition column")
        return dict(rows_by_day(asset, frame, partition_column, days))

    @contextlib.contextmanager
    def _held(self, journal_path: Path, journal: _Journal) -> Iterator[dict[str, bool]]:
        """Write the journal and hold its lock for the switch's life; remove it once the switch is finished
        (committed and renamed, or rolled back). A journal left behind is what recovery works from."""
        fd = os.open(journal_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        state = {"committed": False, "finished": False}
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _rewrite(fd, journal)
            fsync_dir(journal_path.parent)
            yield state
        finally:
            if state["finished"]:
                journal_path.unlink(missing_ok=True)
                fsync_dir(journal_path.parent)
            os.close(fd)

    @contextlib.contextmanager
    def _staging(
        self, asset: str, switch_id: str, groups: dict[date | None, pl.DataFrame], entity_key: str | None
    ) -> Iterator[Callable[[], None]]:
        """Write the staged files in worker threads while the caller goes on, and yield a function that waits
        for them all, raising the first failure. Overlapping them with the PostgreSQL transaction took a
        quarter's write of 600,000 samples from 1.27 to 1.0 s (the frame of benchmarks/replace_memory.py).
        Leaving waits for every writer (unstarted ones are cancelled), so a roll-back never races one."""

        def stage(item: tuple[date | None, pl.DataFrame]) -> None:
            day, part = item
            staged = self._staged(self._final(asset, _key(day)), switch_id)
            try:
                write_atomic(staged, lambda tmp: _write(part, tmp, switch_id, entity_key))
            except (OSError, pl.exceptions.ComputeError) as exc:  # polars reports ENOSPC as a ComputeError
                raise PartitionWriteError(
                    f"{asset}: cannot write the Parquet file for {_key(day) or 'the whole table'} under "
                    f"{self.store.asset_dir(asset)} ({exc}); nothing was changed in either store"
                ) from exc

        pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="stage")
        try:
            futures = [pool.submit(stage, item) for item in groups.items()]

            def wait() -> None:
                for future in futures:
                    future.result()

            yield wait
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _commit(
        self,
        journal_path: Path,
        journal: _Journal,
        frame: pl.DataFrame,
        groups: dict[date | None, pl.DataFrame],
        partition_column: str | None,
        days: list[date] | None,
        entity_key: str | None,
        state: dict[str, bool],
        staged: Callable[[], None],
    ) -> SwitchResult:
        try:
            conn = connect(self.database_url, autocommit=True)
        except psycopg.OperationalError as exc:
            which = f"{days[0]}..{days[-1]}" if days else "the whole table"
            raise PartitionWriteError(
                f"cannot reach PostgreSQL to write {journal.table} ({which}); nothing was written: {exc}"
            ) from None
        result = SwitchResult(journal.switch_id, frame.height)
        with conn:
            try:
                oid = _lock_partitions(conn, journal.table, days)
                with conn.transaction():
                    counts = {_key(day): part.height for day, part in groups.items()}
                    if days is not None and entity_key is not None and partition_column is not None and frame.height:
                        prefer_indexes(conn)
                        result.moved_from = self._move_entities(
                            conn, oid, journal, frame, partition_column, days, entity_key, counts
                        )
                        _rewrite_path(journal_path, journal)
                    replace_partitions(
                        conn, journal.table, frame, partition_column=partition_column or "", partitions=days
                    )
                    self._record_versions(conn, journal, counts)
                    staged()  # every Parquet file durable before the point of no return
                state["committed"] = True
            except psycopg.Error as exc:
                raise PartitionWriteError(f"writing {journal.table} failed, nothing was changed: {exc}") from exc
            # Leaving `with conn` closes the session, releasing the partition locks: only after the renames.
            self._roll_forward(journal)
        if frame.height:
            summarize_later(self.database_url, journal.table)
        return result

    def _move_entities(
        self,
        conn: psycopg.Connection,
        oid: int,
        journal: _Journal,
        frame: pl.DataFrame,
        partition_column: str,
        days: list[date],
        entity_key: str,
        counts: dict[str, int],
    ) -> dict[date, int]:
        """Remove, from partitions outside ``days``, the entities ``frame`` brings; restage those partitions."""
        keys = frame.get_column(entity_key).drop_nulls().unique().to_list()
        table, part, entity = _identifier(journal.table), sql.Identifier(partition_column), sql.Identifier(entity_key)
        rows = conn.execute(
            sql.SQL("SELECT {p}, count(*) FROM {t} WHERE {k} = ANY(%s) AND NOT ({p} = ANY(%s)) GROUP BY {p}").format(
                p=part, t=table, k=entity
            ),
            (keys, days),
        ).fetchall()
        moved = {day: int(n) for day, n in rows}
        if not moved:
            return {}
        lock_days(conn, "pg_advisory_lock", oid, sorted(moved))  # after the run's own days: a fixed order
        conn.execute(
            sql.SQL("DELETE FROM {t} WHERE {k} = ANY(%s) AND NOT ({p} = ANY(%s))").format(t=table, k=entity, p=part),
            (keys, days),
        )
        remaining = sorted(moved)
        for day in remaining:
            old = self.store.read(journal.asset, [day]).filter(~pl.col(entity_key).is_in(keys))
            key = _key(day)
            journal.partitions.append(key)
            counts[key] = old.height
            if old.height:
                staged = self._staged(self._final(journal.asset, key), journal.switch_id)
                write_atomic(staged, lambda tmp, old=old: _write(old, tmp, journal.switch_id, entity_key))
            else:
                journal.removals.append(key)
        return moved

    def _record_versions(self, conn: psycopg.Connection, journal: _Journal, counts: dict[str, int]) -> None:
        keys = journal.partitions
        conn.execute(
            sql.SQL(
                "INSERT INTO {v} (table_name, partition_key, switch_id, row_count) "
                "SELECT %s, k, %s, r FROM unnest(%s::text[], %s::bigint[]) AS u(k, r) "
                "ON CONFLICT (table_name, partition_key) DO UPDATE SET switch_id = excluded.switch_id, "
                "row_count = excluded.row_count, committed_at = now()"
            ).format(v=_identifier(self.versions_table)),
            (journal.table, journal.switch_id, keys, [counts.get(k, 0) for k in keys]),
        )

    # -- finishing and recovering --------------------------------------------------------------------

    def _roll_forward(self, journal: _Journal, keys: Sequence[str] | None = None) -> None:
        """Rename the staged files of ``keys`` (default: all) into place, unlink removals, fsync directories."""
        removals = set(journal.removals)

        def switch(key: str) -> None:
            final = self._final(journal.asset, key)
            staged = self._staged(final, journal.switch_id)
            if staged.exists():
                os.replace(staged, final)
                fsync_dir(final.parent)
            elif key in removals:
                remove_day(final)

        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            list(pool.map(switch, journal.partitions if keys is None else keys))

    def _roll_back(self, journal: _Journal, keys: Sequence[str] | None = None) -> None:
        """Delete the staged files (and their writers' temporary files) of ``keys`` (default: all)."""
        for key in journal.partitions if keys is None else keys:
            final = self._final(journal.asset, key)
            staged = self._staged(final, journal.switch_id)
            staged.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                for leftover in final.parent.glob(f".{staged.name}.*{TMP_SUFFIX}"):
                    leftover.unlink(missing_ok=True)
            if key != WHOLE_TABLE and not final.exists():
                with contextlib.suppress(OSError):
                    final.parent.rmdir()

    @staticmethod
    def has_pending(store: ParquetStore, asset: str) -> bool:
        """Whether a journal of ``asset`` exists (a switch running, or left by a dead writer): cheap."""
        directory = store.root / SWITCH_DIRNAME
        return directory.is_dir() and any(directory.glob(f"{asset}.*.json"))

    def recover(self, asset: str) -> list[str]:
        """Finish or undo the switches of ``asset`` whose writers died; return what was done, one line each."""
        done: list[str] = []
        if self.journal_dir.is_dir():
            for path in sorted(self.journal_dir.glob(f"{asset}.*.json")):
                if line := self._recover_one(path):
                    done.append(line)
        self._remove_dead_temp_files(asset)
        return done

    def _recover_one(self, path: Path) -> str | None:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None  # finished meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # its writer is alive
            text = os.pread(fd, 1 << 24, 0).decode("utf-8", "replace")
            if not text.strip():  # killed between creating and writing it: nothing was staged yet
                path.unlink(missing_ok=True)
                return None
            journal = _Journal.from_json(text)
            committed = self._committed(journal)
            forward = [key for key in journal.partitions if key in committed]
            back = [key for key in journal.partitions if key not in committed]
            self._roll_forward(journal, forward)
            self._roll_back(journal, back)
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)
            return (
                f"{journal.table}: finished an interrupted write of {len(forward)} partitions and undid "
                f"{len(back)} (switch {journal.switch_id})"
            )
        finally:
            os.close(fd)

    def _committed(self, journal: _Journal) -> set[str]:
        """Partitions whose latest committed version is the journal's switch (taking their locks first)."""
        days = (
            None if journal.partitions == [WHOLE_TABLE] else sorted(date.fromisoformat(k) for k in journal.partitions)
        )
        with connect(self.database_url, autocommit=True) as conn:
            _lock_partitions(conn, journal.table, days)
            rows = conn.execute(
                sql.SQL("SELECT partition_key FROM {v} WHERE table_name = %s AND switch_id = %s").format(
                    v=_identifier(self.versions_table)
                ),
                (journal.table, journal.switch_id),
            ).fetchall()
        return {key for (key,) in rows}

    def _remove_dead_temp_files(self, asset: str) -> None:
        """Temporary files of writers that no longer exist (their pid is in the name) in the asset's folder."""
        directory = self.store.asset_dir(asset)
        if not directory.is_dir():
            return
        for leftover in directory.glob(f".*{TMP_SUFFIX}"):
            match = _TMP_PID.match(leftover.name)
            if match and not psutil.pid_exists(int(match["pid"])):
                leftover.unlink(missing_ok=True)

    # -- comparing -----------------------------------------------------------------------------------

    def compare(
        self,
        asset: str,
        table: str,
        partition_column: str | None,
        days: Sequence[date] | None,
        *,
        checksum_column: str | None = None,
    ) -> list[Disagreement]:
        """Partitions (``days``, or the whole table) whose two stores differ: in rows, in the switch that
        wrote them, or in the sum of ``checksum_column`` (an integer column: a row swapped for another
        keeps the count but changes the sum).

        A partition written before switches existed has no version in either store; its rows and sums
        must still agree.
        """
        keys = [WHOLE_TABLE] if days is None else [_key(d) for d in sorted(set(days))]
        total = sql.SQL("sum({})::text").format(sql.Identifier(checksum_column)) if checksum_column else sql.SQL("''")
        with connect(self.database_url) as conn:
            if days is None:
                rows = conn.execute(
                    sql.SQL("SELECT '', count(*), {s} FROM {t}").format(s=total, t=_identifier(table))
                ).fetchall()
            else:
                prefer_indexes(conn)
                rows = conn.execute(
                    sql.SQL("SELECT {p}::text, count(*), {s} FROM {t} WHERE {p} = ANY(%s) GROUP BY 1").format(
                        p=sql.Identifier(partition_column or ""), s=total, t=_identifier(table)
                    ),
                    (sorted(set(days)),),
                ).fetchall()
            in_postgres = {key: (int(n), _sum(checksum)) for key, n, checksum in rows}
            versions = dict(
                conn.execute(
                    sql.SQL(
                        "SELECT partition_key, switch_id FROM {v} WHERE table_name = %s AND partition_key = ANY(%s)"
                    ).format(v=_identifier(self.versions_table)),
                    (table, keys),
                ).fetchall()
            )

        def in_parquet(key: str) -> tuple[int, int | None, str | None]:
            path = self._final(asset, key)
            if not path.is_file():
                return 0, None, None
            meta = pq.read_metadata(path)
            footer = meta.metadata or {}
            switch = footer.get(FOOTER_SWITCH_KEY.encode())
            checksum = None
            if checksum_column and meta.num_rows:
                stored = footer.get(_footer_sum_key(checksum_column).encode())
                checksum = _sum(stored.decode() if stored is not None else  # a file from before footers had sums
                                pl.read_parquet(path, columns=[checksum_column]).get_column(checksum_column).sum())
            return meta.num_rows, checksum, switch.decode() if switch else None

        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            found = dict(zip(keys, pool.map(in_parquet, keys), strict=True))
        problems = []
        for key in keys:
            parquet_rows, parquet_sum, parquet_switch = found[key]
            postgres_rows, postgres_sum = in_postgres.get(key, (0, None))
            postgres_switch = versions.get(key)
            if parquet_rows == 0 and postgres_rows == 0:
                continue  # no rows in either (a removed day keeps its version row; it has no file)
            if (postgres_rows, postgres_sum, postgres_switch) != (parquet_rows, parquet_sum, parquet_switch):
                problems.append(Disagreement(key, postgres_rows, parquet_rows, postgres_switch, parquet_switch,
                                            postgres_sum, parquet_sum))
        return problems


def _sum(value: object) -> int | None:
    """A column sum as an int from either store (PostgreSQL's numeric arrives as text, polars' as int)."""
    return None if value in (None, "") else int(str(value))


def _write(frame: pl.DataFrame, path: Path, switch_id: str | None = None, sum_column: str | None = None) -> None:
    """Write a Parquet file whose footer names its switch and, for ``sum_column``, the column's sum: what
    :meth:`PartitionSwitcher.compare` needs, read from the footer alone."""
    metadata = {}
    if switch_id:
        metadata[FOOTER_SWITCH_KEY] = switch_id
    if sum_column and sum_column in frame.columns:
        metadata[_footer_sum_key(sum_column)] = str(frame.get_column(sum_column).sum())
    frame.write_parquet(path, **PARQUET_OPTIONS, metadata=metadata or None)


def _footer_sum_key(column: str) -> str:
    return f"strava_pipeline.sum.{column}"


def _rewrite(fd: int, journal: _Journal) -> None:
    data = journal.to_json().encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _rewrite_path(path: Path, journal: _Journal) -> None:
    """Rewrite the (locked) journal in place: it grew partitions that entities move out of."""
    fd = os.open(path, os.O_RDWR)
    try:
        _rewrite(fd, journal)
    finally:
        os.close(fd)


def _identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))


def _table_oid(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute("SELECT %s::regclass::oid::int8", (_identifier(table).as_string(conn),)).fetchone()
    assert row is not None
    return int(row[0])


def _lock_partitions(conn: psycopg.Connection[Any], table: str, days: list[date] | None) -> int:
    """Session locks on the partitions (the same keys ``replace_partitions`` takes for its transaction),
    held until the connection closes: through the renames that follow the commit."""
    oid = _table_oid(conn, table)
    if days is None:
        conn.execute("SELECT pg_advisory_lock(%s::int8)", (oid,))
    else:
        lock_days(conn, "pg_advisory_lock", oid, days)
    return oid
