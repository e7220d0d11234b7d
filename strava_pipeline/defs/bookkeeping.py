"""Dagster's own bookkeeping (event log, runs, schedules) made cheaper: commits that do not wait for the
disk, and one question fewer per check result.

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

Dagster's PostgreSQL event log also asks the database catalogue whether a table exists before storing each
check result (its checks table) and each batch of materialisations (its tags table): about 1.2 ms a time,
1.9 s of a two-year backfill. Once a table exists, that answer is remembered.
"""

from __future__ import annotations

import weakref
from typing import Any

from dagster_postgres.event_log import PostgresEventLogStorage
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine

from strava_pipeline.defs.check_result_batches import batch_check_results

#: The option added to each connection Dagster opens to PostgreSQL.
LAZY_COMMIT_OPTION = "-c synchronous_commit=off"


def _lazy_commits(dialect: Dialect, _record: Any, _args: Any, params: dict[str, Any]) -> None:
    if dialect.name == "postgresql" and LAZY_COMMIT_OPTION not in params.get("options", ""):
        params["options"] = f"{params.get('options', '')} {LAZY_COMMIT_OPTION}".strip()


_asks_the_catalogue = PostgresEventLogStorage.has_table
_tables_seen: weakref.WeakKeyDictionary[PostgresEventLogStorage, set[str]] = weakref.WeakKeyDictionary()


def _has_table(storage: PostgresEventLogStorage, table_name: str) -> bool:
    """Dagster's answer, remembered once true (migrations add tables; none removes one)."""
    seen = _tables_seen.setdefault(storage, set())
    if table_name in seen:
        return True
    answer = bool(_asks_the_catalogue(storage, table_name))
    if answer:
        seen.add(table_name)
    return answer


def lighten_dagster_bookkeeping() -> None:
    """From now on in this process, every PostgreSQL connection SQLAlchemy opens commits asynchronously and
    Dagster's PostgreSQL event logs remember which of their tables exist and store per-day check results in
    bulk (``check_result_batches``). Idempotent; call before the Dagster instance is created."""
    if not event.contains(Engine, "do_connect", _lazy_commits):
        event.listen(Engine, "do_connect", _lazy_commits)
    PostgresEventLogStorage.has_table = _has_table  # type: ignore[method-assign]
    batch_check_results()
