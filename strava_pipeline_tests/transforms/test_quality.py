"""The rules of the data-quality checks, on small frames (the checks themselves run in e2e/derived)."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from strava_pipeline.transforms.quality import (
    duplicate_id_problems,
    heartrate_problems,
    missing_streams_problems,
    row_count_problems,
    unequal_stream_problems,
)
from strava_pipeline_tests.recordings import RECORDINGS


def test_duplicate_and_null_ids() -> None:
    assert duplicate_id_problems(pl.DataFrame({"activity_id": [1, 2, 3]})) == []
    assert duplicate_id_problems(pl.DataFrame({"activity_id": [1, 2, 2, None]})) == [2, -1]
    assert duplicate_id_problems(pl.DataFrame(schema={"activity_id": pl.Int64})) == []


def test_missing_streams_ignores_manual_and_accepts_recorded_404() -> None:
    raw = pl.DataFrame({"activity_id": [1, 2, 3, 4], "manual": [False, True, False, False]})
    streams = pl.DataFrame({"activity_id": [1, 3], "status": ["ok", "not_found"]})
    assert missing_streams_problems(raw, streams) == [4]
    assert missing_streams_problems(raw, pl.DataFrame()) == [1, 3, 4]


def test_unequal_streams_only_documented_types_count() -> None:
    good = json.dumps({"time": {"data": [0, 1]}, "heartrate": {"data": [90, 91]}, "watts_calc": {"data": [1]}})
    bad = json.dumps({"time": {"data": [0, 1, 2]}, "heartrate": {"data": [90, 91]}})
    frame = pl.DataFrame({"activity_id": [1, 2, 3, 4], "status": ["ok", "ok", "not_found", "ok"],
                          "payload": [good, bad, None, "not json"]})
    assert unequal_stream_problems(frame) == {2: {"time": 3, "heartrate": 2}, 4: {"<payload>": -1}}


def test_unequal_streams_are_found_in_the_array_form_and_recorded_bodies() -> None:
    # Lengths come from simdjson's lazy arrays; the array form and real recordings must count the same.
    recorded = (RECORDINGS / "elevate/sample_streams.fixture.json").read_text()  # array form, watts_calc
    array_form = json.dumps([{"type": "time", "data": [0, 1, 2]}, {"type": "latlng", "data": [[1.0, 2.0]]}])
    truncated = recorded[: len(recorded) // 2]
    frame = pl.DataFrame({"activity_id": [1, 2, 3, 4], "status": ["ok"] * 4,
                          "payload": [recorded, array_form, truncated, None]})  # 4: "ok" yet nothing landed
    assert unequal_stream_problems(frame) == {2: {"time": 3, "latlng": 1}, 3: {"<payload>": -1}, 4: {"<payload>": -1}}


def test_heartrate_bounds_are_inclusive_and_nulls_allowed() -> None:
    frame = pl.DataFrame({"activity_id": [1, 1, 2, 2, 3], "heartrate_bpm": [25, 250, 24, None, 251]},
                         schema={"activity_id": pl.Int64, "heartrate_bpm": pl.Int16})
    assert heartrate_problems(frame) == {2: 1, 3: 1}


def test_row_counts_per_day() -> None:
    d1, d2, d3 = date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)
    raw = pl.DataFrame({"activity_id": [1, 2, 3], "activity_date": [d1, d1, d2]})
    typed = pl.DataFrame({"activity_id": [1, 2], "activity_date": [d1, d1]})
    assert row_count_problems(raw, typed, [d1, d2, d3]) == {"2024-01-02": (1, 0)}
