"""Listing semantics (paging, before/after, order) and scope checks."""

from __future__ import annotations

from strava_pipeline_tests.simulator.conftest import Api


def _all_pages(api: Api, **params) -> list[dict]:
    out, page = [], 1
    while True:
        r = api.get("/athlete/activities", page=page, **params)
        assert r.status_code == 200, r.text
        if not r.json():
            return out
        out.extend(r.json())
        page += 1


def test_default_page_size_and_newest_first(sim, api: Api) -> None:
    r = api.get("/athlete/activities")
    items = r.json()
    assert len(items) == 30
    truth = sim.activities()
    assert [a["id"] for a in items] == [a["id"] for a in truth[:30]]
    assert [a["start_date"] for a in items] == sorted((a["start_date"] for a in items), reverse=True)


def test_paging_covers_everything_then_empty(sim, api: Api) -> None:
    for per_page in (7, 30, 200):
        got = _all_pages(api, per_page=per_page)
        assert [a["id"] for a in got] == [a["id"] for a in sim.activities()]
    assert api.get("/athlete/activities", page=999, per_page=30).json() == []


def test_per_page_bounds(sim, api: Api) -> None:
    assert len(api.get("/athlete/activities", per_page=500).json()) == min(200, len(sim.activities()))
    for bad in (0, -3):
        r = api.get("/athlete/activities", per_page=bad)
        assert r.status_code == 400
        assert r.json()["message"] == "Bad Request"
    assert api.get("/athlete/activities", page=0).status_code == 400
    assert api.get("/athlete/activities", after="yesterday").status_code == 400


def test_before_after_window(sim, api: Api) -> None:
    from strava_pipeline.simulator.dataset import epoch_of

    truth = sim.activities()
    starts = sorted(epoch_of(a["start_date"]) for a in truth)
    lo, hi = starts[10], starts[40]
    window = _all_pages(api, after=lo, before=hi, per_page=7)
    expected = [a["id"] for a in truth if lo < epoch_of(a["start_date"]) < hi]
    assert [a["id"] for a in window] == expected  # newest first when both bounds are given
    # `after` alone comes back oldest first, as the real API does (slack-strava recordings).
    after_only = _all_pages(api, after=lo, per_page=10)
    assert [a["id"] for a in after_only] == [a["id"] for a in reversed(truth) if epoch_of(a["start_date"]) > lo]
    before_only = _all_pages(api, before=hi, per_page=50)
    assert [a["id"] for a in before_only] == [a["id"] for a in truth if epoch_of(a["start_date"]) < hi]


def test_private_activities_need_read_all(sim, make_api) -> None:
    truth = sim.activities()
    private = [a for a in truth if a["visibility"] == "only_me"]
    assert private and all(a["private"] for a in private)
    everyone = make_api("read,activity:read")
    listed = _all_pages(everyone, per_page=200)
    assert {a["id"] for a in listed} == {a["id"] for a in truth if a["visibility"] != "only_me"}
    assert everyone.get(f"/activities/{private[0]['id']}").status_code == 404
    assert everyone.get(f"/activities/{private[0]['id']}/streams", keys="time").status_code == 404
    full = make_api("read,activity:read_all")
    assert len(_all_pages(full, per_page=200)) == len(truth)
    assert full.get(f"/activities/{private[0]['id']}").status_code == 200


def test_missing_scopes_give_strava_bodies(sim, make_api) -> None:
    read_only = make_api("read")
    aid = sim.activities()[0]["id"]
    missing = {"message": "Authorization Error",
               "errors": [{"resource": "AccessToken", "field": "activity:read_permission", "code": "missing"}]}
    for path in ("/athlete/activities", f"/activities/{aid}", f"/activities/{aid}/streams", f"/activities/{aid}/laps"):
        r = read_only.get(path)
        assert r.status_code == 401
        assert r.json() == missing
    zones = read_only.get("/athlete/zones")
    assert zones.status_code == 401
    assert zones.json()["errors"][0]["field"] == "profile:read_permission"
    summary = read_only.get("/athlete").json()
    assert summary["resource_state"] == 2 and "bikes" not in summary
    detailed = make_api("read,profile:read_all").get("/athlete").json()
    assert detailed["resource_state"] == 3 and detailed["bikes"] and detailed["shoes"] and detailed["ftp"]


def test_stats_gear_and_token_in_query(sim, api: Api) -> None:
    assert api.get(f"/athletes/{sim.athlete_id}/stats").status_code == 200
    assert api.get(f"/athletes/{sim.athlete_id + 1}/stats").status_code == 403
    r = api.session.get(sim.base_url + "/api/v3/athlete", params={"access_token": api.token})
    assert r.status_code == 200
    assert api.get("/athlete", token="").status_code == 401
    assert "***" in str(sim.request_log[-2].query) and api.token not in str(sim.request_log)
