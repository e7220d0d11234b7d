"""Dagster's own bookkeeping (event log, runs, schedules) committed without waiting for the disk.

Every asset check is recorded per day, so a two-year backfill makes Dagster commit tens of thousands of small
transactions (an event row, the check's execution row, each its own commit), and each commit waited for a
WAL flush: about 0.8 ms apiece, a tenth of a backfill's wall time. With ``synchronous_commit=off`` on
Dagster's connections, PostgreSQL still never corrupts or half-applies anything; only an operating-system
crash or power cut can lose the last fraction of a second of Dagster's records. The athlete's data is not
affected: it is written on the pipeline's own psycopg connections, each partition switch committed
durably (see ``storage.partition_switch``). What such a crash can cost is Dagster forgetting a just-recorded
materialisation or check result, so the next run re-materialises that partition (which is idempotent), and
a run left "started", which the CLI fails on its next start (``stale_runs``).

The setting travels in the connection's start-up options, so it costs no extra round trip, and it is
installed for every SQLAlchemy engine of the process: the pipeline itself talks to PostgreSQL only through
psycopg 3, so those engines are Dagster's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine

#: The option added to each connection Dagster opens to PostgreSQL.
LAZY_COMMIT_OPTION = "-c synchronous_commit=off"


def _lazy_commits(dialect: Dialect, _record: Any, _args: Any, params: dict[str, Any]) -> None:
    if dialect.name == "postgresql" and LAZY_COMMIT_OPTION not in params.get("options", ""):
        params["options"] = f"{params.get('options', '')} {LAZY_COMMIT_OPTION}".strip()


def commit_dagster_bookkeeping_lazily() -> None:
    """Make every PostgreSQL connection SQLAlchemy opens from now on in this process use asynchronous
    commits (idempotent). Call before the Dagster instance is created."""
    if not event.contains(Engine, "do_connect", _lazy_commits):
        event.listen(Engine, "do_connect", _lazy_commits)
