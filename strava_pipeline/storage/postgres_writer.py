"""Replace whole day-partitions of a PostgreSQL table with the rows of a polars frame, atomically.

One transaction: take advisory locks, ``DELETE`` the partitions, binary ``COPY`` the new rows.  Readers
see the old or the new day, never a mix; a failure (bad data, dropped connection) leaves the old rows.

Locking: every partitioned write takes a *shared* transaction-level advisory lock on the table and an
*exclusive* one on each (table, day), in day order; a whole-table replace (``partitions=None``) takes the
table lock exclusively.  Two writers of the same day therefore run one after the other (the second's
DELETE sees the first's committed rows, so there are no duplicates), writers of different days run in
parallel, and the fixed lock order rules out deadlocks between writers.

The binary encoding must match the target column types exactly, so they are read from the catalog (once
per connection and table) rather than inferred from the frame.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import polars as pl
import psycopg
from psycopg import sql

from strava_pipeline.storage.pg_binary_copy import (
    COPY_HEADER,
    COPY_TRAILER,
    PG_TYPES,
    PgType,
    UnsupportedTypeError,
    encode_table,
    prepare_frame,
)

__all__ = ["DEFAULT_CHUNK_ROWS", "PartitionWriteError", "TableColumn", "replace_partitions", "table_columns"]

DEFAULT_CHUNK_ROWS = 100_000


class PartitionWriteError(RuntimeError):
    """Loading failed inside the database (the transaction was rolled back); names table and partitions."""


@dataclass(frozen=True)
class TableColumn:
    name: str
    type_oid: int  # base type (domains resolved)
    type_name: str  # as declared, for messages
    not_null: bool
    has_default: bool


@dataclass(frozen=True)
class _TableInfo:
    oid: int
    columns: tuple[TableColumn, ...]


_CATALOG_QUERY = """
SELECT a.attname,
       COALESCE(NULLIF(t.typbasetype, 0), t.oid)::int8,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       a.atthasdef OR a.attidentity <> ''
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

_cache: weakref.WeakKeyDictionary[psycopg.Connection, dict[str, _TableInfo]] = weakref.WeakKeyDictionary()


def _identifier(table: str) -> sql.Identifier:
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"table must be 'table' or 'schema.table', got {table!r}")
    return sql.Identifier(*parts)


def _table_info(conn: psycopg.Connection, table: str) -> _TableInfo:
    per_conn = _cache.setdefault(conn, {})
    info = per_conn.get(table)
    if info is None:
        regclass = _identifier(table).as_string(conn)
        row = conn.execute("SELECT %s::regclass::oid::int8", (regclass,)).fetchone()
        assert row is not None
        columns = tuple(
            TableColumn(name, type_oid, type_name, not_null, has_default)
            for name, type_oid, type_name, not_null, has_default in conn.execute(_CATALOG_QUERY, (regclass,))
        )
        info = per_conn[table] = _TableInfo(int(row[0]), columns)
    return info


def table_columns(conn: psycopg.Connection, table: str) -> tuple[TableColumn, ...]:
    """Columns of ``table`` that COPY can load, in table order (cached per connection)."""
    return _table_info(conn, table).columns


def _plan(table: str, frame: pl.DataFrame, columns: Sequence[TableColumn]) -> list[tuple[str, PgType]]:
    """Match frame columns to table columns by name; refuse missing, extra and unsupported columns."""
    by_name = {c.name: c for c in columns}
    extra = [name for name in frame.columns if name not in by_name]
    if extra:
        raise ValueError(f"{table}: frame has columns that the table does not: {extra}")
    missing = [c.name for c in columns if c.name not in frame.columns and not c.has_default]
    if missing:
        raise ValueError(f"{table}: frame lacks table columns {missing}")
    plan = []
    for name in frame.columns:
        column = by_name[name]
        pg = PG_TYPES.get(column.type_oid)
        if pg is None:
            raise UnsupportedTypeError(f"{table}.{name}: column type {column.type_name} is not supported")
        plan.append((name, pg))
    return plan


