"""The synthetic athlete: determinism, realism, summary/stream agreement, and run-time changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import polyline
import requests

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline_tests.simulator.conftest import Api


def test_deterministic_from_the_seed() -> None:
    # Start-up time is measured by benchmarks/simulator_throughput.py, not asserted here.
    cfg = dict(seed=11, start_date=date(2023, 1, 1), end_date=date(2025, 12, 31), activities=1000)
    a = StravaSimulator(SimulatorConfig(**cfg)).start()
    b = StravaSimulator(SimulatorConfig(**cfg)).start()
    try:
        first = a.activities()
        assert first == b.activities()
        assert a.athlete_id == b.athlete_id and a.client_id == b.client_id
        ids = [x["id"] for x in a.activities()]
        assert len(set(ids)) == 1000 and all(10**9 < i < 10**11 for i in ids)
    finally:
        a.stop()
        b.stop()
    c = StravaSimulator(SimulatorConfig(**{**cfg, "seed": 12}))
    assert c.activities() != first and c.athlete_id != a.athlete_id


def test_realism(sim) -> None:
    acts = sim.activities()
    sports = {a["sport_type"] for a in acts}
    assert {"Run", "Ride", "VirtualRide", "Swim", "Hike", "Walk", "WeightTraining"} <= sports
    assert any(a["manual"] for a in acts) and any(a["private"] for a in acts)
    assert any(a["elapsed_time"] >= 8 * 3600 for a in acts)
    assert any(ord(ch) > 0x2E80 for a in acts for ch in a["name"])  # CJK / emoji
    for a in acts:
        zone = a["timezone"].split(") ", 1)[1]
        start = datetime.strptime(a["start_date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        local = start.astimezone(ZoneInfo(zone))
        assert a["start_date_local"] == local.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert a["utc_offset"] == local.utcoffset().total_seconds()
        assert a["visibility"] == ("only_me" if a["private"] else "everyone")
        if a["sport_type"] == "VirtualRide":
            assert a["trainer"] and a["start_latlng"] == []
        if a["manual"]:
            assert a["map"]["summary_polyline"] == "" and a["upload_id"] is None
    assert any(a["start_date"][:10] != a["start_date_local"][:10] for a in acts)
    offsets = {a["utc_offset"] for a in acts}
    assert len(offsets) >= 4  # several zones, DST included


def test_polylines_decode_to_the_route(sim, api: Api) -> None:
    """Summary and detailed maps are Google polylines (precision 5) of the route the GPS stream follows."""
    half_unit = 5e-6 + 1e-9  # precision 5 rounds each coordinate to the nearest 1e-5 degree
    gps = [a for a in sim.activities() if a["map"]["summary_polyline"]][:6]
    assert gps
    for a in gps:
        route = polyline.decode(a["map"]["summary_polyline"], 5)
        assert len(route) >= 2
        for got, want in ((route[0], a["start_latlng"]), (route[-1], a["end_latlng"])):
            assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= half_unit + 5e-7  # want: 6 places
        samples = api.get(f"/activities/{a['id']}/streams", keys="latlng", key_by_type="true").json()
        latlng = samples["latlng"]["data"]
        encoded = api.get(f"/activities/{a['id']}").json()["map"]["polyline"]
        step = max(1, len(latlng) // 1500)  # the detailed map keeps one sample in `step`, and the last
        expected = [*latlng[::step], latlng[-1]]
        decoded = polyline.decode(encoded, 5)
        assert len(decoded) == len(expected)
        errors = [abs(g - w) for p, q in zip(decoded, expected, strict=True) for g, w in zip(p, q, strict=True)]
        assert max(errors) <= half_unit


def test_ride_power_is_paced_against_the_athletes_ftp(sim, api: Api) -> None:
    # The demo's training report computes IF and TSS from this: a ride must not average above threshold,
    # and a long one must be paced like one (IF 1.3 over nine hours would read as a broken tool).
    ftp = api.get("/athlete").json()["ftp"]
    rides = [a for a in sim.activities() if a.get("average_watts") is not None]
    assert rides
    for ride in rides:
        assert 0.5 * ftp - 1 <= ride["average_watts"] <= 0.95 * ftp + 1, ride["name"]
        if ride["moving_time"] > 3 * 3600:
            assert ride["average_watts"] <= 0.7 * ftp + 1, ride["name"]


def test_summary_agrees_with_streams(sim, api: Api) -> None:
    checked = 0
    for a in sim.activities():
        if a["manual"] or checked >= 12:
            continue
        checked += 1
        s = api.get(f"/activities/{a['id']}/streams", keys="time,distance,latlng,altitude,heartrate,moving,"
                    "velocity_smooth,watts,cadence", key_by_type="true").json()
        n = len(s["time"]["data"])
        assert all(len(v["data"]) == n == v["original_size"] for v in s.values())
        assert s["time"]["data"][-1] == a["elapsed_time"]
        assert abs(s["distance"]["data"][-1] - a["distance"]) < 0.2
        t, mv = s["time"]["data"], s["moving"]["data"]
        moving = sum(t[i] - t[i - 1] for i in range(1, n) if mv[i])
        assert abs(moving - a["moving_time"]) <= max(10, 0.02 * a["moving_time"])
        assert max(b - a_ for a_, b in pairwise(t)) <= 5
        if "latlng" in s:
            assert s["latlng"]["data"][0] == [round(x, 6) for x in a["start_latlng"]] or \
                abs(s["latlng"]["data"][0][0] - a["start_latlng"][0]) < 1e-4
            route = polyline.decode(a["map"]["summary_polyline"])
            assert abs(route[-1][0] - a["end_latlng"][0]) < 1e-4
        if a["has_heartrate"]:
            hr = [h for h, m in zip(s["heartrate"]["data"], mv, strict=False) if m]
            assert abs(sum(hr) / len(hr) - a["average_heartrate"]) < 3
            assert max(s["heartrate"]["data"]) == a["max_heartrate"]
        if "altitude" in s:
            alt = s["altitude"]["data"]
            assert abs(max(alt) - a["elev_high"]) < 1.5 and abs(min(alt) - a["elev_low"]) < 1.5
        laps = api.get(f"/activities/{a['id']}/laps").json()
        assert abs(sum(lap["distance"] for lap in laps) - a["distance"]) < 1
        assert laps[-1]["end_index"] == n - 1
    assert checked == 12


def test_changes_through_python(sim, api: Api) -> None:
    before = sim.activity_ids()
    new_id = sim.add_activity(start_date_local="2025-06-01T07:00:00", sport_type="Run", name="Added 🆕")
    assert new_id not in before and new_id > max(before)
    assert sim.activity_ids() == before | {new_id}
    listed = api.get("/athlete/activities", per_page=200).json()
    assert any(a["id"] == new_id and a["name"] == "Added 🆕" for a in listed)
    assert api.get(f"/activities/{new_id}/streams", keys="time").status_code == 200
    sim.update_activity(new_id, name="renamed", private=True)
    got = api.get(f"/activities/{new_id}").json()
    assert got["name"] == "renamed" and got["visibility"] == "only_me"
    sim.delete_activity(new_id)
    assert api.get(f"/activities/{new_id}").status_code == 404
    assert sim.activity_ids() == before


def test_changes_through_admin_http(sim, api: Api) -> None:
    base = sim.base_url + "/_simulator"
    r = requests.post(base + "/activities", json={"start_date_local": "2025-07-04T18:30:00",
                                                  "sport_type": "Ride", "zone": "Europe/Paris"})
    assert r.status_code == 201
    new_id = r.json()["id"]
    assert new_id in sim.activity_ids()
    act = next(a for a in sim.activities() if a["id"] == new_id)
    assert act["start_date_local"] == "2025-07-04T18:30:00Z" and act["start_date"] == "2025-07-04T16:30:00Z"
    assert requests.patch(f"{base}/activities/{new_id}", json={"name": "Tour 🇫🇷"}).json()["name"] == "Tour 🇫🇷"
    assert requests.delete(f"{base}/activities/{new_id}").status_code == 204
    assert requests.delete(f"{base}/activities/{new_id}").status_code == 404
    assert new_id not in sim.activity_ids()
    api.get("/athlete")
    log = requests.get(base + "/requests").json()
    assert log[-1]["path"] == "/api/v3/athlete" and log[-1]["status"] == 200
    assert requests.get(base + "/activities").json() == sim.activities()
    assert requests.delete(base + "/requests").status_code == 204 and sim.request_log == []


def test_no_future_activities(clock) -> None:
    clock.set(datetime(2025, 3, 1, 12, tzinfo=UTC).timestamp())
    sim = StravaSimulator(SimulatorConfig(seed=2, start_date=date(2025, 2, 1), activities=120, clock=clock))
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    for a in sim.activities():
        start = datetime.strptime(a["start_date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert start + timedelta(seconds=a["elapsed_time"]) <= now
