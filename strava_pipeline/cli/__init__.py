"""The `strava-pipeline` command.

Each subcommand's work lives with the layer it drives (simulator, backfill, demo, storage); this module
only parses arguments, so `strava-pipeline --help` is the one place a user discovers what the product
can do.

``backfill``, ``sync``, ``import`` and ``demo`` end within seconds on Ctrl-C or SIGTERM, even while their
fetch threads wait minutes (or until midnight) for a rate-limit window: see :func:`run_interruptible`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from strava_pipeline.settings import Settings
from strava_pipeline.storage.files import keep_created_files_private

INTERRUPTED_MESSAGE = "interrupted: finished batches are kept; run the same command again to continue"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _watch_stop_signals(received: list[int]) -> Callable[[], None]:
    """Set the limiter's ``SHUTDOWN`` on SIGINT/SIGTERM whatever Python handler is installed; returns an undo.

    Dagster replaces both handlers while a run executes (raising its own interrupt in the main thread only),
    so a handler of ours would not see a signal arriving mid-run, and threads waiting for a rate-limit window
    would keep the process alive. Python writes every handled signal's number to the wakeup fd regardless of
    the handler, and nothing else in the process claims that fd.
    """
    from strava_pipeline.strava.rate_limiter import SHUTDOWN

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread: handlers can't be ours either
        reader.close()
        writer.close()
        return lambda: None

    def watch() -> None:
        while data := reader.recv(64):
            for signum in data:
                if signum in _STOP_SIGNALS:
                    received.append(signum)
                    SHUTDOWN.set()

    thread = threading.Thread(target=watch, name="stop-signal-watch", daemon=True)
    thread.start()

    def undo() -> None:
        signal.set_wakeup_fd(previous)
        writer.shutdown(socket.SHUT_RDWR)
        thread.join(1)
        writer.close()
        reader.close()

    return undo


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: Dagster wraps a step's errors) is an interruption."""
    from dagster import DagsterExecutionInterruptedError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt | DagsterExecutionInterruptedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def run_interruptible(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command so that SIGINT/SIGTERM end it within seconds: 130/143 and one line, no traceback.

    A stop signal sets the limiter's ``SHUTDOWN`` (every rate-limit wait ends, no new request starts) and
    raises ``KeyboardInterrupt`` in the main thread, or Dagster's interrupt inside a run, which then ends as
    failed. Every batch committed before stays; writes are atomic, so nothing is half there.
    """
    from strava_pipeline.strava.rate_limiter import SHUTDOWN

    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        first = not SHUTDOWN.is_set()
        received.append(signum)
        SHUTDOWN.set()
        if first:  # a second signal must not break the clean-up under way with another exception
            raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, on_signal) for signum in _STOP_SIGNALS}
    undo_watch = _watch_stop_signals(received)
    try:
        return func(args)
    except BaseException as exc:
        if not (SHUTDOWN.is_set() or _is_interrupt(exc)):
            raise
        sys.stdout.flush()
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    finally:
        undo_watch()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _today() -> date:
    return datetime.now(UTC).date()


def freeze_loaded_objects() -> None:
    """Hide what the command has loaded so far (modules, classes, the code location: ~250,000 objects) from
    the cyclic garbage collector, once its heavy imports are done.

    They live until the process ends, yet each full collection during a backfill walked them all, and the
    interpreter's collections at exit walked them again (0.6 s between the command's last line and its exit).
    Measured on a 1,000-activity mirror backfill with the streams landed beforehand, two runs each:
    collections during the run 0.75 / 0.67 -> 0.45 / 0.56 s, exit 0.53 / 0.66 -> 0.07 s. What is allocated
    afterwards is collected as usual; the frozen objects are freed at exit as before, minus the scans. Once
    per process: a second call (a test calling commands in-process) would hide the garbage made since.
    """
    if not gc.get_freeze_count():
        gc.freeze()


def cmd_backfill(args: argparse.Namespace) -> int:
    """Backfill a date range headlessly (no daemon), batch by batch."""
    from strava_pipeline.cli.backfill import preflight, run_backfill
    from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment

    base = Settings.from_env()
    start = args.start or base.history_start
    end = args.end or _today()
    select = [s.strip() for s in args.select.split(",")] if args.select else None
    preflight(base, start, end, select)  # wrong arguments or settings fail here, before the database starts
    freeze_loaded_objects()
    with pipeline_environment(base) as settings, dagster_instance() as instance:
        run_backfill(settings, start, end, select=select, instance=instance, log_level=args.log_level,
                     refetch=args.refetch)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Materialise the athlete and the most recent days: what the daily schedule does."""
    from strava_pipeline.cli.backfill import BackfillUsageError, preflight, run_backfill
    from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment

    if args.lookback_days < 1:
        raise BackfillUsageError(f"--lookback-days {args.lookback_days}: give at least 1 (today only)")
    base = Settings.from_env()
    end = _today()
    first = end - timedelta(days=args.lookback_days - 1)
    preflight(base, first, end, None)
    freeze_loaded_objects()
    with pipeline_environment(base) as settings, dagster_instance() as instance:
        run_backfill(settings, first, end, instance=instance, log_level=args.log_level, command="sync")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a Strava export archive (zip or unpacked folder): zero API requests."""
    from pathlib import Path

    from strava_pipeline.cli.importing import run_import
    from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
    from strava_pipeline.export.archive import ArchiveError

    path = Path(args.path).expanduser()
    if not path.exists():
        print(f"strava-pipeline import: {path} does not exist (give the export_<id>.zip Strava e-mailed you, "
              "or the folder it unpacks to)", file=sys.stderr)
        return 2
    freeze_loaded_objects()
    with pipeline_environment(Settings.from_env()) as settings, dagster_instance() as instance:
        try:
            run_import(settings, path, instance=instance, log_level=args.log_level)
        except (ArchiveError, FileNotFoundError) as exc:
            print(f"strava-pipeline import: {exc}", file=sys.stderr)
            return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo against the built-in simulator."""
    from strava_pipeline.cli.demo import run_demo

    return run_demo()


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the Dagster UI and daemon against the same database (and, without credentials, the simulator)."""
    from strava_pipeline.cli.ui import run_ui

    return run_ui(args.host, args.port)


def cmd_auth(args: argparse.Namespace) -> int:
    """Connect a Strava account, or show the connection's status."""
    from strava_pipeline.cli.auth import main as auth_main

    return auth_main(args)


