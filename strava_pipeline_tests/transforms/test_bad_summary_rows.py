"""Summaries jsonb cannot store land rejected in the raw frame, and the typed layer and checks follow."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import orjson
import polars as pl
import pytest

from strava_pipeline.transforms.activities import (
    ACTIVITY_RAW_SCHEMA,
    activities_frame,
    raw_activities_frame,
    summary_unstorable_reason,
)
from strava_pipeline.transforms.quality import raw_activity_keys, row_count_problems, unstorable_summary_problems
from strava_pipeline.transforms.streams import jsonb_unstorable_reason, unstorable_reason

FETCHED = datetime(2024, 3, 1, tzinfo=UTC)


def _summary(activity_id: int, **fields) -> dict:
    return {"id": activity_id, "name": "Ride", "start_date": "2024-02-01T07:00:00Z",
            "start_date_local": "2024-02-01T08:00:00Z", "distance": 1000.0, **fields}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"average_speed": float("nan")}, "NaN"),
    ({"max_speed": float("inf")}, "Infinity"),
    ({"name": "a\u0000b"}, "\\u0000"),
    ({"name": "lone \ud800"}, "UTF-8"),
])
def test_unstorable_summaries_are_rejected_with_the_reason_and_kept_verbatim(fields, expected) -> None:
    frame = raw_activities_frame([_summary(1), _summary(2, **fields)], FETCHED)
    assert frame.schema == pl.Schema(ACTIVITY_RAW_SCHEMA)
    good, bad = frame.sort("activity_id").iter_rows(named=True)
    assert good["rejected"] is None and good["payload_text"] is None
    assert json.loads(good["payload"])["name"] == "Ride"
    assert expected in bad["rejected"]
    assert json.loads(bad["payload"]) == {"id": 2}
    kept = json.loads(bad["payload_text"])
    key, value = next(iter(fields.items()))
    assert (math.isnan(kept[key]) if isinstance(value, float) and math.isnan(value) else kept[key] == value)
    bad["payload_text"].encode()  # storable as text and in Parquet


def test_a_text_mentioning_u0000_is_storable() -> None:
    assert summary_unstorable_reason(json.dumps(_summary(1, name="\\u0000"))) is None


def test_the_summary_rule_is_the_streams_rule_without_the_stream_set_shape() -> None:
    for body in (b'{"a":NaN}', b'{"a":"\\u0000"}', b"[1e400]"):
        assert jsonb_unstorable_reason(body) == unstorable_reason(body, "activity 1")
    assert jsonb_unstorable_reason(b'{"a":1}') is None


def test_typed_layer_and_row_counts_leave_rejected_summaries_out() -> None:
    raw = raw_activities_frame([_summary(1), _summary(2, average_speed=float("nan"))], FETCHED)
    export_raw = pl.DataFrame({"activity_id": [2], "activity_date": [date(2024, 2, 1)],
                               "summary": [json.dumps(_summary(2))], "imported_at": [FETCHED]})
    typed = activities_frame(raw, export_raw)
    assert typed["activity_id"].to_list() == [1]
    keys = raw_activity_keys(raw, export_raw)
    assert keys["activity_id"].to_list() == [1]
    assert row_count_problems(keys, typed, [date(2024, 2, 1)]) == {}
    problems = unstorable_summary_problems(raw)
    assert list(problems) == [2] and "NaN" in problems[2]


def test_rows_landed_before_the_rejected_column_count_as_stored() -> None:
    old = raw_activities_frame([_summary(1)], FETCHED).drop("rejected", "payload_text")
    assert activities_frame(old)["activity_id"].to_list() == [1]
    assert unstorable_summary_problems(old) == {}
    assert raw_activity_keys(old, pl.DataFrame()).height == 1


_STREAMS = b'{"time": {"data": [0, 1, 2]}, "heartrate": {"data": [%s, 120, 121]}}'


@pytest.mark.parametrize(("first_sample", "verdict"), [
    (b"119", None),
    (b"18446744073709551616", None),  # beyond 64 bits: simdjson refuses it, orjson (the typed layer) reads it
    (b"1e308", None),
    (b"NaN", "holds NaN"),
    (b"Infinity", "holds Infinity"),
    (b"1e400", "not strict JSON"),
    (b'"\\ud800"', "not strict JSON"),  # a lone surrogate
    (b'"\\u0000"', "\\u0000 escape"),
    (b'"\\\\u0000"', None),  # the text \u0000, escaped: storable
    (b'"\xff"', "not strict JSON"),  # not UTF-8
])
def test_a_streams_body_is_judged_storable_exactly_when_the_typed_layer_can_read_it(first_sample, verdict) -> None:
    body = _STREAMS % first_sample
    reason = unstorable_reason(body, "activity 1")
    if verdict is None:
        assert reason is None
        assert orjson.loads(body)["heartrate"]["data"][0] is not None
    else:
        assert reason is not None and verdict in reason
    assert jsonb_unstorable_reason(body) == reason
    wrong_shape = _STREAMS.replace(b'"time": {"data": [0, 1, 2]}', b'"time": {"data": 5}') % first_sample
    if verdict is None:
        assert unstorable_reason(wrong_shape, "activity 1") == (
            "is not a stream set: activity 1: field 'time.data' is not an array")
