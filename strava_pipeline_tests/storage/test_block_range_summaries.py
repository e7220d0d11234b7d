"""A write's BRIN summary runs on a worker thread: done for the table it names, quiet when it cannot be done,
and done in a forked child (a Dagster step process) as in its parent."""

from __future__ import annotations

import os

import psycopg

from strava_pipeline.storage.block_range_summaries import summarize_later, wait_for_summaries

TABLE = "public.samples"


def _table_with_unsummarised_rows(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (day date NOT NULL, x text)")
        conn.execute(f"CREATE INDEX samples_day ON {TABLE} USING brin (day) WITH (pages_per_range = 1)")
        conn.execute(f"INSERT INTO {TABLE} SELECT DATE '2026-01-01' + i / 500, repeat('x', 40) "
                     "FROM generate_series(1, 5000) i")


def _unsummarised(url: str) -> int:
    """How many block ranges a summary would summarise now (the call summarises them too)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT brin_summarize_new_values('samples_day')").fetchone()[0]  # type: ignore[index]


def test_the_summary_summarises_every_new_range_of_the_table(pg_url: str) -> None:
    _table_with_unsummarised_rows(pg_url)

    assert summarize_later(pg_url, TABLE).result(timeout=30) is True
    wait_for_summaries()

    assert _unsummarised(pg_url) == 0


def test_a_summary_the_server_cannot_do_ends_quietly_and_leaves_the_ranges(pg_url: str) -> None:
    _table_with_unsummarised_rows(pg_url)
    unreachable = "postgresql://nobody@127.0.0.1:1/nothing"

    assert summarize_later(unreachable, TABLE).result(timeout=30) is False
    assert summarize_later(pg_url, "public.no_such_table").result(timeout=30) is False
    wait_for_summaries(timeout=30)

    assert _unsummarised(pg_url) > 0  # left for a later summary or a vacuum


def test_a_forked_child_summarises_with_a_worker_of_its_own(pg_url: str) -> None:
    summarize_later(pg_url, "public.no_such_table").result(timeout=30)  # the parent's worker exists
    _table_with_unsummarised_rows(pg_url)

    pid = os.fork()
    if pid == 0:  # the child: the parent's worker thread is not here
        done = False
        try:
            done = summarize_later(pg_url, TABLE).result(timeout=30)
        finally:
            os._exit(0 if done else 1)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert _unsummarised(pg_url) == 0
