"""Every real recorded body our code reads goes through the parsers; malformed and extreme payloads either
land correctly or raise PayloadError naming the record and the field, never another exception type."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strava_pipeline.transforms.activities import ACTIVITY_SCHEMA, activities_frame, raw_activities_frame
from strava_pipeline.transforms.athlete import ATHLETE_RAW_SCHEMA, athlete_frame, gear_frame
from strava_pipeline.transforms.errors import PayloadError
from strava_pipeline.transforms.streams import (
    DOCUMENTED_STREAM_TYPES,
    STREAM_SCHEMA,
    STREAMS_RAW_SCHEMA,
    activity_stream_frame,
    stream_lengths,
    streams_by_type,
    streams_frame,
)
from strava_pipeline_tests.recordings import RECORDINGS, cassette_bodies, recorded_json

FETCHED = datetime(2025, 10, 20, tzinfo=UTC)
DAY = date(2024, 1, 1)
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the real recordings ----------------------------------------------------------------------------------


def _cassette_documents() -> dict[str, list[tuple[str, Any]]]:
    """Every 200 body of an endpoint we read, from every cassette, classified by endpoint."""
    found: dict[str, list[tuple[str, Any]]] = {"listing": [], "athlete": [], "zones": [], "gear": [], "streams": []}
    for path in sorted(RECORDINGS.rglob("*")):
        if path.suffix not in (".yml", ".yaml"):
            continue
        rel = str(path.relative_to(RECORDINGS))
        for i, (uri, status, body) in enumerate(cassette_bodies(rel)):
            route = urlsplit(uri).path
            kind = ("listing" if route.endswith("/athlete/activities") else "athlete" if route.endswith("/athlete")
                    else "zones" if route.endswith("/athlete/zones") else "gear" if re.search(r"/gear/[^/]+$", route)
                    else "streams" if re.search(r"/activities/\d+/streams", route) else None)
            if kind and status == 200:
                found[kind].append((f"{rel}#{i}", json.loads(body)))
    return found


CASSETTES = _cassette_documents()
BODY_FILES = {
    "listing": ["go.strava/current_athlete_list_activities.body", "go.strava/athlete_list_activies.body",
                "elevate/sample_activities.fixture.json"],
    "athlete": ["go.strava/current_athlete_get.body", "go.strava/athlete_get.body", "stravalib/athlete.2.json",
                "strava-ruby-client/models/detailed_athlete.json"],
    "zones": ["misc/StravaKit-StravaKit__athlete-zones-good.json"],
    "gear": ["go.strava/gear_get_bike.body", "go.strava/gear_get_shoe.body",
             "strava-ruby-client/models/detailed_gear/bike.json", "strava-ruby-client/models/detailed_gear/shoe.json"],
    "streams": ["elevate/sample_streams.fixture.json", "go.strava/activity_stream.body",
                "go.strava/activity_stream.pre-null-edit.body"],
}


def _documents(kind: str) -> list[tuple[str, Any]]:
    docs = list(CASSETTES[kind])
    for rel in BODY_FILES[kind]:
        data = json.loads((RECORDINGS / rel).read_text(encoding="utf-8"))
        if rel.startswith("elevate/sample_activities"):
            data = [item for page in data for item in page]  # a list of listing pages
        docs.append((rel, data))
    return docs


def _ids(docs: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in docs]


def test_every_kind_of_recording_is_found() -> None:
    counts = {kind: len(_documents(kind)) for kind in BODY_FILES}
    assert counts["listing"] > 50 and counts["athlete"] >= 5 and counts["gear"] >= 4
    assert counts["zones"] >= 2 and counts["streams"] >= 4


@pytest.mark.parametrize(("name", "listing"), _documents("listing"), ids=_ids(_documents("listing")))
def test_recorded_listings_land(name: str, listing: list[dict[str, Any]]) -> None:
    typed = activities_frame(raw_activities_frame(listing, FETCHED))
    assert typed.schema == pl.Schema(ACTIVITY_SCHEMA)
    assert typed["activity_id"].to_list() == list(dict.fromkeys(a["id"] for a in listing))
    assert typed["name"].to_list() == [a.get("name") for a in {a["id"]: a for a in reversed(listing)}.values()][::-1]


def _athlete_raw(*docs: tuple[str, str, object]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"resource": r, "resource_id": i, "fetched_at": FETCHED, "payload": json.dumps(d)} for r, i, d in docs],
        schema=ATHLETE_RAW_SCHEMA,
    )


@pytest.mark.parametrize(("name", "profile"), _documents("athlete"), ids=_ids(_documents("athlete")))
def test_recorded_athletes_land(name: str, profile: dict[str, Any]) -> None:
    zones = _documents("zones")
    for _, zone_doc in zones:
        row = athlete_frame(_athlete_raw(("athlete", str(profile.get("id")), profile),
                                         ("zones", str(profile.get("id")), zone_doc))).row(0, named=True)
        assert row["athlete_id"] == profile.get("id")
        assert row["hr_zone_1_min_bpm"] is not None


@pytest.mark.parametrize(("name", "gear"), _documents("gear"), ids=_ids(_documents("gear")))
def test_recorded_gear_lands(name: str, gear: dict[str, Any]) -> None:
    row = gear_frame(_athlete_raw(("gear", gear["id"], gear))).row(0, named=True)
    assert row["gear_id"] == gear["id"]
    assert row["gear_type"] == ("bike" if gear["id"].startswith("b") else "shoes")


@pytest.mark.parametrize(("name", "payload"), _documents("streams"), ids=_ids(_documents("streams")))
def test_recorded_streams_land_in_both_forms(name: str, payload: Any) -> None:
    as_list = payload if isinstance(payload, list) else [{"type": k, **v} for k, v in payload.items()]
    as_dict = {s["type"]: s for s in as_list}
    frames = [activity_stream_frame(7, DAY, form) for form in (as_list, as_dict)]
    assert frames[0].equals(frames[1])
    assert frames[0].height == len(next(iter(as_dict.values()))["data"]) > 10
    assert frames[0].schema == pl.Schema(STREAM_SCHEMA)
    raw = pl.DataFrame([{"activity_id": 7, "activity_date": DAY, "summary_fingerprint": "x", "status": "ok",
                         "fetched_at": FETCHED, "payload": json.dumps(payload)}], schema=STREAMS_RAW_SCHEMA)
    assert streams_frame(raw).equals(frames[0])


# --- malformed and extreme payloads -----------------------------------------------------------------------

BASE_SUMMARY = _documents("listing")[0][1][0]
HOSTILE_TEXT = st.sampled_from([
    "'); DROP TABLE activities; --", "Robert'); DELETE FROM strava.activities WHERE ('1'='1", "🏃‍♀️🔥💯 Morning run 🌄",
    "\x00nul\x00", "\u202eRTL override", "a" * 100_000, "", " ", "\\N", "\t\n\r", "NULL", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
])
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), HOSTILE_TEXT,
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _assert_payload_error(exc: PayloadError, entity_prefix: str) -> None:
    assert exc.entity.startswith(entity_prefix), exc
    assert exc.field and exc.field in str(exc), exc


@HYPOTHESIS
@given(
    drops=st.sets(st.sampled_from(sorted(BASE_SUMMARY)), max_size=6),
    changes=st.dictionaries(st.sampled_from([*sorted(BASE_SUMMARY), "id", "start_date_local", "name", "extra"]),
                            JUNK, max_size=4),
    name=HOSTILE_TEXT,
)
def test_malformed_summaries_land_or_name_the_activity_and_field(drops, changes, name) -> None:
    summary = {k: v for k, v in BASE_SUMMARY.items() if k not in drops}
    summary["name"] = name
    summary.update(changes)
    try:
        raw = raw_activities_frame([summary], FETCHED)
        typed = activities_frame(raw)
    except PayloadError as exc:
        _assert_payload_error(exc, "activity")
        return
    if raw["rejected"][0] is not None:  # jsonb cannot store it: it lands raw, rejected, without a typed row
        assert typed.height == 0 and json.loads(raw["payload"][0]) == {"id": int(summary["id"])}
        return
    assert typed.height == 1
    row = typed.row(0, named=True)
    assert row["activity_id"] == int(summary["id"])
    if isinstance(summary.get("name"), str):
        assert row["name"] == summary["name"]
    for value in row.values():
        assert not (isinstance(value, float) and not math.isfinite(value))


@HYPOTHESIS
@given(listing=st.lists(st.one_of(JUNK, st.just(BASE_SUMMARY)), max_size=4))
def test_listings_of_wrong_types(listing) -> None:
    try:
        typed = activities_frame(raw_activities_frame(listing, FETCHED))
    except PayloadError as exc:
        _assert_payload_error(exc, "activity")
        return
    assert typed.height == len({s["id"] for s in listing if isinstance(s, dict)})


STREAM_TYPES = ["time", "distance", "latlng", "altitude", "velocity_smooth", "heartrate", "cadence", "watts",
                "temp", "moving", "grade_smooth", "undocumented"]
SAMPLE = st.one_of(
    st.none(), st.booleans(), st.integers(-40_000, 40_000), st.integers(min_value=2**31, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), HOSTILE_TEXT,
    st.lists(st.floats(-90, 90), min_size=0, max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@HYPOTHESIS
@given(
    streams=st.dictionaries(st.sampled_from(STREAM_TYPES),
                            st.one_of(st.lists(SAMPLE, max_size=40), JUNK), min_size=0, max_size=6),
    array_form=st.booleans(),
    length=st.integers(0, 40),
)
def test_malformed_streams_land_or_name_the_activity_and_field(streams, array_form, length) -> None:
    payload: Any = {k: {"data": v, "series_type": "distance"} for k, v in streams.items()}
    if array_form:
        payload = [{"type": k, **v} for k, v in payload.items()]
    try:
        frame = activity_stream_frame(123, DAY, payload)
    except PayloadError as exc:
        _assert_payload_error(exc, "activity 123")
        return
    assert frame.schema == pl.Schema(STREAM_SCHEMA)
    documented = [v for k, v in streams.items() if k != "undocumented" and isinstance(v, list)]
    assert frame.height == (len(documented[0]) if documented else 0)


@HYPOTHESIS
@given(
    streams=st.dictionaries(st.sampled_from(STREAM_TYPES),
                            st.one_of(st.lists(SAMPLE, max_size=40), JUNK), min_size=0, max_size=6),
    array_form=st.booleans(),
)
def test_sample_counts_from_the_lazy_parser_match_the_transforms_parse(streams, array_form) -> None:
    # The equal-length check counts samples with simdjson; the typed transform parses with orjson. They
    # must agree on every payload: same counts, or both refuse it by name.
    payload: Any = {k: {"data": v, "series_type": "distance"} for k, v in streams.items()}
    if array_form:
        payload = [{"type": k, **v} for k, v in payload.items()]
    text = json.dumps(payload)  # NaN, Infinity and 70-bit integers included: both fast parsers refuse some
    try:
        expected: Any = {t: len(d) for t, d in streams_by_type(orjson.loads(text), "activity 5").items()
                         if t in DOCUMENTED_STREAM_TYPES}
    except (orjson.JSONDecodeError, PayloadError):
        expected = PayloadError
    try:
        counted: Any = stream_lengths(text, "activity 5")
    except PayloadError as exc:
        _assert_payload_error(exc, "activity 5")
        counted = PayloadError
    assert counted == expected


@HYPOTHESIS
@given(length=st.integers(1, 50), cut=st.integers(1, 50), victim=st.sampled_from(STREAM_TYPES[:-1]))
def test_unequal_stream_lengths_are_refused_by_name(length, cut, victim) -> None:
    payload = {"time": {"data": list(range(length))}, "heartrate": {"data": [120] * length},
               "latlng": {"data": [[45.0, 6.0]] * length}, "moving": {"data": [True] * length}}
    payload[victim] = {"data": ([[45.0, 6.0]] if victim == "latlng" else [1]) * (length + cut)}
    with pytest.raises(PayloadError) as failure:
        activity_stream_frame(9, DAY, payload)
    _assert_payload_error(failure.value, "activity 9")
    assert "unequal lengths" in str(failure.value) and victim in str(failure.value)


def test_activity_id_beyond_int64_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="'id'"):
        raw_activities_frame([{**BASE_SUMMARY, "id": 2**63}], FETCHED)


def test_integer_field_beyond_int64_is_refused_not_silently_nulled() -> None:
    raw = raw_activities_frame([{**BASE_SUMMARY, "moving_time": 2**70}], FETCHED)
    with pytest.raises(PayloadError, match="moving_time"):
        activities_frame(raw)


def test_huge_stream_arrays_land() -> None:
    n = 200_000
    payload = [{"type": "time", "data": list(range(n))}, {"type": "heartrate", "data": [150] * n},
               {"type": "latlng", "data": [[45.1, 6.2]] * n}, {"type": "watts", "data": [None] * n},
               {"type": "moving", "data": [True, False] * (n // 2)}]
    frame = activity_stream_frame(5, DAY, payload)
    assert frame.height == n and frame["sample_index"][-1] == n - 1 and frame["watts"].null_count() == n


def test_stream_payloads_that_are_not_json_name_the_activity() -> None:
    raw = pl.DataFrame([{"activity_id": 77, "activity_date": DAY, "summary_fingerprint": "x", "status": "ok",
                         "fetched_at": FETCHED, "payload": '{"time": {"data": [1, 2'}], schema=STREAMS_RAW_SCHEMA)
    with pytest.raises(PayloadError, match="activity 77"):
        streams_frame(raw)


BASE_PROFILE = recorded_json("strava-ruby-client/client/athlete.yml")
BASE_ZONES = recorded_json("strava-ruby-client/client/athlete_zones.yml")
BASE_GEAR = recorded_json("strava-ruby-client/client/gear.yml")


@HYPOTHESIS
@given(
    profile_changes=st.dictionaries(st.sampled_from(sorted(BASE_PROFILE)), JUNK, max_size=4),
    zones=st.one_of(st.just(BASE_ZONES), JUNK,
                    st.fixed_dictionaries({"heart_rate": st.one_of(JUNK, st.fixed_dictionaries(
                        {"custom_zones": JUNK, "zones": st.one_of(JUNK, st.lists(
                            st.one_of(JUNK, st.fixed_dictionaries({"min": JUNK, "max": JUNK})), max_size=6))}))})),
    gear_changes=st.dictionaries(st.sampled_from(sorted(BASE_GEAR)), JUNK, max_size=3),
)
def test_malformed_athlete_zones_and_gear_land_or_name_the_record_and_field(profile_changes, zones,
                                                                            gear_changes) -> None:
    profile = {**BASE_PROFILE, **profile_changes}
    gear = {**BASE_GEAR, **gear_changes}
    raw = _athlete_raw(("athlete", "26462176", profile), ("zones", "26462176", zones),
                       ("gear", str(BASE_GEAR["id"]), gear))
    for parse, prefixes in ((athlete_frame, ("athlete", "zones")), (gear_frame, ("gear",))):
        try:
            frame = parse(raw)
        except PayloadError as exc:
            assert exc.entity.startswith(prefixes), exc
            assert exc.field and exc.field in str(exc)
            continue
        assert frame.height == 1
