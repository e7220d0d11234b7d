"""STRAVA_SPORT_TYPES: parsing, the frames it filters, and stream planning that never requests other sports."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from strava_pipeline.ingest.stream_plan import cache_key, plan_streams
from strava_pipeline.ingest.summaries import read_summary_keys
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.transforms.activities import raw_activities_frame
from strava_pipeline.transforms.sport_filter import (
    SPORT_TYPES,
    SportTypesError,
    of_selected_activities,
    parse_sport_types,
    sport_filter,
)

DAY = date(2024, 3, 2)


def _summary(activity_id: int, sport_type: str | None, **extra: object) -> dict[str, object]:
    summary = {"id": activity_id, "start_date": "2024-03-02T08:00:00Z", "start_date_local": "2024-03-02T09:00:00Z",
               "manual": False, "elapsed_time": 3600, **extra}
    if sport_type is not None:
        summary["sport_type"] = sport_type
    return summary


def test_names_are_matched_case_insensitively_and_blanks_mean_every_sport() -> None:
    assert parse_sport_types("Run,TrailRun") == {"Run", "TrailRun"}
    assert parse_sport_types(" run , trailrun ,, VIRTUALRIDE ") == {"Run", "TrailRun", "VirtualRide"}
    assert parse_sport_types(["Ride"]) == {"Ride"}
    for unset in (None, "", " , ", ()):
        assert parse_sport_types(unset) is None


def test_an_unknown_name_is_one_line_naming_the_variable_and_the_valid_names() -> None:
    with pytest.raises(SportTypesError) as caught:
        parse_sport_types("Run,Runn,Biking")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("STRAVA_SPORT_TYPES: unknown sport types 'Runn', 'Biking'; valid: AlpineSki, ")
    assert all(name in message for name in SPORT_TYPES) and len(SPORT_TYPES) == 56


def test_every_frame_kind_is_filtered_by_its_sport() -> None:
    typed = pl.DataFrame({"activity_id": [1, 2, 3, 4], "sport_type": ["Run", "Ride", None, "TrailRun"]})
    assert sport_filter(typed, {"Run", "TrailRun"})["activity_id"].to_list() == [1, 4]
    assert sport_filter(typed, None).height == 4
    raw = raw_activities_frame([_summary(1, "Run"), _summary(2, "Ride"), _summary(3, None)], None)
    assert sport_filter(raw, {"Run"})["activity_id"].to_list() == [1]
    export = pl.DataFrame({"activity_id": [5, 6], "summary": [json.dumps(_summary(5, "Ride")), None]})
    assert sport_filter(export, {"Ride"})["activity_id"].to_list() == [5]
    assert sport_filter(pl.DataFrame(), {"Run"}).width == 0  # never materialised
    samples = pl.DataFrame({"activity_id": [1, 1, 2, 4], "time_s": [0, 1, 0, 0]})
    assert of_selected_activities(samples, typed, {"Run"})["activity_id"].to_list() == [1, 1]
    assert of_selected_activities(samples, typed, None).height == 4


def test_planning_requests_only_the_selected_sports_and_keeps_what_landed(tmp_path: Path) -> None:
    """A ride that landed before the filter keeps its row (free); a new ride is never requested."""
    raw = raw_activities_frame([_summary(1, "Run"), _summary(2, "Ride"), _summary(3, "Ride", distance=1.0),
                                _summary(4, "Ride", distance=2.0)], None)
    keys = raw.select("activity_id", "summary_fingerprint").rows()
    fingerprints = dict(keys)
    landed = {2: {"activity_id": 2, "activity_date": DAY, "summary_fingerprint": fingerprints[2], "status": "ok"}}
    cache = LandingCache(tmp_path)
    cache.put(cache_key(3, fingerprints[3]), b'{"time": {"data": [0]}}')  # fetched before the filter was set
    requestable = set(sport_filter(raw, {"Run"})["activity_id"].to_list())

    plan = plan_streams(raw, landed, cache, refetch=False, requestable=requestable)

    assert [a for a, _, _ in plan.to_fetch] == [1]
    assert [r["activity_id"] for r in plan.reused_rows] == [2]
    assert [a for a, _, _, _ in plan.cached] == [3]
    forced = plan_streams(raw, {}, cache, refetch=True, requestable=requestable)
    assert [a for a, _, _ in forced.to_fetch] == [1]

    def read(asset: str, days: object, columns: object) -> pl.DataFrame:
        return raw.select(columns) if columns else raw

    assert read_summary_keys(read, [DAY], {"Ride"})["activity_id"].to_list() == [2, 3, 4]
    assert read_summary_keys(read, [DAY])["activity_id"].to_list() == [1, 2, 3, 4]
