"""Shared fixtures: one embedded PostgreSQL server per session, a fresh database per test, and a
pipeline harness wired to a real simulator over HTTP."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from strava_pipeline.cli.backfill import BackfillReport, run_backfill
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import EmbeddedPostgres, start_embedded_postgres


@pytest.fixture(autouse=True)
def _restore_umask() -> Iterator[None]:
    """Give every test the umask the session started with: the CLI and ``strava_pipeline.definitions`` set
    the process umask to 077 (the product's privacy), which must not leak into the tests that follow."""
    umask = os.umask(0o077)
    os.umask(umask)
    yield
    os.umask(umask)


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


@dataclass
class Pipeline:
    """A simulator, a database and a data dir, with the environment pointing the pipeline at them."""

    sim: StravaSimulator
    settings: Settings
    database_url: str

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params or None).fetchall()

    def ids(self, table: str) -> list[int]:
        return [r[0] for r in self.query(f"SELECT activity_id FROM strava.{table} ORDER BY activity_id")]


@pytest.fixture
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """An in-memory Dagster instance for tests that inspect runs and events; disposed (with its temp dir)."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def make_pipeline(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Pipeline]]:
    """Start a simulator with the given config and configure the pipeline's environment for it."""
    started: list[StravaSimulator] = []

    def make(config: SimulatorConfig | None = None, *, scope: str = "read,activity:read_all,profile:read_all",
             history_start: date | None = None, **env: str) -> Pipeline:
        config = config or SimulatorConfig(seed=7, start_date=date(2024, 1, 1), end_date=date(2024, 3, 31),
                                           activities=40)
        sim = StravaSimulator(config).start()
        started.append(sim)
        tokens = sim.authorize(scope=scope)
        values = {
            "STRAVA_BASE_URL": sim.base_url,
            "STRAVA_CLIENT_ID": str(sim.client_id),
            "STRAVA_CLIENT_SECRET": sim.client_secret,
            "STRAVA_REFRESH_TOKEN": tokens["refresh_token"],
            "STRAVA_TOKEN_FILE": str(tmp_path / "tokens.json"),
            "STRAVA_HISTORY_START": (history_start or config.start_date).isoformat(),
            "STRAVA_PIPELINE_DATA_DIR": str(tmp_path / "data"),
            "STRAVA_PIPELINE_DATABASE_URL": pg_url,
            "STRAVA_RATE_WINDOW_SECONDS": str(config.window_seconds),
            **env,
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        return Pipeline(sim=sim, settings=Settings.from_env(), database_url=pg_url)

    yield make
    for sim in started:
        sim.stop()


#: A month of a small synthetic athlete: every sport kind, manual entries, GPS and power.
SMALL_ATHLETE_START, SMALL_ATHLETE_END = date(2024, 1, 1), date(2024, 1, 31)


@pytest.fixture
def backfilled(make_pipeline) -> Callable[..., tuple[Pipeline, BackfillReport]]:
    """Start the simulator and backfill every asset (checks and the report included) over the month."""

    def make(**kwargs: object) -> tuple[Pipeline, BackfillReport]:
        config = SimulatorConfig(seed=11, start_date=SMALL_ATHLETE_START, end_date=SMALL_ATHLETE_END, activities=14)
        p = make_pipeline(config, **kwargs)
        return p, run_backfill(p.settings, SMALL_ATHLETE_START, SMALL_ATHLETE_END, progress=lambda _: None)

    return make
