"""A run over a range of days records each check for each day, against that day: what the Checks tab of an
asset shows per partition. Checks read landed Parquet only, so these runs need neither the API nor the
database: the days are written here, one of them bad."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from strava_pipeline.defs import build_definitions
from strava_pipeline.defs._dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from strava_pipeline.defs.resources import LandedDataResource
from strava_pipeline.settings import Settings
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.transforms.activities import activities_frame, raw_activities_frame
from strava_pipeline.transforms.fields import PARTITION_COLUMN

YEAR_START, YEAR_END = date(2024, 1, 1), date(2024, 12, 31)
DAYS = [YEAR_START + timedelta(days=i) for i in range((YEAR_END - YEAR_START).days + 1)]
CHECKS = ("unique_activity_ids", "raw_and_typed_row_counts_agree")
#: (asset, number of days) of every read the checks made: module-level because Dagster copies resources.
READS: list[tuple[str, int]] = []


class CountingLanded(LandedDataResource):
    """The landed-data resource, counting its reads (the checks must read a run's days once, not per day)."""

    def read(self, asset, days, columns=None):  # type: ignore[no-untyped-def]
        READS.append((asset, len(days)))
        return super().read(asset, days, columns)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        client_id=None, client_secret=None, refresh_token=None, base_url="http://127.0.0.1:9", data_dir=tmp_path,
        token_file=tmp_path / "tokens.json", history_start=YEAR_START, database_url=None, timezone="UTC",
        rate_window_seconds=900, sync_lookback_days=3, sensor_interval_seconds=1800, request_timeout_seconds=60.0,
    )


def _land_a_year(store: ParquetStore) -> pl.DataFrame:
    """Raw and typed summaries of 40 activities spread over 2024, landed as the IO manager lands them."""
    summaries = []
    for i in range(40):
        start = datetime(2024, 1, 3, 7, tzinfo=UTC) + timedelta(days=9 * i)
        summaries.append({"id": 1000 + i, "name": f"Run {i}", "sport_type": "Run", "distance": 5000.0,
                          "start_date": start.isoformat(), "start_date_local": start.isoformat(),
                          "moving_time": 1500, "elapsed_time": 1600})
    raw = raw_activities_frame(summaries, datetime(2025, 1, 1, tzinfo=UTC))
    typed = activities_frame(raw)
    store.write_partitions("activities_raw", raw, partition_column=PARTITION_COLUMN, partitions=DAYS)
    store.write_partitions("activities", typed, partition_column=PARTITION_COLUMN, partitions=DAYS)
    return typed


def _run_checks(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    keys = [dg.AssetCheckKey(dg.AssetKey("activities"), name) for name in CHECKS]
    return dg.materialize(
        [*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.checks(*keys),
        resources={**(defs.resources or {}), "landed": CountingLanded(data_dir=str(settings.data_dir))},
        tags={ASSET_PARTITION_RANGE_START_TAG: YEAR_START.isoformat(),
              ASSET_PARTITION_RANGE_END_TAG: YEAR_END.isoformat()},
        instance=instance, raise_on_error=False,
    )


def test_a_year_long_run_judges_every_day_on_its_own_and_reads_the_year_once(
    tmp_path: Path, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    store = ParquetStore(settings.parquet_dir)
    typed = _land_a_year(store)
    bad_day = typed.get_column(PARTITION_COLUMN)[7]
    day_rows = typed.filter(pl.col(PARTITION_COLUMN) == bad_day)
    duplicate = day_rows.get_column("activity_id")[0]
    store.write_partitions("activities", pl.concat([day_rows, day_rows]), partition_column=PARTITION_COLUMN,
                           partitions=[bad_day])

    READS.clear()
    lookups: list[str] = []  # the latest materialisation of each day: once per asset and run, not per check
    latest = dagster_instance.get_latest_storage_id_by_partition
    monkeypatch.setattr(dagster_instance, "get_latest_storage_id_by_partition",
                        lambda key, *a, **k: lookups.append(key.to_user_string()) or latest(key, *a, **k))
    result = _run_checks(settings, dagster_instance)
    assert lookups == ["activities"]

    assert not result.success  # both checks block
    for name in CHECKS:
        evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
        assert [e.partition for e in evaluations] == [d.isoformat() for d in DAYS]
        failed = [e for e in evaluations if not e.passed]
        assert [e.partition for e in failed] == [bad_day.isoformat()]
        assert failed[0].blocking and failed[0].severity == dg.AssetCheckSeverity.ERROR
    unique = {e.partition: e for e in result.get_asset_check_evaluations() if e.check_name == "unique_activity_ids"}
    assert unique[bad_day.isoformat()].description == f"1 duplicated activity ids: {duplicate}"
    assert unique[bad_day.isoformat()].metadata["sample"].value == [duplicate]
    counts = {e.partition: e for e in result.get_asset_check_evaluations()
              if e.check_name == "raw_and_typed_row_counts_agree"}
    assert counts[bad_day.isoformat()].description == "the raw layers hold 1 activities, `activities` 2 rows"

    # Each check read each of its assets once for the whole year (activities twice: one read per check).
    assert sorted(READS) == sorted([("activities", 366), ("activities", 366), ("activities_raw", 366),
                                    ("export_activities_raw", 366)])

    # What the UI's Checks tab reads: every day of the year resolved, none left planned (shown as SKIPPED).
    for name in CHECKS:
        key = dg.AssetCheckKey(dg.AssetKey("activities"), name)
        infos = dagster_instance.event_log_storage.get_asset_check_partition_info([key])
        statuses = {i.partition_key: i.latest_execution_status.value for i in infos}
        assert len(statuses) == len(DAYS)
        assert {k for k, s in statuses.items() if s != "SUCCEEDED"} == {bad_day.isoformat()}
        assert statuses[bad_day.isoformat()] == "FAILED"


def test_a_good_range_passes_every_day(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> None:
    settings = _settings(tmp_path)
    _land_a_year(ParquetStore(settings.parquet_dir))
    result = _run_checks(settings, dagster_instance)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(CHECKS) * len(DAYS) and all(e.passed for e in evaluations)
    with_rows = {e.partition for e in evaluations if e.metadata["typed_rows" if "typed_rows" in e.metadata
                                                                else "activities"].value}
    assert len(with_rows) == 40  # the days holding an activity say so; the others hold none
