"""The API misbehaving the ways Strava and the network do: the tables still end up equal to the truth."""

from __future__ import annotations

import dataclasses

import pytest

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline_tests.e2e.faults._truth import END, START, assert_matches_truth, month_config

ASSETS = ["athlete_raw", "activities_raw", "activities", "streams_raw", "activity_streams"]

CASES = {
    "5xx_bursts": ("streams:500=#3,athlete/activities:503=#2,athlete:502=#1", {500, 502, 503}),
    "slower_than_timeout": ("streams:slow=#2@3,athlete/activities:slow=#1@3", None),
    "connection_resets": ("streams:reset=#3,athlete/activities:reset=#1,athlete/zones:reset=#1", {0}),
    "truncated_json": ("streams:truncate=#3,athlete/activities:truncate=#1,athlete:truncate=#1", None),
    "malformed_json": ("streams:malformed=#3,athlete/activities:malformed=#1,athlete/zones:malformed=#1", None),
    "no_rate_limit_headers": ("*:noheaders=1", None),
    "token_expires_mid_run": ("streams:expired=#1", {401}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_backfill_survives_api_faults(case: str, make_pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, statuses = CASES[case]
    p = make_pipeline(month_config(seed=31))
    settings = p.settings
    if case == "slower_than_timeout":  # a 1 s read timeout, as STRAVA_REQUEST_TIMEOUT_SECONDS=1 would set
        settings = dataclasses.replace(settings, request_timeout_seconds=1.0)
    batches_done: list[str] = []

    def after_batch(message: str) -> None:
        batches_done.append(message)
        if case == "token_expires_mid_run" and len(batches_done) == 1:
            p.sim.expire_access_tokens()

    # token_expires_mid_run: every access token really dies after the athlete run (the next run must refresh
    # on a 401); the injected spurious 401 then hits a stream request made with the fresh token. (An injected
    # 401 right after a real expiry's refresh is a second 401 for one request: the client treats it as revoked.)
    p.sim.set_faults(spec)

    run_backfill(settings, START, END, select=ASSETS, progress=after_batch)

    p.sim.wait_idle()  # slow answers to requests that timed out are logged once the server sends them
    log = p.sim.request_log
    api = [e for e in log if e.path.startswith("/api/v3/")]
    with_streams = [s for s in p.sim.activities() if not s["manual"]]
    stream_requests = [e for e in api if e.path.endswith("/streams")]
    if statuses is not None:
        assert {e.status for e in api} & statuses, f"the {case} fault fired"
    if case == "slower_than_timeout":
        assert sum(e.duration >= 2.5 for e in api) >= 3, "slow answers were served (and timed out client-side)"
    if case == "no_rate_limit_headers":
        assert len(stream_requests) == len(with_streams), "nothing was retried"
    else:
        assert len(stream_requests) > len(with_streams), "the faulty stream requests were retried"
    if case == "token_expires_mid_run":
        assert sum(e.path == "/oauth/token" for e in log) >= 3, "seed refresh + refresh after expiry + 401"
    assert_matches_truth(p)
