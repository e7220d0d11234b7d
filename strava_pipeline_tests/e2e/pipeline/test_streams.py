"""Streams: one request per non-manual activity, spent once; 404s recorded; typed samples exact."""

from __future__ import annotations

import gc
import weakref
from datetime import date

import dagster as dg
import polars as pl
import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.defs import build_definitions, build_resources
from strava_pipeline.defs.io_manager import WarehouseIOManager
from strava_pipeline.storage.databases import with_database
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.storage.postgres_writer import PartitionWriteError

STREAM_ASSETS = ["activities_raw", "activities", "streams_raw", "activity_streams"]


def _stream_requests(p) -> list[str]:
    return [e.path for e in p.sim.request_log if e.path.endswith("/streams")]


def _backfill(p, start=date(2024, 1, 1), end=date(2024, 3, 31)) -> None:
    run_backfill(p.settings, start, end, select=STREAM_ASSETS, progress=lambda _: None)


def test_one_request_per_non_manual_activity_and_none_on_rerun(make_pipeline) -> None:
    p = make_pipeline()
    summaries = p.sim.activities()
    manual = {s["id"] for s in summaries if s["manual"]}
    non_manual = {s["id"] for s in summaries if not s["manual"]}
    assert manual and non_manual, "the synthetic athlete has both kinds"

    _backfill(p)

    requested = _stream_requests(p)
    assert len(requested) == len(non_manual) == len(set(requested))
    assert not any(str(i) in path for i in manual for path in requested)
    rows = dict(p.query("SELECT activity_id, status FROM strava.streams_raw"))
    assert set(rows) == non_manual
    assert set(rows.values()) == {"ok"}
    # Typed samples match the raw stream lengths, activity by activity.
    lengths = dict(p.query(
        "SELECT activity_id, json_array_length(payload->'time'->'data') FROM strava.streams_raw"))
    samples = dict(p.query("SELECT activity_id, count(*) FROM strava.activity_streams GROUP BY 1"))
    assert samples == lengths

    p.sim.clear_request_log()
    _backfill(p)
    assert _stream_requests(p) == []
    assert dict(p.query("SELECT activity_id, status FROM strava.streams_raw")) == rows


def test_new_activity_on_a_landed_day_costs_exactly_one_stream_request(make_pipeline) -> None:
    p = make_pipeline()
    _backfill(p)
    day = date(2024, 2, 14)
    added = p.sim.add_activity(start_date_local=f"{day}T07:00:00", sport_type="Run", zone="Europe/Paris")
    renamed = next(s["id"] for s in p.sim.activities() if not s["manual"] and s["id"] != added)
    p.sim.update_activity(renamed, name="a rename never costs a stream request")
    p.sim.clear_request_log()

    _backfill(p, day - date.resolution * 40, day)

    assert _stream_requests(p) == [f"/api/v3/activities/{added}/streams"]
    assert p.query("SELECT count(*) FROM strava.activity_streams WHERE activity_id = %s", added)[0][0] > 0


def test_refetch_switch_forces_new_requests(make_pipeline) -> None:
    p = make_pipeline()
    _backfill(p, date(2024, 1, 1), date(2024, 1, 31))
    expected = len(_stream_requests(p))
    p.sim.clear_request_log()
    defs = build_definitions(p.settings)
    dg.materialize(
        defs.assets,
        selection=["streams_raw"],
        resources=build_resources(p.settings),
        run_config={"ops": {"streams_raw": {"config": {"refetch": True}}}},
        tags={"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-31"},
    )
    assert len(_stream_requests(p)) == expected > 0


def test_backfill_refetch_requests_every_stream_again(make_pipeline) -> None:
    """``strava-pipeline backfill --refetch``: what the user runs after a rejected body or a doubt."""
    p = make_pipeline()
    _backfill(p, date(2024, 1, 1), date(2024, 1, 31))
    expected = len(_stream_requests(p))
    p.sim.clear_request_log()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 1, 31), select=STREAM_ASSETS, refetch=True,
                 progress=lambda _: None)
    assert len(_stream_requests(p)) == expected > 0
    p.sim.clear_request_log()
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 1, 31), select=STREAM_ASSETS, progress=lambda _: None)
    assert _stream_requests(p) == []


def test_streams_404_is_recorded_and_not_retried(make_pipeline) -> None:
    p = make_pipeline()
    day = date(2024, 1, 20)
    # Listed as not manual, yet Strava has no streams for it (seen for indoor rowing in rStrava#105).
    ghost = p.sim.add_activity(start_date_local=f"{day}T09:00:00", sport_type="Rowing", manual=True)
    p.sim.update_activity(ghost, manual=False)
    _backfill(p, day, day)
    assert p.query("SELECT status, payload FROM strava.streams_raw WHERE activity_id = %s", ghost) == \
        [("not_found", None)]
    p.sim.clear_request_log()
    _backfill(p, day, day)
    assert _stream_requests(p) == []


def test_typed_streams_parquet_matches_postgres(make_pipeline) -> None:
    p = make_pipeline()
    _backfill(p, date(2024, 1, 1), date(2024, 1, 31))
    parquet = ParquetStore(p.settings.parquet_dir).read("activity_streams")
    assert parquet.height == p.query("SELECT count(*) FROM strava.activity_streams")[0][0] > 0
    assert parquet.select(pl.struct("activity_id", "sample_index").is_unique().all()).item()



