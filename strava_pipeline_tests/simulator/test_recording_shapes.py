"""Our bodies have the shape of real Strava bodies (the recordings under shared/strava/recordings).

Rule: every key a real body has must be present in ours with the same JSON type, recursively
(int and float are one JSON "number"; null in the recording allows any type). "Where the real
athlete would have it": a real activity is matched against our activities of the same kind, and at
least one of ours must carry its full shape (a real run with a temperature sensor needs one of our
runs with a temperature sensor, not every run).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from strava_pipeline_tests.simulator.conftest import FULL_SCOPE, RECORDINGS, Api, cassette_bodies, needs_shared

pytestmark = needs_shared


def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape_gaps(real: Any, ours: Any, path: str = "$") -> list[str]:
    """Where `ours` lacks a key of `real` or has a different JSON type (empty list = same shape)."""
    if real is None:
        return []
    if jtype(real) != jtype(ours):
        return [f"{path}: {jtype(real)} in recording, {jtype(ours)} here"]
    gaps: list[str] = []
    if isinstance(real, dict):
        for key, value in real.items():
            if key not in ours:
                gaps.append(f"{path}.{key}: missing")
            else:
                gaps.extend(shape_gaps(value, ours[key], f"{path}.{key}"))
    elif isinstance(real, list) and real and ours:
        # Positions are not comparable one to one (e.g. latlng pairs, zones); compare first elements.
        gaps.extend(shape_gaps(real[0], ours[0], f"{path}[0]"))
    return gaps


def best_match(real: dict[str, Any], candidates: list[dict[str, Any]]) -> list[str]:
    """The gaps of the candidate that matches best (empty if one matches completely)."""
    assert candidates, "no candidate of the same kind"
    return min((shape_gaps(real, c) for c in candidates), key=len)


def real_summaries() -> list[dict[str, Any]]:
    return [a for _, _, page in cassette_bodies("strava-ruby-client/client/all_athlete_activities.yml")
            for a in page]


def kind(activity: dict[str, Any]) -> tuple[Any, ...]:
    return (activity["manual"], activity["start_latlng"] == [], activity["has_heartrate"])


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    from datetime import date

    from strava_pipeline.simulator import SimulatorConfig, StravaSimulator

    cfg = SimulatorConfig(seed=3, start_date=date(2024, 1, 1), end_date=date(2025, 6, 30), activities=400)
    with StravaSimulator(cfg) as sim:
        yield sim


def test_summary_activities_have_real_shape(big) -> None:
    ours = big.activities()
    real = real_summaries()
    always = set.intersection(*(set(a) for a in real))
    for a in ours:
        assert always <= set(a), f"{a['id']} lacks {always - set(a)}"
    by_kind: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for a in ours:
        by_kind.setdefault(kind(a), []).append(a)
    failures = {}
    shapes = {}
    for r in real:  # 1132 real activities, a few dozen distinct shapes
        shapes.setdefault(tuple(sorted((k, jtype(v)) for k, v in r.items())), r)
    for r in shapes.values():
        gaps = best_match(r, by_kind.get(kind(r), []))
        if gaps:
            failures[r["id"]] = gaps
    assert not failures, list(failures.items())[:5]


def _detailed(big, pick, limit: int = 12) -> list[dict[str, Any]]:
    api = Api(big, big.authorize(FULL_SCOPE)["access_token"])
    chosen = [a for a in big.activities() if pick(a)][:limit]
    return [api.get(f"/activities/{a['id']}").json() for a in chosen]


@pytest.mark.parametrize(
    ("relpath", "pick"),
    [
        ("strava-ruby-client/client/activity.yml",
         lambda a: a["type"] == "Run" and not a["manual"] and a["has_heartrate"] and a["total_photo_count"]),
        ("strava-ruby-client/client/activity_ride.yml",
         lambda a: a["type"] == "Ride" and not a["manual"] and a["has_heartrate"] and a["total_photo_count"]),
    ],
)
def test_detailed_activity_has_real_shape(big, relpath: str, pick) -> None:
    (_, _, real), = cassette_bodies(relpath)
    gaps = best_match(real, _detailed(big, pick))
    assert not gaps, gaps


def test_manual_detailed_activity_has_real_shape(big) -> None:
    real = json.loads((RECORDINGS / "elevate" / "5002496450.json").read_text())["activity"]
    gaps = best_match(real, _detailed(big, lambda a: a["manual"] and a["type"] == "Run", limit=100))
    # Keys of 2021 that Strava no longer sends (and our 2025-shaped bodies lack) are tolerated.
    assert [g for g in gaps if "missing" not in g] == []


def test_streams_have_real_shape(big) -> None:
    api = Api(big, big.authorize(FULL_SCOPE)["access_token"])
    ride = next(a for a in big.activities() if a["sport_type"] == "Ride" and not a["manual"]
                and a["has_heartrate"] and a.get("device_watts") and "average_temp" in a)
    keys = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"
    array = api.get(f"/activities/{ride['id']}/streams", keys=keys).json()
    ours = {s["type"]: s for s in array}
    real = json.loads((RECORDINGS / "go.strava" / "activity_stream.pre-null-edit.body").read_text())
    for stream in real:
        assert stream["type"] in ours
        assert not shape_gaps(stream, ours[stream["type"]]), stream["type"]
    # key_by_type form against the Oct 2025 recording (distance only when no keys are sent).
    (_, _, real_by_type), = cassette_bodies("strava-ruby-client/client/activity_streams.yml")
    ours_by_type = api.get(f"/activities/{ride['id']}/streams", key_by_type="true").json()
    assert set(ours_by_type) == set(real_by_type) == {"distance"}
    assert not shape_gaps(real_by_type, ours_by_type)


def test_athlete_token_gear_and_error_shapes(big) -> None:
    tokens = big.authorize(FULL_SCOPE)
    api = Api(big, tokens["access_token"])
    (_, _, real_athlete), = cassette_bodies("strava-ruby-client/client/athlete.yml")
    athlete = api.get("/athlete").json()
    assert not shape_gaps({k: v for k, v in real_athlete.items() if k != "clubs"}, athlete)
    (_, _, real_zones), = cassette_bodies("strava-ruby-client/client/athlete_zones.yml")
    assert not shape_gaps(real_zones, api.get("/athlete/zones").json())
    (_, _, real_stats), = cassette_bodies("strava-ruby-client/client/athlete_stats.yml")
    assert not shape_gaps(real_stats, api.get(f"/athletes/{big.athlete_id}/stats").json())
    for _, _, real_gear in cassette_bodies("strava-ruby-client/client/gear.yml"):
        kind_list = athlete["bikes"] if real_gear["id"].startswith("b") else athlete["shoes"]
        assert not shape_gaps(real_gear, api.get(f"/gear/{kind_list[0]['id']}").json())
    (_, _, real_laps), = cassette_bodies("strava-ruby-client/client/activity_laps.yml")
    run = next(a for a in big.activities() if a["type"] == "Run" and not a["manual"] and a["has_heartrate"])
    assert not shape_gaps(real_laps, api.get(f"/activities/{run['id']}/laps").json())

    (_, _, real_code), = cassette_bodies("strava-ruby-client/oauth/token_authorization_code.yml")
    assert not shape_gaps(real_code, tokens)
    (_, _, real_refresh), = cassette_bodies("strava-ruby-client/oauth/token_refresh_token.yml")
    refreshed = api.refresh(tokens["refresh_token"]).json()
    assert not shape_gaps(real_refresh, refreshed)
    assert "athlete" not in refreshed

    (_, _, real_invalid_code), = cassette_bodies("strava-ruby-client/oauth/token_invalid_code.yml")
    bad_code = api.post_oauth("/oauth/token", client_id=big.client_id, client_secret=big.client_secret,
                              grant_type="authorization_code", code="nope")
    assert bad_code.status_code == 400
    assert bad_code.json() == real_invalid_code
    (_, _, real_invalid_client), = cassette_bodies("strava-ruby-client/oauth/token_invalid_client.yml")
    bad_client = api.post_oauth("/oauth/token", client_id=1, client_secret="x", grant_type="refresh_token",
                                refresh_token="x")
    assert bad_client.json() == real_invalid_client
    real_401 = json.loads((RECORDINGS / "misc" / "marcbaldwin-StravaKit__invalid_access_token.json").read_text())
    assert api.get("/athlete", token="bogus").json() == real_401
    (_, _, real_deauth), = cassette_bodies("strava-ruby-client/client/deauthorize.yml")
    assert not shape_gaps(real_deauth, api.post_oauth("/oauth/deauthorize", access_token=api.token).json())