def cmd_auth_fittrackee(args: argparse.Namespace) -> int:
    """Connect a FitTrackee account for the FitTrackee sink, or show the connection's status."""
    from strava_pipeline.cli.auth import main_fittrackee

    return main_fittrackee(args)


def cmd_db_migrate(args: argparse.Namespace) -> int:
    """Apply pending schema migrations (the package's storage/sql/)."""
    from strava_pipeline.cli.runtime import pipeline_environment
    from strava_pipeline.storage.migrations import apply_migrations

    with pipeline_environment(Settings.from_env()) as settings:
        assert settings.database_url is not None
        applied = apply_migrations(settings.database_url)
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """``db url|shell|start|stop|status``: reach the database from psql, notebooks and BI tools."""
    from strava_pipeline.cli import db

    return db.main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="strava-pipeline",
        description="Mirror a Strava athlete's training history into Parquet and PostgreSQL.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="Backfill a simulated athlete end to end (no Strava account needed).",
        description="Start the built-in Strava simulator and the embedded PostgreSQL, backfill a year of a "
                    "simulated athlete through the whole pipeline and print a summary: no Strava account needed.",
    )
    demo.set_defaults(func=cmd_demo, interruptible=True)

    backfill = sub.add_parser("backfill", help="Backfill a date range headlessly, committing batch by batch.")
    backfill.add_argument("--start", type=_date_argument, help="first local date (default: history start)")
    backfill.add_argument("--end", type=_date_argument, help="last local date (default: today)")
    backfill.add_argument("--select", help="comma-separated asset names (default: all)")
    backfill.add_argument("--refetch", action="store_true",
                          help="request streams again for every activity in the range (rejected ones too), "
                               "ignoring landed rows and the landing cache")
    backfill.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")
    backfill.set_defaults(func=cmd_backfill, interruptible=True)

    importing = sub.add_parser(
        "import", help="Import a Strava export archive (export_<id>.zip or its folder): a full history, no API calls."
    )
    importing.add_argument("path", help="the archive Strava e-mailed you, or the folder it unpacks to")
    importing.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")
    importing.set_defaults(func=cmd_import, interruptible=True)

    sync = sub.add_parser("sync", help="Materialise the athlete and the most recent days.")
    sync.add_argument("--lookback-days", type=int, default=3, help="days to refresh, ending today (default 3)")
    sync.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")
    sync.set_defaults(func=cmd_sync, interruptible=True)

    ui = sub.add_parser("ui", help="Open the Dagster UI (webserver and daemon) on the same database.")
    ui.add_argument("--host", default="127.0.0.1", help="interface the Dagster UI binds to (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    ui.set_defaults(func=cmd_ui)

    db = sub.add_parser("db", help="The database: its URL, a SQL shell, keeping the embedded server running, "
                                   "migrations.")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="Apply pending schema migrations.")
    migrate.set_defaults(func=cmd_db_migrate)
    from strava_pipeline.cli import db as db_cli

    db_cli.add_arguments(db_sub)
    for name in ("url", "shell", "start", "stop", "status"):
        db_sub.choices[name].set_defaults(func=cmd_db)

    auth = sub.add_parser("auth", help="Connect a Strava account (OAuth in the browser), or show its status.")
    auth.add_argument("--status", action="store_true",
                      help="show the athlete, granted scopes, token expiry and last API usage (never a token)")
    auth.add_argument("--port", type=int, default=8721,
                      help="loopback port of the redirect http://127.0.0.1:PORT/exchange_token (default 8721)")
    auth.add_argument("--no-browser", "--paste", dest="paste", action="store_true",
                      help="print the URL and read the redirect URL pasted on stdin (machines without a browser)")
    auth.set_defaults(func=cmd_auth)
    auth_targets = auth.add_subparsers(dest="auth_target", metavar="{fittrackee}")
    fittrackee = auth_targets.add_parser(
        "fittrackee", help="Connect your FitTrackee account (the FitTrackee sink), or show its status.",
        description="Authorise the OAuth2 app of FITTRACKEE_URL (FITTRACKEE_CLIENT_ID/SECRET) in the browser; "
                    "its redirect URL must be http://127.0.0.1:PORT/callback.")
    fittrackee.add_argument("--status", action="store_true",
                            help="show the instance, user, granted scopes and token expiry (never a token)")
    fittrackee.add_argument("--port", type=int, default=8722,
                            help="loopback port of the redirect http://127.0.0.1:PORT/callback (default 8722)")
    fittrackee.add_argument("--no-browser", "--paste", dest="paste", action="store_true",
                            help="print the URL and read the redirect URL pasted on stdin")
    fittrackee.set_defaults(func=cmd_auth_fittrackee)

    from strava_pipeline.simulator import cli as simulator_cli

    simulate = sub.add_parser("simulate", help="Run the Strava-compatible simulator.")
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=simulator_cli.run)
    return parser


