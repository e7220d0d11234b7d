"""Dagster's bookkeeping commits without waiting for the disk; the athlete's data still commits durably."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from strava_pipeline.cli.runtime import dagster_instance
from strava_pipeline.storage.databases import DATABASE_URL_ENV, connect
from strava_pipeline_tests.instance import dagster_home


def test_dagster_storage_commits_lazily_keeping_the_users_options_and_data_connections_commit_durably(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-c%20work_mem%3D5MB"  # the user's own option
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster_home")))
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_DIR", str(tmp_path / "dagster"))
    monkeypatch.setenv("STRAVA_PIPELINE_DAGSTER_LOGS_DIR", str(tmp_path / "dagster" / "logs"))
    with dagster_instance() as instance:
        event_log, runs = instance.event_log_storage, instance.run_storage
        for storage, connection in ((event_log, event_log.index_connection), (runs, runs.connect)):  # type: ignore[attr-defined]
            with connection() as conn:
                assert conn.execute(sa.text("SHOW synchronous_commit")).scalar() == "off", type(storage)
                assert conn.execute(sa.text("SHOW work_mem")).scalar() == "5MB"
    with connect(url) as conn:  # how the pipeline writes its partitions
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW work_mem").fetchone() == ("5MB",)
