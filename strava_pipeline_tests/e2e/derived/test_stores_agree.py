"""The blocking ``stores_agree`` check: each day is the same in PostgreSQL and Parquet, or the run stops."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.defs import build_definitions
from strava_pipeline.defs.checks import TABLES_IN_BOTH_STORES
from strava_pipeline.storage.parquet_store import ParquetStore


def _run_checks(p, day: date) -> dict[str, dg.AssetCheckEvaluation]:
    """Every stores_agree check alone, for one day; evaluations by asset."""
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), "stores_agree") for asset in TABLES_IN_BOTH_STORES]
    defs = build_definitions(p.settings)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.checks(*keys),
        resources=defs.resources,
        tags={"dagster/asset_partition_range_start": day.isoformat(),
              "dagster/asset_partition_range_end": day.isoformat()},
        raise_on_error=False,
    )
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


def test_a_day_whose_parquet_copy_differs_from_postgres_fails_the_check_until_rebuilt(backfilled) -> None:
    p, _ = backfilled()
    day = p.query("SELECT activity_date FROM strava.activity_metrics GROUP BY 1 HAVING count(*) >= 2 "
                  "ORDER BY 1 LIMIT 1")[0][0]
    results = _run_checks(p, day)
    assert set(results) == set(TABLES_IN_BOTH_STORES) and all(e.passed for e in results.values())

    store = ParquetStore(p.settings.parquet_dir)
    activities = store.read("activities", [day])
    store.write_partitions("activities", activities.slice(1), partition_column="activity_date", partitions=[day])
    metrics = store.read("activity_metrics", [day])  # same row count, one id swapped for another
    swapped = metrics.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col("activity_id") + 1)
                                   .otherwise(pl.col("activity_id")).alias("activity_id"))
    store.write_partitions("activity_metrics", swapped, partition_column="activity_date", partitions=[day])

    results = _run_checks(p, day)
    assert not results["activities"].passed
    assert results["activities"].metadata["parquet_rows"].value == activities.height - 1
    assert f"{day}: PostgreSQL {activities.height} rows" in (results["activities"].description or "")
    assert not results["activity_metrics"].passed and "sums" in (results["activity_metrics"].description or "")
    assert all(e.passed for a, e in results.items() if a not in {"activities", "activity_metrics"})

    run_backfill(p.settings, day, day, progress=lambda _: None)
    assert all(e.passed for e in _run_checks(p, day).values())