def test_a_run_that_fails_after_fetching_wastes_no_stream_request(make_pipeline, monkeypatch) -> None:
    p = make_pipeline()
    january = (date(2024, 1, 1), date(2024, 1, 31))
    run_backfill(p.settings, *january, select=["activities_raw", "activities"], progress=lambda _: None)
    # The database dies after every stream was fetched: the write of streams_raw fails.
    monkeypatch.setenv("STRAVA_PIPELINE_DATABASE_URL", with_database(p.database_url, "database_that_is_gone"))
    p.sim.clear_request_log()
    with pytest.raises(PartitionWriteError, match=r"cannot reach PostgreSQL to write strava.streams_raw \(2024-01-01"):
        run_backfill(p.settings, *january, select=["streams_raw"], progress=lambda _: None)
    fetched = sorted(_stream_requests(p))
    assert fetched, "the failed run did fetch streams"
    assert p.query("SELECT count(*) FROM strava.streams_raw") == [(0,)]

    monkeypatch.setenv("STRAVA_PIPELINE_DATABASE_URL", p.database_url)
    p.sim.clear_request_log()
    run_backfill(p.settings, *january, select=["streams_raw"], progress=lambda _: None)

    assert _stream_requests(p) == []
    assert p.query("SELECT count(*) FROM strava.streams_raw")[0][0] == len(fetched)
    # Discarded as soon as streams_raw commits, not only once the typed streams are built.
    assert not any((p.settings.data_dir / "landing" / "streams").iterdir()), "committed entries are discarded"


def test_backfill_fetches_later_quarters_ahead_and_still_requests_each_activity_once(
    make_pipeline, dagster_instance
) -> None:
    from strava_pipeline.simulator import SimulatorConfig

    p = make_pipeline(SimulatorConfig(seed=11, start_date=date(2024, 1, 1), end_date=date(2024, 9, 30),
                                      activities=45, latency_ms=20))
    non_manual = {s["id"] for s in p.sim.activities() if not s["manual"]}
    instance = dagster_instance
    run_backfill(p.settings, date(2024, 1, 1), date(2024, 9, 30), select=STREAM_ASSETS, instance=instance,
                 progress=lambda _: None)

    requested = _stream_requests(p)
    assert len(requested) == len(non_manual) == len(set(requested))
    assert {i for i, in p.query("SELECT activity_id FROM strava.streams_raw")} == non_manual
    # Three quarters, three runs of streams_raw: together they account for every activity exactly once,
    # most of them requested ahead by the backfill's prefetcher rather than by the run itself.
    runs = {}
    for record in instance.fetch_materializations(dg.AssetKey("streams_raw"), limit=1000).records:
        runs[record.run_id] = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert len(runs) == 3
    accounted = sum(m["api_requests"] + m["fetched_ahead"] + m["reused_cached"] for m in runs.values())
    assert accounted == len(non_manual)
    assert sum(m["fetched_ahead"] + m["reused_cached"] for m in runs.values()) > 0
    assert not list((p.settings.data_dir / "landing" / "streams").glob("[0-9]*")), "landing cache emptied"


def test_concurrent_fetches_of_one_activity_make_one_request(make_pipeline, tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from strava_pipeline.defs.resources import strava_client
    from strava_pipeline.ingest.in_flight import InFlightFetches
    from strava_pipeline.simulator import SimulatorConfig
    from strava_pipeline.storage.landing_cache import LandingCache

    p = make_pipeline(SimulatorConfig(seed=7, start_date=date(2024, 1, 1), end_date=date(2024, 1, 31),
                                      activities=3, latency_ms=200))
    activity = next(s for s in p.sim.activities() if not s["manual"])
    client = strava_client(p.settings)
    fetches, cache = InFlightFetches(), LandingCache(tmp_path / "landing")
    p.sim.clear_request_log()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: fetches.fetch(client, cache, activity["id"], "fp"), range(6)))
    assert len(_stream_requests(p)) == 1
    assert len({body for body, _ in results}) == 1 and sum(made for _, made in results) == 1
    # Landed and dropped from the cache: a prefetch of the same recording is not paid for again.
    cache.discard([f"{activity['id']}-fp"])
    fetches.prefetch(client, cache, activity["id"], "fp")
    assert len(_stream_requests(p)) == 1
    client.close()


def test_a_backfill_lets_go_of_the_raw_payloads_once_stored(make_pipeline, monkeypatch) -> None:
    """A quarter's raw payload frame is freed once both stores hold it, not kept for the run's result while
    the typed samples are built and stored: that doubled a backfill's memory."""
    p = make_pipeline()
    stored: dict[str, weakref.ref[pl.DataFrame]] = {}
    raw_alive_when_typed_stored: list[bool] = []
    handle_output = WarehouseIOManager.handle_output

    def watching(self, context, obj) -> None:
        name = context.asset_key.path[-1]
        if name == "activity_streams":
            gc.collect()
            raw_alive_when_typed_stored.append(stored["streams_raw"]() is not None)
        if isinstance(obj, pl.DataFrame):
            stored[name] = weakref.ref(obj)
        handle_output(self, context, obj)

    monkeypatch.setattr(WarehouseIOManager, "handle_output", watching)
    _backfill(p)
    assert raw_alive_when_typed_stored and not any(raw_alive_when_typed_stored)
    assert ParquetStore(p.settings.parquet_dir).read("activity_streams").height > 0