def _date_argument(value: str) -> date:
    """A ``YYYY-MM-DD`` argument; argparse names the argument in front of this message."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: give YYYY-MM-DD, e.g. 2024-01-31") from None


def _user_errors() -> dict[type[BaseException], int]:
    """Errors a user fixes from the message alone (a setting, a path, a subscription), by exit code: they get
    one line, not a traceback (``--debug`` shows it). 2: the configuration is wrong; 1: the world said no."""
    from strava_pipeline.cli.backfill import ApiAccessError, BackfillUsageError
    from strava_pipeline.export.archive import ArchiveError
    from strava_pipeline.fittrackee import FitTrackeeAuthError, FitTrackeeConfigError
    from strava_pipeline.settings import SettingsError
    from strava_pipeline.storage.databases import DatabaseConnectionError, DatabaseUrlError
    from strava_pipeline.storage.embedded_postgres import EmbeddedPostgresError
    from strava_pipeline.strava import StravaAppInactiveError, StravaAuthError
    from strava_pipeline.transforms.sport_filter import SportTypesError

    return {SettingsError: 2, BackfillUsageError: 2, ApiAccessError: 2,
            DatabaseUrlError: 2, ArchiveError: 2, SportTypesError: 2, DatabaseConnectionError: 1,
            StravaAppInactiveError: 1, StravaAuthError: 1, FitTrackeeConfigError: 2, FitTrackeeAuthError: 1,
            EmbeddedPostgresError: 1}


def _user_error(exc: BaseException) -> tuple[BaseException, int] | None:
    """The user-fixable error behind ``exc`` (Dagster wraps an asset's errors), with its exit code."""
    known = _user_errors()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for kind, code in known.items():
            if isinstance(current, kind):
                return current, getattr(current, "exit_code", code)
        current = current.__cause__ or current.__context__ or getattr(current, "user_exception", None)
    return None


#: glibc's mallopt parameters (malloc.h): the number of malloc arenas, and the size from which a block is
#: its own mapping, given back to the system when freed.
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
#: Each setting as glibc's environment tunable (exported for child processes: the UI's webserver, daemon,
#: code server), its mallopt parameter and its default. 128 KiB is glibc's own initial threshold, kept fixed.
MALLOC_SETTINGS = {"MALLOC_ARENA_MAX": (_M_ARENA_MAX, "2"), "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, "131072")}


def tune_malloc() -> None:
    """Keep a long backfill's memory from ratcheting up in glibc's heap.

    - Arenas capped at 2: the many short-lived threads (stream fetches, Parquet writes) otherwise each grow an
      arena that is never returned. Measured with ``benchmarks/peers.py --ours-env MALLOC_ARENA_MAX=2``: peak
      RSS 868 -> 529 MiB (mirror, 100 ms), 1163 -> 596 MiB (full, 0 ms), same wall time.
    - The mmap threshold fixed at 128 KiB: glibc raises it to the size of each large block freed, after which
      every stream body and payload string (hundreds of KiB) came from the heap, whose freed pages stay
      resident. Measured the same way (``MALLOC_MMAP_THRESHOLD_=131072``): 490 -> 455 MiB, same wall time.

    A value the user exported wins. Not glibc (musl, macOS): nothing to tune."""
    for name, (parameter, default) in MALLOC_SETTINGS.items():
        value = os.environ.setdefault(name, default)
        with contextlib.suppress(AttributeError, OSError, ValueError):  # not glibc, or not a number
            ctypes.CDLL(None).mallopt(parameter, int(value))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    keep_created_files_private()
    tune_malloc()
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "interruptible", False):
            return int(run_interruptible(args.func, args) or 0)
        return int(args.func(args) or 0)
    except Exception as exc:
        found = None if args.debug else _user_error(exc)
        if found is None:
            raise
        error, code = found
        print(f"strava-pipeline {args.command}: {error}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
