"""Each asset check fails on bad data (written into the landed Parquet) and passes on good data."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import polars as pl

from strava_pipeline.defs import build_definitions
from strava_pipeline.storage.parquet_store import ParquetStore

CHECKS = {
    "unique_activity_ids": "activities",
    "raw_and_typed_row_counts_agree": "activities",
    "every_activity_has_streams": "streams_raw",
    "streams_have_equal_length": "streams_raw",
    "heartrate_in_range": "activity_streams",
}


def _range_tags(first: date, last: date) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}


def _run_checks(p, day: date) -> dict[str, dg.AssetCheckEvaluation]:
    """Execute every check alone (no materialisation) for one day; results by check name."""
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for name, asset in CHECKS.items()]
    defs = build_definitions(p.settings)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.checks(*keys),
        resources=defs.resources,
        tags=_range_tags(day, day),
        raise_on_error=False,
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _rewrite(store: ParquetStore, asset: str, day: date, frame: pl.DataFrame) -> None:
    store.write_partitions(asset, frame, partition_column="activity_date", partitions=[day])


def _streams_day(p) -> date:
    return p.query("SELECT activity_date FROM strava.streams_raw WHERE status = 'ok' "
                   "GROUP BY 1 HAVING count(*) >= 1 ORDER BY 1 LIMIT 1")[0][0]


def _edit_payload(frame: pl.DataFrame, activity_id: int, edit) -> pl.DataFrame:
    payloads = []
    for aid, payload in frame.select("activity_id", "payload").iter_rows():
        if aid == activity_id:
            doc = json.loads(payload)
            edit(doc)
            payload = json.dumps(doc)
        payloads.append(payload)
    return frame.with_columns(pl.Series("payload", payloads, dtype=pl.String))


def test_every_check_passes_on_landed_simulator_data_then_fails_on_bad_rows(backfilled) -> None:
    p, _ = backfilled()
    store = ParquetStore(p.settings.parquet_dir)
    day = _streams_day(p)
    assert all(e.passed for e in _run_checks(p, day).values()) and len(_run_checks(p, day)) == len(CHECKS)

    # A duplicated activity: ids no longer unique, and typed rows outnumber raw rows.
    activities = store.read("activities", [day])
    _rewrite(store, "activities", day, pl.concat([activities, activities.head(1)]))
    results = _run_checks(p, day)
    assert not results["unique_activity_ids"].passed
    assert results["unique_activity_ids"].metadata["duplicated_ids"].value == 1
    assert not results["raw_and_typed_row_counts_agree"].passed
    counts = results["raw_and_typed_row_counts_agree"].metadata
    assert counts["typed_rows"].value == counts["raw_rows"].value + 1

    # A typed row missing: counts differ, ids still unique.
    _rewrite(store, "activities", day, activities.slice(1))
    results = _run_checks(p, day)
    assert results["unique_activity_ids"].passed
    assert not results["raw_and_typed_row_counts_agree"].passed
    _rewrite(store, "activities", day, activities)

    # A non-manual activity without a streams row (not even a recorded 404).
    streams_raw = store.read("streams_raw", [day])
    victim = streams_raw.filter(pl.col("status") == "ok").get_column("activity_id")[0]
    _rewrite(store, "streams_raw", day, streams_raw.filter(pl.col("activity_id") != victim))
    results = _run_checks(p, day)
    assert not results["every_activity_has_streams"].passed
    assert results["every_activity_has_streams"].metadata["sample"].value == [victim]

    # Streams of unequal length: one heart-rate sample short.
    def shorten(doc: dict) -> None:
        doc["time"]["data"].pop()

    _rewrite(store, "streams_raw", day, _edit_payload(streams_raw, victim, shorten))
    results = _run_checks(p, day)
    assert results["every_activity_has_streams"].passed
    assert not results["streams_have_equal_length"].passed
    assert list(results["streams_have_equal_length"].metadata["sample"].value) == [str(victim)]
    _rewrite(store, "streams_raw", day, streams_raw)

    # Heart rate out of range in the typed samples.
    samples = store.read("activity_streams", [day])
    bad = samples.with_columns(
        pl.when(pl.col("sample_index") == 5).then(pl.lit(260, pl.Int16)).otherwise(pl.col("heartrate_bpm"))
        .alias("heartrate_bpm"))
    _rewrite(store, "activity_streams", day, bad)
    results = _run_checks(p, day)
    assert not results["heartrate_in_range"].passed
    assert results["heartrate_in_range"].metadata["samples_out_of_range"].value == \
        bad.filter(pl.col("sample_index") == 5).height
    _rewrite(store, "activity_streams", day, samples)
    assert all(e.passed for e in _run_checks(p, day).values())


def test_blocking_check_keeps_bad_heart_rate_out_of_the_metrics(backfilled) -> None:
    """Raw streams with an impossible heart rate: the typed samples land, the check fails, and
    activity_metrics is not computed from them (its rows keep their previous values)."""
    p, _ = backfilled()
    store = ParquetStore(p.settings.parquet_dir)
    day = _streams_day(p)
    streams_raw = store.read("streams_raw", [day])
    victim = next(
        aid for aid, payload in streams_raw.filter(pl.col("status") == "ok").select("activity_id", "payload")
        .iter_rows() if "heartrate" in json.loads(payload)
    )

    def spike(doc: dict) -> None:
        doc["heartrate"]["data"][3] = 300

    _rewrite(store, "streams_raw", day, _edit_payload(streams_raw, victim, spike))
    metrics_before = p.query("SELECT * FROM strava.activity_metrics WHERE activity_date = %s ORDER BY 1", day)
    defs = build_definitions(p.settings)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=["activity_streams", "activity_metrics"],
        resources=defs.resources,
        tags=_range_tags(day, day),
        raise_on_error=False,
    )
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["heartrate_in_range"].passed
    assert checks["heartrate_in_range"].metadata["sample"].value == [victim]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "activity_streams" in materialized and "activity_metrics" not in materialized
    assert p.query("SELECT * FROM strava.activity_metrics WHERE activity_date = %s ORDER BY 1", day) \
        == metrics_before
    assert p.query("SELECT max(heartrate_bpm) FROM strava.activity_streams WHERE activity_id = %s", victim) \
        == [(300,)]
