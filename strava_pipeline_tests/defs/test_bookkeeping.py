"""Dagster's bookkeeping commits without waiting for the disk; the athlete's data still commits durably."""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from strava_pipeline.cli.runtime import dagster_instance
from strava_pipeline.defs import check_result_batches, checks
from strava_pipeline.storage.databases import DATABASE_URL_ENV, connect
from strava_pipeline_tests.instance import dagster_home


@pytest.fixture
def instance_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point the CLI's ``dagster_instance`` at a fresh Dagster home whose storage is the given database."""

    def point_at(database_url: str) -> None:
        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster_home")))
        monkeypatch.setenv(DATABASE_URL_ENV, database_url)
        monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_DIR", str(tmp_path / "dagster"))
        monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_LOGS_DIR", str(tmp_path / "dagster" / "logs"))

    return point_at


def test_dagster_storage_commits_lazily_keeping_the_users_options_and_data_connections_commit_durably(
    pg_url: str, instance_env: Callable[[str], None]
) -> None:
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-c%20work_mem%3D5MB"  # the user's own option
    instance_env(url)
    with dagster_instance() as instance:
        event_log, runs = instance.event_log_storage, instance.run_storage
        for storage, connection in ((event_log, event_log.index_connection), (runs, runs.connect)):  # type: ignore[attr-defined]
            with connection() as conn:
                assert conn.execute(sa.text("SHOW synchronous_commit")).scalar() == "off", type(storage)
                assert conn.execute(sa.text("SHOW work_mem")).scalar() == "5MB"
    with connect(url) as conn:  # how the pipeline writes its partitions
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW work_mem").fetchone() == ("5MB",)


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning", "ignore::dagster.PreviewWarning")
def test_check_results_are_stored_with_one_catalogue_question_per_storage(
    pg_url: str, instance_env: Callable[[str], None]
) -> None:
    """Dagster asked the catalogue whether its checks and tags tables exist before storing each check result
    and each materialisation; they are still all stored."""
    instance_env(pg_url)
    days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-31")

    @dg.asset(partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run())
    def daily() -> None:
        return None

    @dg.asset_check(asset=daily, partitions_def=days)
    def per_day(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        for key in context.partition_keys:
            yield dg.AssetCheckEvaluation(asset_key=daily.key, check_name="per_day", passed=True, partition=key)
        yield dg.Output(None)

    questions: list[str] = []

    def ask(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "pg_class" in statement:  # the catalogue query behind has_table
            questions.append(str(parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", ask)
    try:
        with dagster_instance() as instance:
            questions.clear()  # the instance's own start-up asks about each table once
            result = dg.materialize([daily, per_day], instance=instance, tags={
                "dagster/asset_partition_range_start": "2026-01-01",
                "dagster/asset_partition_range_end": "2026-01-30"})
            records = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(daily.key, "per_day"), limit=100)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", ask)
    assert result.success and len(result.get_asset_check_evaluations()) == 30
    assert len(records) == 30 and {r.status.value for r in records} == {"SUCCEEDED"}
    asked = [q for q in questions if "asset_check_executions" in q or "asset_event_tags" in q]
    assert len(asked) <= 2, asked  # 30 check results and 30 materialisations asked 60 times


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning", "ignore::dagster.PreviewWarning")
@pytest.mark.parametrize("batch_limit", [1000, 7])
def test_per_day_check_results_are_stored_in_bulk_each_as_dagster_records_it(
    pg_url: str, instance_env: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, batch_limit: int
) -> None:
    """A run's 30 per-day results (and the 30 rows planned for them) are written by a few statements (one
    per ``BATCH_LIMIT``, not one per day), and each lands as Dagster would store it: its event in the run's
    log, in order, before the step's success, and its execution row holding that event and the day's verdict."""
    monkeypatch.setattr(check_result_batches, "BATCH_LIMIT", batch_limit)
    instance_env(pg_url)
    days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-31")

    @dg.asset(partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run())
    def daily() -> None:
        return None

    @dg.asset_check(asset=daily, partitions_def=days, blocking=False)
    def odd_days_fail(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        for key in context.partition_keys:
            yield dg.AssetCheckEvaluation(asset_key=daily.key, check_name="odd_days_fail", partition=key,
                                          passed=int(key[-2:]) % 2 == 0, metadata={"day": key, "note": "100% {x} it's"})
        yield dg.Output(None)

    updates: list[str] = []
    inserts: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE ASSET_CHECK_EXECUTIONS"):
            updates.append(statement)
        if statement.lstrip().upper().startswith("INSERT INTO ASSET_CHECK_EXECUTIONS"):
            inserts.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        with dagster_instance() as instance:
            result = dg.materialize([daily, odd_days_fail], instance=instance, tags={
                "dagster/asset_partition_range_start": "2026-01-01",
                "dagster/asset_partition_range_end": "2026-01-30"})
            records = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(daily.key, "odd_days_fail"), limit=100)
            events = instance.get_records_for_run(result.run_id, limit=1000).records
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert result.success
    assert len(updates) == -(-30 // batch_limit)  # one per batch; Dagster issued one per day
    assert len(inserts) == 1  # the 30 planned rows together, and each result found its planned row
    by_day = {r.partition: r for r in records}
    assert len(records) == 30 and set(by_day) == {f"2026-01-{d:02d}" for d in range(1, 31)}
    for day, record in by_day.items():
        assert record.run_id == result.run_id
        assert record.status.value == ("SUCCEEDED" if int(day[-2:]) % 2 == 0 else "FAILED"), day
        evaluation = record.event.get_dagster_event().event_specific_data  # type: ignore[union-attr]
        assert evaluation.partition == day and evaluation.metadata["day"].value == day
    kind = {e.storage_id: e.event_log_entry.dagster_event_type for e in events}
    assert list(kind.values()).count(dg.DagsterEventType.ASSET_MATERIALIZATION) == 30
    evaluations = {e.event_log_entry.get_dagster_event().event_specific_data.partition: e for e in events
                   if kind[e.storage_id] == dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    check_success = next(e.storage_id for e in events if e.event_log_entry.step_key == "daily_odd_days_fail"
                         and kind[e.storage_id] == dg.DagsterEventType.STEP_SUCCESS)
    assert list(evaluations) == sorted(by_day)  # stored in the order yielded, each before the step's success
    assert all(e.storage_id < check_success for e in evaluations.values())
    for day, record in by_day.items():  # the execution row holds the very event stored in the run's log
        assert record.event is not None and record.event.timestamp == evaluations[day].event_log_entry.timestamp


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning", "ignore::dagster.PreviewWarning")
def test_evaluations_name_each_days_latest_materialisation_as_dagsters_records_have_it(
    pg_url: str, instance_env: Callable[[str], None]
) -> None:
    """The materialisation a day's check result names (read from three columns of the event log) is the
    day's latest one, with the run id and the exact timestamp Dagster's records API decodes: the UI shows
    a day's check status only while it names that materialisation."""
    instance_env(pg_url)
    days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-31")

    @dg.asset(partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run())
    def daily() -> None:
        return None

    def materialize(first: str, last: str) -> str:
        return dg.materialize([daily], instance=instance, tags={
            "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}).run_id

    keys = [f"2026-01-{d:02d}" for d in range(1, 11)]
    with dagster_instance() as instance:
        materialize("2026-01-01", "2026-01-08")
        again = materialize("2026-01-05", "2026-01-06")  # two days re-materialised later; 9 and 10 never
        named = checks._latest_materializations(instance, daily.key, keys)
        latest = instance.get_latest_storage_id_by_partition(
            daily.key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(keys))
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=daily.key, storage_ids=list(latest.values())), limit=100).records
    expected = {r.partition_key: (r.storage_id, r.run_id, r.timestamp) for r in records}
    assert {day: (t.storage_id, t.run_id, t.timestamp) for day, t in named.items()} == expected
    assert sorted(named) == keys[:8] and {named[d].run_id for d in ("2026-01-05", "2026-01-06")} == {again}
