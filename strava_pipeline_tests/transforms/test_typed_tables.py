"""Typed athlete, gear and activity tables from real recorded Strava payloads and from bad input."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from strava_pipeline.transforms.activities import (
    ACTIVITY_SCHEMA,
    activities_frame,
    listing_window,
    raw_activities_frame,
)
from strava_pipeline.transforms.athlete import ATHLETE_RAW_SCHEMA, athlete_frame, gear_frame, gear_ids
from strava_pipeline.transforms.errors import PayloadError
from strava_pipeline_tests.recordings import all_recorded_activities, recorded_json

FETCHED = datetime(2025, 10, 20, tzinfo=UTC)


def test_recorded_listing_types_every_activity_exactly() -> None:
    summaries = all_recorded_activities()
    raw = raw_activities_frame(summaries, FETCHED)
    typed = activities_frame(raw)
    assert typed.height == 1132 == len({s["id"] for s in summaries})
    assert typed.schema == pl.Schema(ACTIVITY_SCHEMA)
    first = typed.row(0, named=True)
    # Values of the newest recorded activity, read off the recording by hand.
    assert first["activity_id"] == 16195505756
    assert first["activity_date"] == date(2025, 10, 19)
    assert first["start_date"] == datetime(2025, 10, 19, 20, 0, tzinfo=UTC)
    assert first["start_date_local"] == datetime(2025, 10, 19, 16, 0)
    assert first["utc_offset_s"] == -14400
    assert first["distance_m"] == pytest.approx(6764.8)
    assert first["start_lat"] == pytest.approx(40.75533)
    # Raw payloads round-trip to the recorded JSON.
    assert [json.loads(p) for p in raw["payload"]] == summaries


def test_no_gps_activity_with_empty_latlng_has_null_coordinates() -> None:
    summaries = [s for s in all_recorded_activities() if s.get("start_latlng") == []]
    assert summaries, "the recording has trainer/no-GPS activities"
    typed = activities_frame(raw_activities_frame(summaries, FETCHED))
    assert typed["start_lat"].null_count() == typed.height


def test_local_date_not_utc_date_decides_the_partition() -> None:
    late_evening = {
        "id": 1,
        "start_date": "2024-03-02T07:30:00Z",
        "start_date_local": "2024-03-01T23:30:00Z",
        "timezone": "(GMT-08:00) America/Los_Angeles",
    }
    raw = raw_activities_frame([late_evening], FETCHED, days=[date(2024, 3, 1)])
    assert raw["activity_date"].to_list() == [date(2024, 3, 1)]
    assert raw_activities_frame([late_evening], FETCHED, days=[date(2024, 3, 2)]).is_empty()


def test_listing_window_covers_every_timezone_of_the_range() -> None:
    after, before = listing_window(date(2024, 3, 1), date(2024, 3, 1))
    kiribati_morning = datetime(2024, 2, 29, 10, 0, 1, tzinfo=UTC).timestamp()  # 00:00:01 local at UTC+14
    baker_night = datetime(2024, 3, 2, 11, 59, tzinfo=UTC).timestamp()  # 23:59 local at UTC-12
    assert after < kiribati_morning < before
    assert after < baker_night < before


def test_bad_field_names_the_activity_and_the_field() -> None:
    bad = {"id": 77, "start_date": "2024-01-01T10:00:00Z", "start_date_local": "2024-01-01T11:00:00Z",
           "distance": "far"}
    with pytest.raises(PayloadError, match=r"activity 77: field 'distance'"):
        activities_frame(raw_activities_frame([bad], FETCHED))


def test_missing_start_date_is_a_clear_error() -> None:
    with pytest.raises(PayloadError, match=r"activity 5: field 'start_date_local' is missing"):
        raw_activities_frame([{"id": 5}], FETCHED)


def test_emoji_and_sql_looking_names_are_kept_verbatim() -> None:
    name = "Morning run 🏃‍♀️ 東京 '); DROP TABLE activities; --"
    payload = {"id": 9, "name": name, "start_date": "2024-01-01T10:00:00Z",
               "start_date_local": "2024-01-01T11:00:00Z"}
    typed = activities_frame(raw_activities_frame([payload], FETCHED))
    assert typed["name"].to_list() == [name]


def _athlete_raw(*docs: tuple[str, str, object]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"resource": r, "resource_id": i, "fetched_at": FETCHED, "payload": json.dumps(d)} for r, i, d in docs],
        schema=ATHLETE_RAW_SCHEMA,
    )


def test_recorded_athlete_zones_and_gear_are_typed() -> None:
    profile = recorded_json("strava-ruby-client/client/athlete.yml")
    zones = recorded_json("strava-ruby-client/client/athlete_zones.yml")
    shoe = recorded_json("strava-ruby-client/client/gear.yml")
    raw = _athlete_raw(("athlete", str(profile["id"]), profile), ("zones", str(profile["id"]), zones),
                       ("gear", shoe["id"], shoe))
    row = athlete_frame(raw).row(0, named=True)
    assert row["athlete_id"] == 26462176
    assert row["weight_kg"] == pytest.approx(95.255)
    assert [row[f"hr_zone_{i}_min_bpm"] for i in range(1, 6)] == [0, 111, 139, 152, 166]
    gear = gear_frame(raw).row(0, named=True)
    assert (gear["gear_id"], gear["gear_type"], gear["retired"]) == ("g3423618", "shoes", True)
    assert gear["distance_m"] == pytest.approx(966309)
    assert gear_ids(profile) == list(dict.fromkeys(g["id"] for g in profile["bikes"] + profile["shoes"]))
