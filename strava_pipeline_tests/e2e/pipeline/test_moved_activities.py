"""An activity whose start moves to another day lands on its new day and leaves its old one, in both stores.

Before: the run for the new day failed with a unique violation on ``activity_id`` (the old day still held
it), forever, since the sensor requested the same run key again.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.defs import automation, build_definitions, build_resources
from strava_pipeline.storage.parquet_store import ParquetStore

ACTIVITY_ASSETS = ["activities_raw", "activities", "streams_raw", "activity_streams", "activity_metrics"]
START, END = date(2024, 1, 1), date(2024, 3, 31)
NEW_DAY = date(2024, 3, 30)


def _quiet(_: str) -> None:
    pass


def _evaluate_sensor(p, instance: dg.DagsterInstance | None = None) -> dg.SensorResult:
    defs = build_definitions(p.settings)
    sensor = defs.resolve_sensor_def("new_or_changed_activities")
    with dg.build_sensor_context(resources=build_resources(p.settings), definitions=defs, instance=instance) as context:
        return sensor.evaluate_tick(context)


def _days_holding(p, table: str, activity_id: int) -> tuple[list[date], list[date]]:
    """(PostgreSQL days, Parquet days) whose rows of ``table`` hold the activity."""
    pg = [d for (d,) in p.query(f"SELECT DISTINCT activity_date FROM strava.{table} WHERE activity_id = %s",
                                activity_id)]
    parquet = ParquetStore(p.settings.parquet_dir).read(table).filter(pl.col("activity_id") == activity_id)
    return sorted(pg), sorted(parquet.get_column("activity_date").unique().to_list())


def test_an_activity_moved_to_a_day_outside_the_sensors_page_lands_on_its_new_day(make_pipeline, monkeypatch) -> None:
    p = make_pipeline()
    run_backfill(p.settings, START, END, select=ACTIVITY_ASSETS, progress=_quiet)
    oldest = min(p.sim.activities(), key=lambda s: s["start_date"])
    assert not oldest.get("manual"), "the oldest synthetic activity has streams"
    old_day = date.fromisoformat(oldest["start_date_local"][:10])
    samples = p.query("SELECT count(*) FROM strava.activity_streams WHERE activity_id = %s", oldest["id"])[0][0]
    assert samples > 0
    shift = NEW_DAY - old_day
    p.sim.update_activity(
        oldest["id"],
        start_date_local=f"{NEW_DAY.isoformat()}{oldest['start_date_local'][10:]}",
        start_date=(date.fromisoformat(oldest["start_date"][:10]) + shift).isoformat() + oldest["start_date"][10:],
    )
    monkeypatch.setattr(automation, "PAGE_SIZE", 10)  # the old day is far outside the sensor's page
    p.sim.clear_request_log()

    requests = _evaluate_sensor(p).run_requests
    assert NEW_DAY.isoformat() in {r.partition_key for r in requests}
    for request in requests:  # what the daemon would launch
        day = date.fromisoformat(request.partition_key)
        run_backfill(p.settings, day, day, select=ACTIVITY_ASSETS, progress=_quiet)

    for table in ACTIVITY_ASSETS:
        assert _days_holding(p, table, oldest["id"]) == ([NEW_DAY], [NEW_DAY]), table
    assert p.query("SELECT count(*) FROM strava.activity_streams WHERE activity_id = %s", oldest["id"])[0][0] == samples
    assert sorted(p.ids("activities")) == sorted(p.sim.activity_ids())
    stream_requests = [e for e in p.sim.request_log if e.path.endswith(f"/activities/{oldest['id']}/streams")]
    assert len(stream_requests) == 1, "its streams are fetched once, for the new day"
    # The old day's rebuild (the next backfill over it) finds nothing to change.
    run_backfill(p.settings, old_day, old_day + timedelta(days=1), select=ACTIVITY_ASSETS, progress=_quiet)
    assert _days_holding(p, "activities", oldest["id"]) == ([NEW_DAY], [NEW_DAY])


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _failed_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> None:
    @dg.asset
    def refused() -> None:
        raise RuntimeError("the day failed")

    result = dg.materialize([refused], instance=instance, tags=tags, raise_on_error=False)
    assert not result.success


def test_a_failed_sensor_run_is_retried_with_a_new_run_key_then_given_up(make_pipeline, instance) -> None:
    p = make_pipeline()
    run_backfill(p.settings, START, END, select=["activities_raw", "activities"], progress=_quiet)
    late = p.sim.add_activity(start_date_local="2024-03-02T18:00:00")
    del late

    (first,) = _evaluate_sensor(p, instance).run_requests
    change = first.tags[automation.CHANGE_TAG]
    assert first.run_key == change

    keys = [first.run_key]
    for _ in range(automation.MAX_ATTEMPTS - 1):
        _failed_run(instance, {automation.CHANGE_TAG: change})
        (retry,) = _evaluate_sensor(p, instance).run_requests
        keys.append(retry.run_key)
    assert len(set(keys)) == automation.MAX_ATTEMPTS, "each retry has a key of its own"

    _failed_run(instance, {automation.CHANGE_TAG: change})
    result = _evaluate_sensor(p, instance)
    assert result.run_requests == [] and "failed" in result.skip_message
