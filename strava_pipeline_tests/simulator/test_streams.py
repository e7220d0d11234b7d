"""Streams endpoint: both response forms, Strava's selection rules and 404s."""

from __future__ import annotations

from strava_pipeline_tests.simulator.conftest import Api

RESOURCE_NOT_FOUND = {"message": "Resource Not Found", "errors": []}


def test_forms_and_selection(sim, api: Api) -> None:
    a = next(x for x in sim.activities() if not x["manual"] and x["has_heartrate"] and x["start_latlng"])
    by_type = api.get(f"/activities/{a['id']}/streams", keys="heartrate", key_by_type="True").json()
    assert set(by_type) == {"heartrate", "distance"}  # the series_type stream always comes back
    for stream in by_type.values():
        assert stream["series_type"] == "distance" and stream["resolution"] == "high"
    array = api.get(f"/activities/{a['id']}/streams", keys="time,latlng,bogus").json()
    assert isinstance(array, list) and {s["type"] for s in array} == {"time", "latlng", "distance"}
    assert api.get(f"/activities/{a['id']}/streams").json()[0]["type"] == "distance"
    latlng = next(s for s in array if s["type"] == "latlng")["data"]
    assert all(len(p) == 2 for p in latlng[:50])
    old_style = api.get(f"/activities/{a['id']}/streams/time,moving", key_by_type="true").json()
    assert set(old_style) == {"time", "moving", "distance"}
    assert api.get(f"/activities/{a['id']}/streams", keys="time", resolution="all").status_code == 400


def test_missing_types_omitted_and_undocumented_types(sim, api: Api) -> None:
    keys = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"
    swim = next(x for x in sim.activities() if x["sport_type"] == "Swim" and not x["manual"])
    got = api.get(f"/activities/{swim['id']}/streams", keys=keys, key_by_type="true").json()
    assert "latlng" not in got and "watts" not in got and "time" in got
    virtual = next(x for x in sim.activities() if x["sport_type"] == "VirtualRide")
    got = api.get(f"/activities/{virtual['id']}/streams", keys="time", key_by_type="true").json()
    assert "watts_calc" in got  # undocumented, unasked, deterministic
    run = next(x for x in sim.activities() if x["sport_type"] == "Run" and not x["manual"])
    assert "watts_calc" not in api.get(f"/activities/{run['id']}/streams", keys=keys, key_by_type="true").json()


def test_404s(sim, api: Api) -> None:
    manual = next(x for x in sim.activities() if x["manual"])
    r = api.get(f"/activities/{manual['id']}/streams", keys="time")
    assert r.status_code == 404 and r.json() == RESOURCE_NOT_FOUND
    r = api.get("/activities/123/streams", keys="time")
    assert r.status_code == 404
    assert r.json() == {"message": "Record Not Found",
                        "errors": [{"resource": "Activity", "field": "id", "code": "invalid"}]}


def test_streams_are_stable_across_cache_eviction(sim, api: Api) -> None:
    a = next(x for x in sim.activities() if not x["manual"])
    first = api.get(f"/activities/{a['id']}/streams", keys="time,heartrate,latlng").content
    sim.app.streams.forget(a["id"])
    assert api.get(f"/activities/{a['id']}/streams", keys="time,heartrate,latlng").content == first
