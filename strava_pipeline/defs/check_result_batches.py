"""Per-day check results stored in bulk: a step's evaluations wait in memory and are written together, in
one transaction, just before the next event of the process is stored.

Every check records one evaluation per day, about 7,000 for a two-year backfill. Dagster's PostgreSQL event
log stores each on its own: an ``event_logs`` insert, a ``NOTIFY`` nobody listens to any more (Dagster's
own comment says so), and an update of the check's execution row, with the event serialised twice; about
2 ms apiece, the largest single cost of a backfill's main thread. Here a run's evaluations are kept until
any other event is stored (the check step's output or success, which always follows), or until
``BATCH_LIMIT`` are waiting, then written with one multi-row insert and one ``UPDATE ... FROM (VALUES ...)``,
serialised once.

Nothing else changes: the rows are Dagster's own, in event order (every event is stored only after the
waiting evaluations), and a step's results are all stored before its success is. Only evaluations of a run
with a partition wait; others (a runless report from the UI, an unpartitioned check) are stored as before.
If the process dies between an evaluation and the next event, that step's results are lost with the run
itself, which ``stale_runs`` then fails.

The rows a run plans for its checks (one per check and day, written when the run is created) are inserted
the same way, the planned event serialised once instead of once per day. And the materialisations a run's
evaluations name are read by one query of three columns (``materialization_targets``), where Dagster's
records API decoded each whole event.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster_postgres.event_log import PostgresEventLogStorage
from sqlalchemy.engine import Connection

from strava_pipeline.defs._dagster_private import (
    AssetCheckExecutionRecordStatus,
    DagsterInvariantViolationError,
    EventLogEntry,
)

_log = logging.getLogger("strava_pipeline.checks")

#: Evaluations kept in memory at most before they are written (a year of one check's days).
BATCH_LIMIT = 1000

#: An execution row's columns in the order of the update's VALUES, each row preceded by its index.
EXECUTION_COLUMNS = ("asset_key", "check_name", "run_id", "partition", "execution_status", "evaluation_event",
                     "evaluation_event_timestamp", "evaluation_event_storage_id", "materialization_event_storage_id")
VALUES_TEMPLATE = "(%s, %s, %s, %s, %s, %s, %s, %s::timestamp, %s::bigint, %s::bigint)"
#: Each evaluation's execution row, planned with the run (Dagster's unique index holds these four columns).
UPDATE_EXECUTIONS = (
    "UPDATE asset_check_executions AS t SET execution_status = v.status, evaluation_event = v.event, "
    "evaluation_event_timestamp = v.ts, evaluation_event_storage_id = v.event_id, "
    "materialization_event_storage_id = v.materialization_id "
    "FROM (VALUES {values}) AS v(i, asset_key, check_name, run_id, partition, status, event, ts, event_id, "
    "materialization_id) WHERE t.asset_key = v.asset_key AND t.check_name = v.check_name "
    "AND t.run_id = v.run_id AND t.partition = v.partition RETURNING v.i"
)

#: The columns of a planned execution row, as Dagster fills them.
PLANNED_COLUMNS = ("asset_key", "check_name", "partition", "run_id", "execution_status", "evaluation_event",
                   "evaluation_event_timestamp", "evaluation_event_storage_id")

_stores_one = PostgresEventLogStorage.store_event
_stores_batch = PostgresEventLogStorage.store_event_batch


class _Waiting:
    """The evaluations a storage has not written yet, with the lock its threads share."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.events: list[EventLogEntry] = []


_waiting: weakref.WeakKeyDictionary[PostgresEventLogStorage, _Waiting] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _of(storage: PostgresEventLogStorage) -> _Waiting:
    with _registry_lock:
        return _waiting.setdefault(storage, _Waiting())


def _waits(event: EventLogEntry) -> bool:
    dagster_event = event.dagster_event
    return bool(
        event.run_id
        and dagster_event is not None
        and dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and dagster_event.event_specific_data.partition is not None  # type: ignore[union-attr]
    )


def _store_event(storage: PostgresEventLogStorage, event: EventLogEntry) -> None:
    waiting = _of(storage)
    with waiting.lock:
        if _waits(event):
            waiting.events.append(event)
            if len(waiting.events) >= BATCH_LIMIT:
                flush(storage)
            return
        flush(storage)
        _stores_one(storage, event)


def _store_event_batch(storage: PostgresEventLogStorage, events: Sequence[EventLogEntry]) -> None:
    with _of(storage).lock:
        flush(storage)
        _stores_batch(storage, events)


def flush(storage: PostgresEventLogStorage) -> None:
    """Write the evaluations waiting for ``storage``: their events, then their execution rows, in one
    transaction (a failure stores none of them and is raised to whoever stored the next event)."""
    waiting = _of(storage)
    with waiting.lock:
        events, waiting.events = waiting.events, []
        if events:
            _write(storage, events)


