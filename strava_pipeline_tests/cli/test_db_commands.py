"""``strava-pipeline db url|shell|start|stop|status``, and the README's "Query your data" examples, against
a demo-like checkout: ``data/demo`` backfilled from the simulator into its own embedded PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil
import psycopg
import pytest

from strava_pipeline.cli.db import format_table, split_statements
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.embedded_postgres import (
    embedded_status,
    start_embedded_postgres,
    stop_embedded_postgres,
    wheel_pginstall,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DATABASE_URL_ENV = "STRAVA_PIPELINE_DATABASE_URL"
SECRET = "s3cr3t-pw"


def _plain_env(**extra: str) -> dict[str, str]:
    """Our environment without any setting of the product, the venv's scripts first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRAVA", "DAGSTER", "PG"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return {**env, **extra}


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None,
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strava_pipeline.cli", *args], cwd=cwd, env=env or _plain_env(),
                          input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


# --------------------------------------------------------------------------------------------------------
# Without a server


def test_db_url_prints_a_configured_url_with_the_password_masked(tmp_path: Path) -> None:
    url = f"postgresql://alice:{SECRET}@db.example.invalid:5432/strava"
    result = _cli("db", "url", cwd=tmp_path, env=_plain_env(**{DATABASE_URL_ENV: url}))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "postgresql://alice:***@db.example.invalid:5432/strava\n"
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["start", "stop"])
def test_db_start_and_stop_only_manage_the_embedded_server(tmp_path: Path, command: str) -> None:
    url = f"postgresql://alice:{SECRET}@db.example.invalid:5432/strava"
    env = _plain_env(**{DATABASE_URL_ENV: url, "STRAVA_PIPELINE_DATA_DIR": str(tmp_path / "data")})
    result = _cli("db", command, cwd=tmp_path, env=env)
    assert result.returncode == 2
    message = result.stdout + result.stderr
    assert len(message.strip().splitlines()) == 1, message
    assert DATABASE_URL_ENV in message and "only manage the embedded server" in message
    assert SECRET not in message
    assert not (tmp_path / "data" / "postgres").exists()


def test_statements_split_at_semicolons_outside_quotes_and_comments() -> None:
    script = [
        "SELECT 'a;b' AS s, \"odd;name\" FROM t; SELECT 2;\n",
        "SELECT $$x;\n", "y$$, $tag$;$tag$ -- a comment; still a comment\n",
        ";\n",
        "\\q\n",
        "SELECT 3",
    ]
    assert list(split_statements(script)) == [
        "SELECT 'a;b' AS s, \"odd;name\" FROM t",
        "SELECT 2",
        "SELECT $$x;\ny$$, $tag$;$tag$",
        "\\q",
        "SELECT 3",
    ]


def test_rows_are_printed_as_an_aligned_table() -> None:
    assert format_table(["sport", "n"], [("Run", 12), ("Ride", 3), (None, None)]).splitlines() == [
        " sport | n",
        "-------+----",
        " Run   | 12",
        " Ride  |  3",
        "       |",
        "(3 rows)",
    ]


# --------------------------------------------------------------------------------------------------------
# Against a backfilled demo-like checkout


@dataclass(frozen=True)
class Checkout:
    """A directory laid out like the checkout after `make demo`: ``data/demo`` holds the demo's data."""

    root: Path
    activities: int
    most_common_sport: str

    @property
    def demo_dir(self) -> Path:
        return self.root / "data" / "demo"


