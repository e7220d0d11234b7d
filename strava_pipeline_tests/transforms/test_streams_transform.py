"""Typed streams from real recorded bodies: unknown stream types, nulls, both response forms."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from strava_pipeline.transforms.activities import summary_fingerprint
from strava_pipeline.transforms.errors import PayloadError
from strava_pipeline.transforms.streams import (
    STREAM_SCHEMA,
    STREAMS_RAW_SCHEMA,
    activity_stream_frame,
    streams_frame,
)
from strava_pipeline_tests.recordings import RECORDINGS, recorded_json

DAY = date(2024, 1, 1)


def test_undocumented_stream_types_are_ignored_by_the_typed_layer() -> None:
    body = recorded_json("elevate/sample_streams.fixture.json")  # array form with watts_calc, grade_adjusted_speed
    assert {"watts_calc", "grade_adjusted_speed"} <= {s["type"] for s in body}
    frame = activity_stream_frame(1, DAY, body)
    assert frame.height == 78
    assert frame.schema == pl.Schema(STREAM_SCHEMA)
    assert frame["watts"].to_list() == next(s["data"] for s in body if s["type"] == "watts")


def test_null_samples_stay_null_and_do_not_shift_other_streams() -> None:
    edited = recorded_json("go.strava/activity_stream.body")  # Strava's own edit put nulls at index 0/1
    original = json.loads((RECORDINGS / "go.strava/activity_stream.pre-null-edit.body").read_text())
    with_nulls, without = activity_stream_frame(1, DAY, edited), activity_stream_frame(1, DAY, original)
    assert with_nulls.height == without.height == 999
    assert with_nulls["lat"][0] is None and without["lat"][0] is not None
    assert with_nulls["lat"][5] == without["lat"][5]
    assert with_nulls.null_count().row(0) != without.null_count().row(0)


def test_key_by_type_form_from_a_real_cassette() -> None:
    body = recorded_json("strava-ruby-client/client/activity_streams.yml")
    frame = activity_stream_frame(7, DAY, body)
    lengths = {len(s["data"]) for s in (body.values() if isinstance(body, dict) else body)}
    assert frame.height in lengths


def test_unequal_stream_lengths_name_the_activity() -> None:
    body = {"time": {"data": [0, 1, 2]}, "heartrate": {"data": [100, 101]}}
    with pytest.raises(PayloadError, match=r"activity 42: .*unequal lengths \(heartrate=2, time=3\)"):
        activity_stream_frame(42, DAY, body)


def test_an_eight_hour_activity_at_one_hertz_keeps_every_sample() -> None:
    n = 8 * 3600 + 1
    body = {"time": {"data": list(range(n))}, "distance": {"data": [i * 2.5 for i in range(n)]},
            "heartrate": {"data": [140] * n}, "moving": {"data": [True] * n}}
    raw = pl.DataFrame([{"activity_id": 1, "activity_date": DAY, "summary_fingerprint": "x", "status": "ok",
                         "fetched_at": None, "payload": json.dumps(body)}], schema=STREAMS_RAW_SCHEMA)
    frame = streams_frame(raw)
    assert frame.height == n
    assert frame["time_s"][-1] == 8 * 3600 and frame["sample_index"][-1] == n - 1


def test_fingerprint_ignores_renames_and_kudos_but_not_a_crop() -> None:
    summary = {"id": 1, "name": "a", "kudos_count": 1, "elapsed_time": 3600, "distance": 10000.0,
               "start_date": "2024-01-01T10:00:00Z"}
    base = summary_fingerprint(summary)
    assert summary_fingerprint({**summary, "name": "b", "kudos_count": 9}) == base
    assert summary_fingerprint({**summary, "elapsed_time": 3000}) != base
