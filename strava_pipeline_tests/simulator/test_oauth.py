"""OAuth: authorize redirect, code exchange, expiry, strict refresh rotation, deauthorize."""

from __future__ import annotations

import urllib.parse

import requests

from strava_pipeline_tests.simulator.conftest import Api

REFRESH_INVALID = {"message": "Bad Request",
                   "errors": [{"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}]}
TOKEN_INVALID = {"message": "Authorization Error",
                 "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}]}


def test_authorize_redirect_and_code_exchange(sim) -> None:
    s = requests.Session()
    r = s.get(sim.base_url + "/oauth/authorize", allow_redirects=False, params={
        "client_id": sim.client_id, "redirect_uri": "http://localhost:9/cb", "response_type": "code",
        "scope": "read,activity:read_all,bogus", "state": "xyz", "approval_prompt": "force"})
    assert r.status_code == 302
    loc = urllib.parse.urlsplit(r.headers["Location"])
    q = dict(urllib.parse.parse_qsl(loc.query))
    assert loc.netloc == "localhost:9" and q["state"] == "xyz" and q["scope"] == "read,activity:read_all"
    form = {"client_id": sim.client_id, "client_secret": sim.client_secret, "code": q["code"],
            "grant_type": "authorization_code"}
    tok = s.post(sim.base_url + "/oauth/token", data=form)
    assert tok.status_code == 200
    body = tok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 21600
    assert body["athlete"]["id"] == sim.athlete_id and body["athlete"]["resource_state"] == 2
    again = s.post(sim.base_url + "/api/v3/oauth/token", params=form)  # alias path, query params
    assert again.status_code == 400
    assert again.json()["errors"][0] == {"resource": "RequestToken", "field": "code", "code": "invalid"}
    bad = s.get(sim.base_url + "/oauth/authorize", allow_redirects=False,
                params={"client_id": 1, "redirect_uri": "http://x", "response_type": "code", "scope": "read"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "client_id"


def test_expiry_and_strict_rotation(sim, clock, api: Api) -> None:
    first = sim.authorize("read,activity:read")
    assert api.get("/athlete", token=first["access_token"]).status_code == 200
    # More than an hour left: same access token back, but always a new refresh token.
    r1 = api.refresh(first["refresh_token"]).json()
    assert r1["access_token"] == first["access_token"] and r1["refresh_token"] != first["refresh_token"]
    assert "athlete" not in r1
    old = api.refresh(first["refresh_token"])
    assert old.status_code == 400 and old.json() == REFRESH_INVALID
    # Within the last hour: a new access token; the older one still works until it expires.
    clock.advance(21600 - 3000)
    r2 = api.refresh(r1["refresh_token"]).json()
    assert r2["access_token"] != first["access_token"] and r2["expires_in"] == 21600
    assert api.get("/athlete", token=first["access_token"]).status_code == 200
    clock.advance(3001)
    expired = api.get("/athlete", token=first["access_token"])
    assert expired.status_code == 401 and expired.json() == TOKEN_INVALID
    assert api.get("/athlete", token=r2["access_token"]).status_code == 200
    assert "X-Ratelimit-Usage" in expired.headers


def test_expire_access_tokens_and_recover(sim, api: Api) -> None:
    tokens = sim.authorize("read,activity:read_all")
    sim.expire_access_tokens()
    assert api.get("/athlete", token=tokens["access_token"]).status_code == 401
    fresh = api.refresh(tokens["refresh_token"]).json()
    assert fresh["access_token"] != tokens["access_token"]
    assert api.get("/athlete/activities", token=fresh["access_token"]).status_code == 200


def test_bad_client_and_deauthorize(sim, api: Api) -> None:
    tokens = sim.authorize("read")
    wrong = api.post_oauth("/oauth/token", client_id=sim.client_id, client_secret="nope",
                           grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert wrong.status_code == 401
    d = api.post_oauth("/oauth/deauthorize", access_token=tokens["access_token"])
    assert d.status_code == 200 and d.json() == {"access_token": tokens["access_token"]}
    assert api.get("/athlete", token=tokens["access_token"]).status_code == 401
    assert api.get("/athlete").status_code == 401  # every token of the athlete is revoked
    assert api.refresh(tokens["refresh_token"]).status_code == 400