def _write(storage: PostgresEventLogStorage, events: list[EventLogEntry]) -> None:
    rows = [storage._event_to_row(event) for event in events]
    columns = list(rows[0])
    with storage.index_transaction() as conn:
        event_ids = [int(row[0]) for row in _insert(
            conn, "event_logs", columns, [tuple(row[c] for c in columns) for row in rows], returning="id")]
        executions = [_execution_row(storage, event, row["event"], event_id)
                      for event, row, event_id in zip(events, rows, event_ids, strict=True)]
        statement = UPDATE_EXECUTIONS.format(values=",".join([VALUES_TEMPLATE] * len(executions)))
        parameters = tuple(v for i, row in enumerate(executions) for v in (i, *(row[c] for c in EXECUTION_COLUMNS)))
        hits = [row[0] for row in conn.exec_driver_sql(statement, parameters).fetchall()]
        if len(hits) != len(set(hits)):
            raise DagsterInvariantViolationError(
                "Updated more than one row for an asset check evaluation as a result of duplicate "
                "AssetCheckPlanned events."
            )
        unplanned = [executions[i] for i in sorted(set(range(len(executions))) - set(hits))]
        if unplanned:  # no planned row (Dagster inserts one then, as here)
            _insert(conn, "asset_check_executions", EXECUTION_COLUMNS,
                    [tuple(row[c] for c in EXECUTION_COLUMNS) for row in unplanned])


def _insert(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
            returning: str | None = None) -> list[Any]:
    """One multi-row INSERT with its values as driver parameters: SQLAlchemy compiling a statement of a
    thousand rows cost more than sending it."""
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * len(rows))}"
    result = conn.exec_driver_sql(statement + (f" RETURNING {returning}" if returning else ""),
                                  tuple(v for r in rows for v in r))
    return result.fetchall() if returning else []


def _store_planned(storage: PostgresEventLogStorage, event: EventLogEntry, event_id: int | None) -> None:
    """Dagster's planned execution rows, one per day of the run, the event serialised once (Dagster
    serialised it again for every day: a year-long run's checks spent seconds on it)."""
    planned = event.dagster_event.event_specific_data  # type: ignore[union-attr]
    keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
    serialized, timestamp = dg.serialize_value(event), storage._event_insert_timestamp(event)
    status = AssetCheckExecutionRecordStatus.PLANNED.value
    asset_key = planned.asset_key.to_string()
    rows = [(asset_key, planned.check_name, key, event.run_id, status, serialized, timestamp, event_id)
            for key in keys]
    with storage.index_connection() as conn:
        _insert(conn, "asset_check_executions", PLANNED_COLUMNS, rows)


def _execution_row(storage: PostgresEventLogStorage, event: EventLogEntry, serialized: str, event_id: int
                   ) -> dict[str, Any]:
    """One evaluation's execution row, as Dagster fills it (``serialized``: the event, already serialised)."""
    evaluation = event.dagster_event.event_specific_data  # type: ignore[union-attr]
    status = (AssetCheckExecutionRecordStatus.SUCCEEDED if evaluation.passed
              else AssetCheckExecutionRecordStatus.FAILED).value
    target = evaluation.target_materialization_data
    return {"asset_key": evaluation.asset_key.to_string(), "check_name": evaluation.check_name,
            "run_id": event.run_id, "partition": evaluation.partition, "execution_status": status,
            "evaluation_event": serialized, "evaluation_event_timestamp": storage._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
            "materialization_event_storage_id": target.storage_id if target else None}


#: The columns of a materialisation an evaluation names; the timestamp is the event's own float, as text.
_TARGETS = "SELECT id, run_id, event::json->>'timestamp' FROM event_logs WHERE id = ANY(%s)"


def materialization_targets(storage: PostgresEventLogStorage, storage_ids: Sequence[int]
                            ) -> dict[int, tuple[str, float]]:
    """(run id, timestamp) of each of these event-log rows: what ``AssetCheckEvaluation`` names of the
    materialisation it judged. Through ``fetch_materializations`` (whole events decoded) these lookups took
    0.72 s of a 1,000-activity mirror backfill's main thread (py-spy)."""
    with storage.index_connection() as conn:
        rows = conn.exec_driver_sql(_TARGETS, (list(storage_ids),)).fetchall()
    return {int(storage_id): (run_id, float(timestamp)) for storage_id, run_id, timestamp in rows}


def _flush_all() -> None:
    """At exit, what a process left waiting (normally nothing: a run's last events flush it). A database
    gone by then costs those results, said in one line rather than a traceback after the command's output."""
    for storage in list(_waiting.keys()):
        count = len(_of(storage).events)
        try:
            flush(storage)
        except Exception as exc:  # exiting: report, never raise
            _log.warning("%d check results could not be stored at exit: %s", count, exc)


def batch_check_results() -> None:
    """From now on in this process, PostgreSQL event logs store partitioned check results in bulk.
    Idempotent."""
    PostgresEventLogStorage.store_event = _store_event  # type: ignore[method-assign]
    PostgresEventLogStorage.store_event_batch = _store_event_batch  # type: ignore[method-assign]
    PostgresEventLogStorage._store_asset_check_evaluation_planned = _store_planned  # type: ignore[method-assign]
    atexit.unregister(_flush_all)
    atexit.register(_flush_all)
