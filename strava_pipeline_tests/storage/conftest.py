"""Fixtures: one embedded PostgreSQL server per test session, and a fresh database per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import EmbeddedPostgres, start_embedded_postgres


def _make_data_dir() -> Path:
    # Not under pytest's tmp_path: as root the server runs as user ``embedded_postgres``, which needs to
    # traverse every parent directory, and pytest re-chmods /tmp/pytest-of-root to 0700 whenever another
    # pytest session starts, cutting a running server off from its own data directory.
    return Path(tempfile.mkdtemp(prefix="strava-pg-test-"))


@pytest.fixture
def pg_data_dir() -> Iterator[Path]:
    """An empty data dir for a test that starts its own server (removed afterwards)."""
    path = _make_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """A server of our own in a temporary data dir, stopped and removed at the end of the session."""
    path = _make_data_dir()
    try:
        with start_embedded_postgres(path) as server:
            yield server
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """URL of a database created for this test only, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_server.url, name)
    try:
        yield url
    finally:
        drop_database(pg_server.url, name)


@pytest.fixture
def pg_conn(pg_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_url) as conn:
        yield conn


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "sql"
    directory.mkdir()
    return directory