def _check_partitions(table: str, frame: pl.DataFrame, partition_column: str, partitions: Sequence[date]) -> list[date]:
    if partition_column not in frame.columns:
        raise ValueError(f"{table}: partition column {partition_column!r} is not in the frame")
    days = sorted(set(partitions))
    if frame.height:
        values = frame.get_column(partition_column)
        if values.dtype != pl.Date:
            raise TypeError(f"{table}: partition column {partition_column!r} must be Date, got {values.dtype}")
        stray = frame.filter(~pl.col(partition_column).is_in(days) | pl.col(partition_column).is_null())
        if stray.height:
            found = stray.get_column(partition_column).unique().sort().to_list()
            raise ValueError(
                f"{table}: {stray.height} rows have {partition_column} outside the partitions being replaced "
                f"{[d.isoformat() for d in days]}: {found[:10]}"
            )
    return days


def _lock(conn: psycopg.Connection, table_oid: int, days: list[date] | None) -> None:
    if days is None:
        conn.execute("SELECT pg_advisory_xact_lock(%s::int8)", (table_oid,))
        return
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s::int8)", (table_oid,))
    key1 = table_oid - 2**32 if table_oid >= 2**31 else table_oid  # two-key form takes int4 keys
    for day in days:  # sorted: fixed lock order
        conn.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", (key1, day.toordinal()))


def _copy(
    conn: psycopg.Connection, copy_stmt: sql.Composed, prepared: pl.DataFrame, types: list[PgType], chunk_rows: int
) -> None:
    """Stream the encoded frame; chunk k+1 is encoded in a thread (numpy releases the GIL) while k is sent."""
    with conn.cursor() as cur, cur.copy(copy_stmt) as copy:
        copy.write(COPY_HEADER)
        n_chunks = -(-prepared.height // chunk_rows)

        def encode(k: int) -> memoryview:
            return memoryview(encode_table(prepared.slice(k * chunk_rows, chunk_rows).to_arrow(), types))

        if n_chunks == 1:
            copy.write(encode(0))
        elif n_chunks > 1:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgcopy-encode") as pool:
                pending = pool.submit(encode, 0)
                for k in range(n_chunks):
                    data = pending.result()
                    if k + 1 < n_chunks:
                        pending = pool.submit(encode, k + 1)
                    copy.write(data)
        copy.write(COPY_TRAILER)


def replace_partitions(
    conn: psycopg.Connection,
    table: str,
    frame: pl.DataFrame,
    *,
    partition_column: str,
    partitions: Sequence[date] | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Make ``partitions`` of ``table`` contain exactly the rows of ``frame``; return the rows loaded.

    ``partitions=None`` replaces the whole table.  A zero-row frame just deletes the partitions, which is
    how a day that no longer has data loses its stale rows.  All checks on the frame (columns, types,
    rows outside ``partitions``) raise ``ValueError``/``TypeError`` before the database is touched;
    database failures raise :class:`PartitionWriteError` after rollback.
    """
    table_sql = _identifier(table)
    days = None if partitions is None else _check_partitions(table, frame, partition_column, partitions)
    if days == [] and frame.height == 0:
        return 0
    try:
        info = _table_info(conn, table)
    except psycopg.Error as exc:
        raise PartitionWriteError(f"{table}: cannot read the table definition: {exc}") from exc
    plan = _plan(table, frame, info.columns)
    if partitions is not None and partition_column not in {name for name, _ in plan}:
        raise ValueError(f"{table}: partition column {partition_column!r} is not a column of the table")
    prepared = prepare_frame(frame, plan)
    types = [pg for _, pg in plan]
    copy_stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table_sql, sql.SQL(", ").join(sql.Identifier(name) for name, _ in plan)
    )
    try:
        with conn.transaction():
            _lock(conn, info.oid, days)
            if days is None:
                conn.execute(sql.SQL("DELETE FROM {}").format(table_sql))
            else:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(table_sql, sql.Identifier(partition_column)),
                    (days,),
                )
            if prepared.height:
                _copy(conn, copy_stmt, prepared, types, chunk_rows)
    except psycopg.Error as exc:
        _cache.get(conn, {}).pop(table, None)  # the table may have changed under us
        which = "all rows" if days is None else f"partitions {[d.isoformat() for d in days]}"
        raise PartitionWriteError(f"replacing {which} of {table} failed, nothing was changed: {exc}") from exc
    return prepared.height
