"""``manual`` and the summary fingerprint: computed once where the raw frame is built, read by everyone."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from strava_pipeline.ingest.stream_plan import cache_key, plan_streams, read_rejection
from strava_pipeline.ingest.summaries import SUMMARY_KEYS, read_summary_keys
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.transforms.activities import raw_activities_frame, summary_fingerprint

DAY = date(2024, 3, 9)


def _summary(activity_id: int, *, manual: bool = False, **extra: object) -> dict:
    return {"id": activity_id, "start_date": "2024-03-09T08:00:00Z", "start_date_local": "2024-03-09T09:00:00Z",
            "elapsed_time": 3600, "moving_time": 3500, "distance": 10000.0, "manual": manual, **extra}


def test_the_raw_frame_carries_manual_and_the_fingerprint() -> None:
    summaries = [_summary(1), _summary(2, manual=True), {k: v for k, v in _summary(3).items() if k != "manual"}]
    frame = raw_activities_frame(summaries, datetime(2024, 3, 10, tzinfo=UTC))
    assert frame.get_column("manual").to_list() == [False, True, False]
    assert frame.get_column("summary_fingerprint").to_list() == [summary_fingerprint(s) for s in summaries]


def test_planning_reads_the_columns_not_the_payload(tmp_path: Path) -> None:
    frame = raw_activities_frame([_summary(1), _summary(2, manual=True)], datetime(2024, 3, 10, tzinfo=UTC))
    plan = plan_streams(frame.drop("payload"), {}, LandingCache(tmp_path), refetch=False)
    assert [a for a, _, _ in plan.to_fetch] == [1]


def test_a_mirror_landed_before_the_columns_existed_is_read_without_a_request(tmp_path: Path) -> None:
    """Parquet days written by 0.1 have only the payload: the columns are computed from it on read."""
    store = ParquetStore(tmp_path)
    summaries = [_summary(7), _summary(8, manual=True)]
    old = pl.DataFrame({"activity_id": [7, 8], "activity_date": [DAY, DAY],
                        "fetched_at": [datetime(2024, 3, 10, tzinfo=UTC)] * 2,
                        "payload": [json.dumps(s) for s in summaries]})
    store.write_partitions("activities_raw", old, partition_column="activity_date", partitions=[DAY])
    keys = read_summary_keys(lambda a, d, c: store.read(a, d, columns=c), [DAY])
    assert keys.columns == SUMMARY_KEYS
    assert keys.get_column("manual").to_list() == [False, True]
    assert keys.get_column("summary_fingerprint").to_list() == [summary_fingerprint(s) for s in summaries]


def test_nothing_landed_reads_as_an_empty_frame_with_the_columns(tmp_path: Path) -> None:
    keys = read_summary_keys(lambda a, d, c: ParquetStore(tmp_path).read(a, d, columns=c), [DAY])
    assert keys.is_empty() and keys.columns == SUMMARY_KEYS


def test_a_cached_body_is_judged_again_unless_this_process_landed_it(tmp_path: Path) -> None:
    """A body this process judged on arrival is reused as it is; one found in the cache from elsewhere is
    parsed, and an unstorable one dropped and requested again."""
    frame = raw_activities_frame([_summary(1), _summary(2)], datetime(2024, 3, 10, tzinfo=UTC))
    cache = LandingCache(tmp_path)
    keys = {a: cache_key(a, f) for a, f in frame.select("activity_id", "summary_fingerprint").iter_rows()}
    unstorable = b'{"time": {"data": [0, 1]}, "note": "\\u0000"}'
    for key in keys.values():
        cache.put(key, unstorable)
    plan = plan_streams(frame.drop("payload"), {}, cache, refetch=False, judged=lambda key: key == keys[1])
    assert [(a, body) for a, _, _, body in plan.cached] == [(1, unstorable)]
    assert [a for a, _, _ in plan.to_fetch] == [2]
    assert cache.get(keys[2]) is None and read_rejection(cache, keys[2]) is not None
