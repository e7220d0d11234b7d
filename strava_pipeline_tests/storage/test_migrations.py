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
