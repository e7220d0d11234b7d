"""The BRIN block ranges a write filled, summarised in the background once it has committed.

Summarising (``postgres_writer.summarize_new_block_ranges``) only makes later queries read fewer blocks;
nothing waits for it. So a write hands it to one worker thread of the process, which does it on its own
connection while the run goes on (the server summarises on the other core meanwhile). A request for a
table whose previous request has not started yet is that request: a summary covers every range
unsummarised when it starts. Best effort, like the summary itself: failures (no server, no privilege, a
vacuum holding the table) are not raised; a forked child starts a worker of its own. The process waits
for a summary under way when it exits (a Dagster step's process would otherwise never summarise), at
most ``CONNECT_TIMEOUT_S`` for an unreachable server.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all

from strava_pipeline.storage.databases import connect
from strava_pipeline.storage.postgres_writer import summarize_new_block_ranges

__all__ = ["summarize_later", "wait_for_summaries"]

#: How long a summary may wait for the server to answer its connection.
CONNECT_TIMEOUT_S = 5

_lock = threading.Lock()
_queued: dict[tuple[str, str], Future[bool]] = {}
_worker: ThreadPoolExecutor | None = None


def _forget_parents_worker() -> None:
    """In a forked child: the parent's worker object is here but not its thread, and the lock may be held."""
    global _lock, _worker
    _lock, _worker = threading.Lock(), None
    _queued.clear()


os.register_at_fork(after_in_child=_forget_parents_worker)


def summarize_later(database_url: str, table: str) -> Future[bool]:
    """Summarise ``table``'s new block ranges soon, on another thread; the future says whether it was done."""
    global _worker
    key = (database_url, table)
    with _lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="brin-summary")
        queued = _queued.get(key)
        if queued is not None:
            return queued
        try:
            future = _worker.submit(_summarize, key)
        except RuntimeError:  # the interpreter is shutting down: later queries pay for the ranges instead
            done: Future[bool] = Future()
            done.set_result(False)
            return done
        _queued[key] = future
    return future


def wait_for_summaries(timeout: float | None = None) -> None:
    """Wait until every summary requested so far has ended (tests, and whoever must query at once): the one
    worker runs them in order, so a marker queued now ends after all of them."""
    with _lock:
        if _worker is None:
            return
        try:
            marker = _worker.submit(lambda: None)
        except RuntimeError:  # shutting down: the interpreter waits for the worker itself
            return
    wait_all([marker], timeout=timeout)


def _summarize(key: tuple[str, str]) -> bool:
    database_url, table = key
    with _lock:
        _queued.pop(key, None)  # from now on a new request needs a new summary
    try:
        with connect(database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            return summarize_new_block_ranges(conn, table)
    except Exception:  # best effort: the ranges are summarised by the next write's summary or a vacuum
        return False
