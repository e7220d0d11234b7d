"""Process environment for everything the `strava-pipeline` command launches.

Dagster's instance and the IO managers both read the database URL from the environment. When the user
configures none, the embedded PostgreSQL server is started here, once, and its URL exported, so the CLI,
``strava-pipeline ui`` (webserver, daemon, code server) and every run process they spawn use the same
server. The instance configuration is the package's ``defs/dagster.yaml``, written into ``<data dir>/dagster``
(the ``DAGSTER_HOME`` unless the user set their own), so an installed wheel needs no checkout.

A configured URL is validated here before anything else happens, and the plain libpq form of it (a
SQLAlchemy ``postgresql+psycopg2://`` or a ``postgres://`` URL converted, see ``storage.databases``) is what
gets exported, since psycopg and dagster-postgres both read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import dagster as dg
import psycopg
import sqlalchemy.exc

from strava_pipeline.cli.stale_runs import fail_killed_runs, install_slot_wait_reporting
from strava_pipeline.defs import lighten_dagster_bookkeeping
from strava_pipeline.defs.resources import STRAVA_API_POOL
from strava_pipeline.settings import Settings
from strava_pipeline.storage.databases import DATABASE_URL_ENV, connect, normalize_database_url
from strava_pipeline.storage.embedded_postgres import EmbeddedPostgres, start_embedded_postgres
from strava_pipeline.storage.files import write_atomic
from strava_pipeline.storage.migrations import apply_migrations


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The persistent Dagster instance (``dagster.yaml``: storage in the pipeline's PostgreSQL).

    Headless backfills record their runs here, so the UI shows them like any other run. Call inside
    ``pipeline_environment``, which exports what ``dagster.yaml`` reads.

    The storages keep their connections open for the life of the command (Dagster's PostgreSQL
    storages otherwise open a connection per event: about 10 ms each, thousands of times in a backfill).
    No statement timeout: a run's own writes may legitimately take long. Dagster's commits do not wait
    for the disk (see ``defs.bookkeeping``); the athlete's data is committed durably as ever.

    Runs left in flight by a killed process are failed here and their Strava API slot freed (see
    ``stale_runs``): nothing else would, and every later run would wait for that slot forever.
    """
    install_slot_wait_reporting()
    lighten_dagster_bookkeeping()
    with dg.DagsterInstance.get() as instance:
        instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=10)
        _create_api_pool(instance)
        fail_killed_runs(instance)
        yield instance


def _create_api_pool(instance: dg.DagsterInstance) -> None:
    """Create the Strava API pool's limit row before any run needs it.

    Dagster creates it on a step's first claim with an INSERT that falls back to an UPDATE inside the
    same PostgreSQL transaction, which the failed INSERT has already aborted: two processes claiming the
    pool for the first time at the same moment (two backfills started together on a new database) made
    one of them fail. Here the loser of that race just finds the row the winner created.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or STRAVA_API_POOL in storage.get_concurrency_keys():
        return
    try:
        storage.initialize_concurrency_limit_to_default(STRAVA_API_POOL)
    except sqlalchemy.exc.DBAPIError:
        if STRAVA_API_POOL not in storage.get_concurrency_keys():
            raise


# Arbitrary constant identifying "creating Dagster's tables" among this database's advisory locks.
_DAGSTER_STORAGE_LOCK_KEY = 0x5354_5241_5641_4447  # "STRAVADG"
# The table each of dagster-postgres's three storages looks for before creating its tables.
_DAGSTER_MAIN_TABLES = ("runs", "event_logs", "jobs")


def create_dagster_storage(database_url: str) -> None:
    """Create Dagster's run, event-log and schedule tables in a new database, one process at a time.

    Each dagster-postgres storage creates its tables when it finds them missing, and its retry only covers
    a duplicate *table*: two processes doing it at once (two backfills started together on a new database,
    or the UI's daemon and webserver) made one of them fail with ``type "instigators" already exists``.
    Here the first process creates them under an advisory lock; the others wait for it, then find them.
    A database that already has them costs one query.
    """
    with connect(database_url, autocommit=True) as conn:
        if _dagster_tables_exist(conn):
            return
        conn.execute("SELECT pg_advisory_lock(%s)", (_DAGSTER_STORAGE_LOCK_KEY,))
        try:
            if not _dagster_tables_exist(conn):
                with dg.DagsterInstance.get():
                    pass  # constructing the storages creates their tables
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_DAGSTER_STORAGE_LOCK_KEY,))


def _dagster_tables_exist(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest(%s::text[]) AS t", (list(_DAGSTER_MAIN_TABLES),)
    ).fetchone()
    return bool(row and row[0])


def instance_config() -> str:
    """The Dagster instance configuration the package ships (storage in the pipeline's PostgreSQL)."""
    return resources.files("strava_pipeline.defs").joinpath("dagster.yaml").read_text(encoding="utf-8")


def _dagster_home(dagster_dir: Path) -> Path:
    """The folder holding ``dagster.yaml``: the user's DAGSTER_HOME if set, else ``dagster_dir`` with the
    package's configuration written into it (refreshed when the package's changes)."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        return Path(configured)
    config = instance_config()
    path = dagster_dir / "dagster.yaml"
    if not path.is_file() or path.read_text(encoding="utf-8") != config:
        write_atomic(path, config)
    return dagster_dir


@contextmanager
def pipeline_environment(settings: Settings, *, keep_database_running: bool = False) -> Iterator[Settings]:
    """Export the variables Dagster needs, start the embedded database if none is configured.

    Yields the settings re-read from the prepared environment (with the database URL filled in). The
    embedded server is stopped on exit unless another process still holds it or
    ``keep_database_running`` is set. A malformed configured URL raises
    :class:`~strava_pipeline.storage.databases.DatabaseUrlError` before any directory or server is touched.
    """
    configured = normalize_database_url(settings.database_url) if settings.database_url else None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    dagster_dir = settings.data_dir / "dagster"
    (dagster_dir / "logs").mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(_dagster_home(dagster_dir))
    os.environ.setdefault("STRAVA_PIPELINE_DAGSTER_DIR", str(dagster_dir))
    os.environ.setdefault("STRAVA_PIPELINE_DAGSTER_LOGS_DIR", str(dagster_dir / "logs"))
    server: EmbeddedPostgres | None = None
    previous = os.environ.get(DATABASE_URL_ENV)
    if configured is None:
        server = start_embedded_postgres(settings.data_dir, keep_running=keep_database_running)
        os.environ[DATABASE_URL_ENV] = server.url
    else:
        os.environ[DATABASE_URL_ENV] = configured
    try:
        prepared = Settings.from_env()
        assert prepared.database_url is not None
        apply_migrations(prepared.database_url)
        create_dagster_storage(prepared.database_url)
        yield prepared
    finally:
        if previous is None:
            os.environ.pop(DATABASE_URL_ENV, None)
        else:
            os.environ[DATABASE_URL_ENV] = previous
        if server is not None and not keep_database_running:
            server.stop()
