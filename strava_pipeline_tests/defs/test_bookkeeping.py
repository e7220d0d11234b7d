"""Dagster's bookkeeping commits without waiting for the disk; the athlete's data still commits durably."""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from strava_pipeline.cli.runtime import dagster_instance
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
