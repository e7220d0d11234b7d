"""Rate limits: both buckets, both windows, Strava's headers and 429 body, clock-driven resets."""

from __future__ import annotations

from strava_pipeline_tests.simulator.conftest import T0, Api

RATE_LIMITED = {"message": "Rate Limit Exceeded",
                "errors": [{"resource": "Application", "field": "rate limit", "code": "exceeded"}]}


def test_short_window_429_and_reset(sim, clock, api: Api) -> None:
    sim.config.window_seconds = 60
    sim.app.limiter.window = 60
    sim.set_rate_limits(read=(5, 12), overall=(8, 20))
    clock.set(T0 + 7200)  # start of a window
    sim.reset_rate_usage()
    for i in range(1, 6):
        r = api.get("/athlete")
        assert r.status_code == 200
        assert r.headers["X-Readratelimit-Usage"] == f"{i},{i}"
        assert r.headers["X-Ratelimit-Usage"] == f"{i},{i}"
        assert r.headers["X-Readratelimit-Limit"] == "5,12" and r.headers["X-Ratelimit-Limit"] == "8,20"
    over = api.get("/athlete")
    assert over.status_code == 429 and over.json() == RATE_LIMITED
    assert "Retry-After" not in over.headers
    assert over.headers["X-Readratelimit-Usage"] == "6,6"  # rejected requests still count
    clock.advance(59.9)
    assert api.get("/athlete").status_code == 429
    clock.advance(0.1)  # the next aligned window
    r = api.get("/athlete")
    assert r.status_code == 200 and r.headers["X-Readratelimit-Usage"] == "1,8"


def test_daily_window(sim, clock, api: Api) -> None:
    sim.app.limiter.window = 10  # daily window = 960 s
    sim.set_rate_limits(read=(100, 4), overall=(100, 100))
    clock.set(T0)
    sim.reset_rate_usage()
    for _ in range(4):
        clock.advance(10)  # each request in a fresh short window
        assert api.get("/athlete").status_code == 200
    clock.advance(10)
    r = api.get("/athlete")
    assert r.status_code == 429 and r.headers["X-Readratelimit-Usage"] == "1,5"
    clock.set(T0 + 960)
    assert api.get("/athlete").status_code == 200


def test_overall_bucket_and_oauth_not_counted(sim, clock, api: Api) -> None:
    sim.set_rate_limits(read=(100, 1000), overall=(2, 1000))
    clock.set(T0 + 3 * 900)
    sim.reset_rate_usage()
    assert api.get("/athlete").status_code == 200
    tokens = sim.authorize("read")
    api.refresh(tokens["refresh_token"])  # OAuth is not rate limited
    assert api.get("/athlete").status_code == 200
    r = api.get("/athlete")
    assert r.status_code == 429 and r.headers["X-Ratelimit-Usage"] == "3,3"


def test_headers_on_every_api_response(sim, api: Api) -> None:
    for path, token in (("/athlete", None), ("/activities/1", None), ("/athlete", "bad"), ("/nope", None)):
        r = api.get(path, token=token)
        for h in ("X-Ratelimit-Limit", "X-Ratelimit-Usage", "X-Readratelimit-Limit", "X-Readratelimit-Usage"):
            assert h in r.headers, (path, h)
