"""Fault injection: grammar, determinism and every fault mode as a client sees it."""

from __future__ import annotations

import pytest
import requests

from strava_pipeline.simulator.faults import FaultInjector, FaultSpecError, parse
from strava_pipeline_tests.simulator.conftest import Api


def _first_gps_activity(sim) -> int:
    return next(a["id"] for a in sim.activities() if not a["manual"])


def test_grammar() -> None:
    rules = parse("streams:500=0.3, athlete/activities:reset=0.1;streams:slow=0.5@3 *:503=#2")
    assert [(r.endpoint, r.kind, r.rate, r.remaining, r.seconds) for r in rules] == [
        ("streams", "500", 0.3, None, None), ("athlete/activities", "reset", 0.1, None, None),
        ("streams", "slow", 0.5, None, 3.0), ("*", "503", None, 2, None)]
    assert parse("") == []
    for bad in ("streams:500", "nowhere:500=1", "streams:404=1", "streams:500=2", "streams:oops=0.1"):
        with pytest.raises(FaultSpecError):
            parse(bad)


def test_rates_are_deterministic() -> None:
    draws = []
    for _ in range(2):
        inj = FaultInjector("streams:500=0.3", seed=5)
        draws.append([inj.draw("streams") is not None for _ in range(200)])
    assert draws[0] == draws[1] and 30 < sum(draws[0]) < 90
    assert FaultInjector("streams:500=1", seed=5).draw("laps") is None


def test_first_n_and_5xx(sim, api: Api) -> None:
    aid = _first_gps_activity(sim)
    sim.set_faults("streams:503=#2")
    codes = [api.get(f"/activities/{aid}/streams", keys="time").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert api.get(f"/activities/{aid}").status_code == 200
    sim.set_faults("*:500=#1")
    r = api.get("/athlete")
    assert r.status_code == 500 and r.json() == {"message": "error"}
    assert [e.status for e in sim.request_log[-3:]] == [200, 200, 500]


def test_reset(sim, api: Api) -> None:
    sim.set_faults("athlete/activities:reset=#1")
    with pytest.raises(requests.ConnectionError):
        api.get("/athlete/activities")
    assert api.get("/athlete/activities").status_code == 200
    assert sim.request_log[-2].status == 0


def test_truncate(sim, api: Api) -> None:
    sim.set_faults("athlete/activities:truncate=#1")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.get("/athlete/activities", per_page=50)
    assert len(api.get("/athlete/activities", per_page=50).json()) == 50


def test_malformed_noheaders_expired(sim, api: Api) -> None:
    sim.set_faults("athlete:malformed=#1")
    r = api.get("/athlete")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    sim.set_faults("athlete:noheaders=#1")
    r = api.get("/athlete")
    assert r.status_code == 200 and r.json()["id"] == sim.athlete_id
    assert not any(h.lower().startswith("x-ratelimit") or h.lower().startswith("x-readratelimit")
                   for h in r.headers)
    sim.set_faults("athlete:expired=#1")
    r = api.get("/athlete")
    assert r.status_code == 401 and r.json()["errors"][0]["field"] == "access_token"
    assert api.get("/athlete").status_code == 200


def _give_up_on_a_slow_gear_request(sim, api: Api) -> str:
    """Make the first gear request 1.5 s slow and time out on it after 0.3 s; return the gear id."""
    sim.set_faults("gear:slow=#1@1.5")
    gear_id = api.get("/athlete").json()["shoes"][0]["id"]
    with pytest.raises(requests.Timeout):
        api.session.get(f"{sim.base_url}/api/v3/gear/{gear_id}", timeout=0.3,
                        headers={"Authorization": f"Bearer {api.token}"})
    return gear_id


def test_slow(sim, api: Api) -> None:
    gear_id = _give_up_on_a_slow_gear_request(sim, api)
    assert api.get(f"/gear/{gear_id}").status_code == 200


def test_wait_idle_returns_once_answers_to_clients_that_gave_up_are_logged(sim, api: Api) -> None:
    _give_up_on_a_slow_gear_request(sim, api)
    sim.wait_idle()
    (slow,) = [e for e in sim.request_log if e.path.startswith("/api/v3/gear/")]
    assert slow.duration >= 1.5


def test_token_faults_and_admin_endpoint(sim, api: Api) -> None:
    tokens = sim.authorize("read")
    r = requests.post(f"{sim.base_url}/_simulator/faults", json={"spec": "token:502=#1"})
    assert r.status_code == 200
    assert api.refresh(tokens["refresh_token"]).status_code == 502
    assert api.refresh(tokens["refresh_token"]).status_code == 200  # a failed call does not rotate
    assert requests.post(f"{sim.base_url}/_simulator/faults", json={"spec": "bad"}).status_code == 400