@pytest.fixture(scope="module")
def checkout() -> Iterator[Checkout]:
    root = Path(tempfile.mkdtemp(prefix="strava-db-cli-"))
    demo_dir = root / "data" / "demo"
    config = SimulatorConfig(seed=11, start_date=date(2024, 1, 1), end_date=date(2024, 1, 31), activities=14)
    sim = StravaSimulator(config).start()
    try:
        tokens = sim.authorize(scope="read,activity:read_all,profile:read_all")
        env = _plain_env(
            STRAVA_BASE_URL=sim.base_url, STRAVA_CLIENT_ID=str(sim.client_id), STRAVA_CLIENT_SECRET=sim.client_secret,
            STRAVA_REFRESH_TOKEN=tokens["refresh_token"], STRAVA_HISTORY_START=config.start_date.isoformat(),
            STRAVA_PIPELINE_DATA_DIR=str(demo_dir), STRAVA_RATE_WINDOW_SECONDS=str(config.window_seconds),
        )
        result = _cli("backfill", "--start", "2024-01-01", "--end", "2024-01-31", cwd=root, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        with start_embedded_postgres(demo_dir) as server, psycopg.connect(server.url) as conn:
            count = conn.execute("SELECT count(*) FROM strava.activities").fetchone()[0]
            sport = conn.execute("SELECT sport_type FROM strava.activities GROUP BY 1 "
                                 "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
        assert count == len(sim.activity_ids()) > 0
        assert not embedded_status(demo_dir).running
        yield Checkout(root=root, activities=count, most_common_sport=sport)
    finally:
        sim.stop()
        stop_embedded_postgres(demo_dir, force=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def demo(checkout: Checkout) -> Iterator[Checkout]:
    """The checkout, with its server stopped again after each test."""
    yield checkout
    stop_embedded_postgres(checkout.demo_dir, force=True)


def _connect_from_another_process(url: str) -> subprocess.CompletedProcess[str]:
    code = "import psycopg, sys; print(psycopg.connect(sys.argv[1]).execute('SELECT count(*) FROM strava.activities')" \
           ".fetchone()[0])"
    return subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.slow
def test_db_url_of_the_embedded_server_says_how_to_keep_it_running(demo: Checkout) -> None:
    result = _cli("db", "url", "--demo", cwd=demo.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"postgresql://postgres@/postgres?host={demo.demo_dir / 'postgres'}\n"
    assert "not running" in result.stderr and "strava-pipeline db start --demo" in result.stderr
    plain = _cli("db", "url", cwd=demo.root)  # the user's own data dir: nothing there, the demo's is named
    assert "add --demo" in plain.stderr


@pytest.mark.slow
def test_db_shell_runs_psql_on_piped_sql(demo: Checkout) -> None:
    assert os.access(wheel_pginstall() / "bin" / "psql", os.X_OK), "the wheel ships psql"
    sql = "SELECT count(*) AS activities FROM strava.activities;\n\\echo client :VERSION_NAME\n"
    result = _cli("db", "shell", "--demo", cwd=demo.root, stdin=sql)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[:4] == ["activities", "------------", str(demo.activities), "(1 row)"]
    assert re.search(r"^client 18\.", result.stdout, re.M), "psql (the server's version) answered"
    assert not embedded_status(demo.demo_dir).running, "a shell leaves no server behind"


@pytest.mark.slow
def test_db_shell_falls_back_to_a_minimal_prompt(demo: Checkout) -> None:
    env = _plain_env(STRAVA_PIPELINE_DATA_DIR=str(demo.demo_dir))
    sql = textwrap.dedent("""
        SELECT count(*) AS activities
          FROM strava.activities;
        SELECT 'a;b' AS s, $$x;y$$ AS t;  -- a comment; not a statement
        \\q
        SELECT 1/0;
    """)
    result = _cli("db", "shell", "--no-psql", cwd=demo.root, env=env, stdin=sql)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[:4] == [" activities", "------------", f" {demo.activities:>10}", "(1 row)"]
    assert " a;b | x;y" in result.stdout

    failing = _cli("db", "shell", "--no-psql", cwd=demo.root, env=env, stdin="SELECT 1/0;\nSELECT 7 AS seven;\n")
    assert failing.returncode == 1
    assert "division by zero" in failing.stderr
    assert "     7" in failing.stdout, "the next statement still ran"


@pytest.mark.slow
def test_db_start_keeps_the_server_for_other_processes_until_db_stop(demo: Checkout) -> None:
    status = _cli("db", "status", "--demo", cwd=demo.root)
    assert status.returncode == 3 and "not running" in status.stdout

    started = _cli("db", "start", "--demo", cwd=demo.root)
    assert started.returncode == 0, started.stderr
    url = _cli("db", "url", "--demo", cwd=demo.root).stdout.strip()
    assert started.stdout.strip().splitlines() == [
        f"embedded PostgreSQL running on {url} (kept running; stop it with: strava-pipeline db stop --demo)"]

    # The command that started it has exited; other tools (any process) connect.
    other = _connect_from_another_process(url)
    assert other.returncode == 0 and other.stdout.strip() == str(demo.activities), other.stderr
    # A command that uses the server and leaves does not stop a kept server.
    assert _cli("db", "shell", "--demo", "--no-psql", cwd=demo.root, stdin="SELECT 1;").returncode == 0
    pid = embedded_status(demo.demo_dir).pid
    assert pid is not None

    again = _cli("db", "start", "--demo", cwd=demo.root)
    assert again.returncode == 0 and "already running" in again.stdout
    assert embedded_status(demo.demo_dir).pid == pid

    status = _cli("db", "status", "--demo", cwd=demo.root)
    assert status.returncode == 0
    assert status.stdout.strip() == (f"embedded PostgreSQL running (pid {pid}) on {url}; kept running until "
                                     "`strava-pipeline db stop --demo`")

    stopped = _cli("db", "stop", "--demo", cwd=demo.root)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"stopped the embedded PostgreSQL of {demo.demo_dir}"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    stopped_again = _cli("db", "stop", "--demo", cwd=demo.root)
    assert stopped_again.returncode == 0
    assert stopped_again.stdout.strip() == f"the embedded PostgreSQL of {demo.demo_dir} is not running"
    assert _cli("db", "status", "--demo", cwd=demo.root).returncode == 3
    assert _connect_from_another_process(url).returncode != 0


@pytest.mark.slow
def test_db_stop_leaves_a_server_that_another_command_uses_unless_forced(demo: Checkout) -> None:
    code = textwrap.dedent(f"""
        import pathlib, sys
        from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
        with start_embedded_postgres(pathlib.Path({str(demo.demo_dir)!r})):
            print("holding", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], env=_plain_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        refused = _cli("db", "stop", "--demo", cwd=demo.root)
        assert refused.returncode == 1
        assert f"in use by process {holder.pid}" in refused.stdout and "--force" in refused.stdout
        assert embedded_status(demo.demo_dir).running

        forced = _cli("db", "stop", "--demo", "--force", cwd=demo.root)
        assert forced.returncode == 0 and "stopped" in forced.stdout
        assert not embedded_status(demo.demo_dir).running
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0, holder.stderr.read()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _readme_examples() -> list[tuple[str, str]]:
    """The fenced (language, code) blocks of the README's "Query your data" section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Query your data\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```(\w+)\n(.*?)```", text[start:end], flags=re.S)


@pytest.mark.slow
def test_the_readme_query_examples_work_after_the_demo(demo: Checkout) -> None:
    examples = _readme_examples()
    code = "\n".join(block for _, block in examples)
    for needed in ("db start --demo", "psql", "db shell --demo", "pl.read_database", "pl.scan_parquet", "duckdb",
                   "db stop --demo"):
        assert needed in code, f"the README's examples no longer show {needed}"
    pytest.importorskip("duckdb")
    env = _plain_env()
    if shutil.which("psql", path=env["PATH"]) is None:  # the README assumes a psql; lend it the wheel's
        env["PATH"] = f"{env['PATH']}{os.pathsep}{wheel_pginstall() / 'bin'}"
    outputs = []
    for language, block in examples:
        command = ["bash", "-e", "-o", "pipefail", "-c", block] if language == "sh" else [sys.executable, "-c", block]
        assert language in ("sh", "python"), language
        result = subprocess.run(command, cwd=demo.root, env=env, capture_output=True, text=True, timeout=180,
                                check=False)
        assert result.returncode == 0, (block, result.stdout, result.stderr)
        outputs.append(result.stdout)
    shell_output, *python_outputs, stop_output = outputs
    assert demo.most_common_sport in shell_output and "form_zone" in shell_output
    assert "week_start" in python_outputs[0]
    assert all(demo.most_common_sport in output for output in python_outputs[1:])
    assert "stopped" in stop_output
    assert not embedded_status(demo.demo_dir).running
