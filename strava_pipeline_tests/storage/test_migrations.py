"""Numbered SQL migrations: order, idempotence, per-file transactions, checksums, concurrent migrators."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from strava_pipeline.storage.migrations import (
    DEFAULT_SQL_DIR,
    MigrationError,
    apply_migrations,
    discover_migrations,
    pending_migrations,
)


def _write(sql_dir: Path, name: str, text: str) -> Path:
    path = sql_dir / name
    path.write_text(text)
    return path


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_default_sql_dir_ships_inside_the_package() -> None:
    """The migrations are package data, so an installed wheel finds them without a checkout."""
    import strava_pipeline.storage

    assert Path(strava_pipeline.storage.__file__).resolve().parent / "sql" == DEFAULT_SQL_DIR
    assert [m.version for m in discover_migrations()][:2] == ["0001", "0002"]


def test_applies_in_numeric_order_once(pg_url: str, sql_dir: Path) -> None:
    _write(sql_dir, "0002_add_column.sql", "ALTER TABLE a ADD COLUMN note text;")
    _write(sql_dir, "0001_create_a.sql", "CREATE TABLE a (id int);\nCREATE TABLE b (id int);")
    _write(sql_dir, "README.md", "not a migration")
    assert pending_migrations(pg_url, sql_dir) == ["0001", "0002"]
    assert apply_migrations(pg_url, sql_dir) == ["0001", "0002"]
    assert apply_migrations(pg_url, sql_dir) == []
    assert pending_migrations(pg_url, sql_dir) == []
    assert {"a", "b", "schema_migrations"} <= _tables(pg_url)
    _write(sql_dir, "0010_later.sql", "CREATE TABLE c (pct text DEFAULT '100%');")
    assert apply_migrations(pg_url, sql_dir) == ["0010"]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [("0001", "create_a"), ("0002", "add_column"), ("0010", "later")]


def test_failing_file_is_rolled_back_and_named(pg_url: str, sql_dir: Path) -> None:
    _write(sql_dir, "0001_ok.sql", "CREATE TABLE ok (id int);")
    _write(sql_dir, "0002_broken.sql", "CREATE TABLE half (id int);\nSELECT no_such_function();")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql"):
        apply_migrations(pg_url, sql_dir)
    tables = _tables(pg_url)
    assert "ok" in tables
    assert "half" not in tables  # the file's own transaction was rolled back
    assert pending_migrations(pg_url, sql_dir) == ["0002"]
    _write(sql_dir, "0002_broken.sql", "CREATE TABLE half (id int);")
    assert apply_migrations(pg_url, sql_dir) == ["0002"]


def test_edited_applied_file_is_an_error(pg_url: str, sql_dir: Path) -> None:
    _write(sql_dir, "0001_create.sql", "CREATE TABLE a (id int);")
    apply_migrations(pg_url, sql_dir)
    _write(sql_dir, "0001_create.sql", "CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match=r"0001_create\.sql was changed"):
        apply_migrations(pg_url, sql_dir)
    with pytest.raises(MigrationError, match=r"0001_create\.sql"):
        pending_migrations(pg_url, sql_dir)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"create.sql": "SELECT 1"}, "NNNN_description"),
        ({"0001_a.sql": "SELECT 1", "1_b.sql": "SELECT 1"}, "duplicate migration version"),
    ],
)
def test_bad_directory_contents(sql_dir: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        _write(sql_dir, name, text)
    with pytest.raises(MigrationError, match=message):
        discover_migrations(sql_dir)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        discover_migrations(tmp_path / "nope")


def test_concurrent_migrators_apply_each_file_once(pg_url: str, sql_dir: Path) -> None:
    _write(sql_dir, "0001_slow.sql", "SELECT pg_sleep(0.5);\nCREATE TABLE t1 (id int);")
    _write(sql_dir, "0002_next.sql", "CREATE TABLE t2 (id int);")
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            results.append(apply_migrations(pg_url, sql_dir))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(v for r in results for v in r) == ["0001", "0002"]


def test_an_upgraded_database_counts_and_checks_partitions_written_before_versions(pg_url: str, sql_dir: Path,
                                                                                    tmp_path: Path) -> None:
    """A database last migrated before ``partition_versions`` existed (0011): after upgrading, the UI's "Row
    count" (summed from the versions) still counts its old rows, and its old partitions, whose Parquet files
    carry no switch id, still pass stores_agree; a new write then updates only the days it replaced."""
    import shutil
    from datetime import date

    import polars as pl

    from strava_pipeline.defs.metadata import ROW_COUNT, total_rows_metadata
    from strava_pipeline.storage.parquet_store import ParquetStore
    from strava_pipeline.storage.partition_switch import PartitionSwitcher, _write

    for migration in discover_migrations():
        if migration.version <= "0011":
            shutil.copy(migration.path, sql_dir / migration.path.name)
    apply_migrations(pg_url, sql_dir)
    old = pl.DataFrame({"activity_id": [1, 2, 3], "activity_date": [date(2024, 5, 1), date(2024, 5, 1),
                                                                    date(2024, 5, 2)],
                        "fetched_at": ["2024-05-03T00:00:00Z"] * 3, "payload": ['{"id": 1}', '{"id": 2}', '{"id": 3}'],
                        "manual": [False] * 3})
    with psycopg.connect(pg_url) as conn:
        for row in old.iter_rows():
            conn.execute("INSERT INTO strava.activities_raw (activity_id, activity_date, fetched_at, payload, manual)"
                         " VALUES (%s, %s, %s, %s, %s)", row)
        conn.execute("INSERT INTO strava.gear (gear_id, name, gear_type, fetched_at) "
                     "VALUES ('b1', 'Bike', 'bike', now())")
    store = ParquetStore(tmp_path / "parquet")
    switcher = PartitionSwitcher(store, pg_url, versions_table="strava.partition_versions")
    for (day,), part in old.partition_by("activity_date", as_dict=True).items():
        path = switcher._final("activities_raw", day.isoformat())
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(part, path)  # as written before switch ids: no id in the footer

    assert apply_migrations(pg_url) == ["0012", "0013", "0014", "0015"]
    table = "strava.activities_raw"
    assert total_rows_metadata(pg_url, table, "strava.partition_versions") == {ROW_COUNT: 3}
    assert total_rows_metadata(pg_url, "strava.gear", "strava.partition_versions") == {ROW_COUNT: 1}
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT partition_key, switch_id, row_count FROM strava.partition_versions "
                                "WHERE table_name = %s ORDER BY 1", (table,)).fetchall()
    assert versions == [("2024-05-01", None, 2), ("2024-05-02", None, 1)]
    days = [date(2024, 5, 1), date(2024, 5, 2)]
    assert switcher.compare("activities_raw", table, "activity_date", days) == []

    new = old.filter(pl.col("activity_id") == 3).with_columns(activity_id=pl.lit(4, dtype=pl.Int64))
    new = pl.concat([new, new.with_columns(activity_id=pl.lit(5, dtype=pl.Int64))]).with_columns(
        pl.col("fetched_at").str.to_datetime(time_zone="UTC"),
        *(pl.lit(None, dtype=pl.String).alias(c) for c in ("summary_fingerprint", "rejected", "payload_text")))
    switcher.replace("activities_raw", table, new, partition_column="activity_date", partitions=[days[1]])
    assert total_rows_metadata(pg_url, table, "strava.partition_versions") == {ROW_COUNT: 4}
    assert switcher.compare("activities_raw", table, "activity_date", days) == []
