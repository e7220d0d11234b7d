"""Apply the numbered SQL files of ``storage/sql/`` (package data, so a wheel carries them), once each, in order.

Files are named ``NNNN_description.sql``.  Each applied file is recorded in ``schema_migrations`` with a
SHA-256 checksum, so editing a file after it was applied is reported instead of silently diverging.  Each
file runs in its own transaction (a failing file leaves no trace and is retried next time), and a
session-level advisory lock serialises concurrent migrators (e.g. the webserver and the daemon starting
together) so each file is applied exactly once.

Connections go through :func:`~strava_pipeline.storage.databases.connect`: this is where the product first
connects with the configured URL, so a malformed URL or an unreachable server is reported here, with the
variable named and the password masked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from strava_pipeline.storage.databases import connect

__all__ = [
    "DEFAULT_SQL_DIR",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "discover_migrations",
    "pending_migrations",
]

DEFAULT_SQL_DIR = Path(str(resources.files(__package__).joinpath("sql")))

# Arbitrary constant identifying "schema migrations" among advisory locks in this database.
_ADVISORY_LOCK_KEY = 0x5354_5241_5641_4D49  # "STRAVAMI"
_FILENAME = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.sql$")

_CREATE_TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The sql directory or the database's migration history is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    checksum: str

    def read_sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover_migrations(sql_dir: Path | None = None) -> list[Migration]:
    """List the migration files in ``sql_dir`` ordered by numeric version.

    Any ``*.sql`` file that does not follow ``NNNN_description.sql``, and two files with the same version,
    are errors: silently skipping a misnamed file would leave the schema incomplete.
    """
    directory = DEFAULT_SQL_DIR if sql_dir is None else Path(sql_dir)
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    migrations: dict[int, Migration] = {}  # keyed numerically: "1" and "0001" would be ambiguous
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files must be named NNNN_description.sql")
        version = match["version"]
        clash = migrations.get(int(version))
        if clash is not None:
            raise MigrationError(f"duplicate migration version {version}: {clash.path.name} and {path.name}")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        migrations[int(version)] = Migration(version, match["name"], path, checksum)
    return [migrations[key] for key in sorted(migrations)]


def _applied(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """version -> (name, checksum) of migrations recorded in the database ({} if never migrated)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


def _pending(migrations: list[Migration], applied: dict[str, tuple[str, str]]) -> list[Migration]:
    pending = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            pending.append(migration)
        elif recorded[1] != migration.checksum:
            raise MigrationError(
                f"migration {migration.path.name} was changed after it was applied "
                f"(checksum {recorded[1][:12]}… in the database, {migration.checksum[:12]}… on disk); "
                "add a new migration file instead of editing an applied one"
            )
    return pending


def pending_migrations(url: str, sql_dir: Path | None = None) -> list[str]:
    """Versions in ``sql_dir`` not yet applied to the database at ``url`` (raises on edited files)."""
    migrations = discover_migrations(sql_dir)
    with connect(url, autocommit=True) as conn:
        return [m.version for m in _pending(migrations, _applied(conn))]


def apply_migrations(url: str, sql_dir: Path | None = None) -> list[str]:
    """Apply every pending migration in version order; return the versions applied by this call.

    The advisory lock is taken before reading the history, so a second process waits, then sees the
    first one's work and applies nothing.  A failing file raises :class:`MigrationError` naming it; the
    files before it stay applied.  A malformed ``url`` raises
    :class:`~strava_pipeline.storage.databases.DatabaseUrlError`, a failed connection
    :class:`~strava_pipeline.storage.databases.DatabaseConnectionError`; neither message holds the password.
    """
    migrations = discover_migrations(sql_dir)
    newly_applied: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TRACKING_TABLE)
            for migration in _pending(migrations, _applied(conn)):
                try:
                    with conn.transaction():
                        # No parameters -> psycopg uses the simple query protocol, so a file may hold
                        # several statements.
                        conn.execute(migration.read_sql().encode("utf-8"))
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.path.name} failed: {exc}") from exc
                newly_applied.append(migration.version)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return newly_applied
