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


def _usual_body() -> dict:
    return {"time": {"data": [0, 1, 3, 4]}, "distance": {"data": [0, 1.5, 4e0, 5.25]},
            "latlng": {"data": [[51.5, -0.1], [51.500001, -0.100002], [-0.0, 0], [1e-3, 179.99999999999997]]},
            "heartrate": {"data": [100, 101, 102, 103]}, "moving": {"data": [False, True, True, True]},
            "watts_calc": {"data": [0, 212, 211, 200]}, "cadence": {"data": [0, 80.5, 81, 82]}}


def test_every_payload_gives_the_samples_activity_stream_frame_gives_in_row_order() -> None:
    """The usual payload is read by a faster path than unusual ones (nulls, whole floats in an integer stream,
    the array form, odd JSON text); a mixed batch must still be each row's samples, in row order."""
    usual = _usual_body()
    with_nulls = {**usual, "heartrate": {"data": [None, 101, None, 103]},
                  "latlng": {"data": [None, [1, 2], [3, 4], None]}}
    whole_floats = {**usual, "heartrate": {"data": [100.0, 101.0, 102.0, 103.0]}}
    array_form = [{"type": k, **v} for k, v in usual.items()]
    no_position = {k: v for k, v in usual.items() if k not in ("latlng", "moving")}
    texts = [
        json.dumps(usual), json.dumps(with_nulls), json.dumps(usual, indent=2), json.dumps(whole_floats),
        json.dumps(array_form), json.dumps(no_position), json.dumps(usual),
        json.dumps(usual).replace('"time":', '"time": {"data": [9, 9, 9, 9]}, "time":', 1),  # the last one counts
        json.dumps({**usual, "time": {"data": [0, 1, 3, 4], "series_type": "dist[ance"}}),
        json.dumps({"time": {"data": []}}),
        json.dumps({**usual, "watts_calc": {"data": [[1], "x", None, {}]}}),  # unknown types are not read
    ]
    raw = pl.DataFrame([{"activity_id": i, "activity_date": DAY, "summary_fingerprint": "x", "status": "ok",
                         "fetched_at": None, "payload": text} for i, text in enumerate(texts)],
                       schema=STREAMS_RAW_SCHEMA)
    expected = pl.concat([activity_stream_frame(i, DAY, json.loads(text)) for i, text in enumerate(texts)])
    frame = streams_frame(raw)
    assert frame.schema == pl.Schema(STREAM_SCHEMA)
    assert frame.equals(expected)
    assert frame.filter(pl.col("activity_id") == 7)["time_s"].to_list() == [0, 1, 3, 4]
    assert frame.filter(pl.col("activity_id") == 1)["heartrate_bpm"].to_list() == [None, 101, None, 103]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"heartrate": {"data": [100, 101.5, 102, 103]}}, "fractional values"),
        ({"watts": {"data": [0, 40000, 1, 2]}}, "out of range"),
        ({"latlng": {"data": [[1, 2], [3], [4, 5, 6], [7, 8]]}}, "not \\[lat, lng\\] pairs"),
        ({"latlng": {"data": [[1, 2], [[3], 4], [5, 6], [7, 8]]}}, "not \\[lat, lng\\] pairs"),
        ({"cadence": {"data": [[1], [2], [3], [4]]}}, "non-numeric"),
        ({"moving": {"data": [True, 1, True, True]}}, "non-boolean"),
    ],
)
def test_a_bad_sample_among_usual_ones_still_fails_its_activity_by_name(edit: dict, message: str) -> None:
    raw = pl.DataFrame([{"activity_id": i, "activity_date": DAY, "summary_fingerprint": "x", "status": "ok",
                         "fetched_at": None, "payload": json.dumps(body)}
                        for i, body in ((1, _usual_body()), (2, {**_usual_body(), **edit}))], schema=STREAMS_RAW_SCHEMA)
    with pytest.raises(PayloadError, match=f"activity 2: .*{message}"):
        streams_frame(raw)


def test_fingerprint_ignores_renames_and_kudos_but_not_a_crop() -> None:
    summary = {"id": 1, "name": "a", "kudos_count": 1, "elapsed_time": 3600, "distance": 10000.0,
               "start_date": "2024-01-01T10:00:00Z"}
    base = summary_fingerprint(summary)
    assert summary_fingerprint({**summary, "name": "b", "kudos_count": 9}) == base
    assert summary_fingerprint({**summary, "elapsed_time": 3000}) != base
