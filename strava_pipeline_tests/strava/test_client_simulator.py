"""Integration tests: the real client over real HTTP against the project's Strava simulator.

Nothing in our HTTP layer is mocked.  Backoff is shortened (``backoff_factor``) so fault tests run fast; the
compressed-window rate-limit test really lets a few seconds of server time pass.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from strava_pipeline.strava import (
    ALL_STREAM_KEYS,
    RateLimiter,
    StravaAuthError,
    StravaClient,
    StravaNotFoundError,
    StravaPayloadError,
    StravaScopeError,
    StravaTransientError,
    Tokens,
    TokenStore,
)

from .conftest import requires_simulator

pytestmark = requires_simulator

_simulator = pytest.importorskip("strava_pipeline.simulator")
ManualClock = _simulator.ManualClock
SimulatorConfig = _simulator.SimulatorConfig
StravaSimulator = _simulator.StravaSimulator

FULL_SCOPE = "read,activity:read_all,profile:read_all"


def sim_config(**overrides: Any) -> Any:
    base: dict[str, Any] = dict(
        seed=1,
        activities=50,
        read_limit=(100, 1000),
        overall_limit=(200, 2000),
        window_seconds=900,
        faults="",
        token_ttl_seconds=21600,
        latency_ms=0,
    )
    base.update(overrides)
    return SimulatorConfig(**base)


@pytest.fixture
def sim() -> Iterator[Any]:
    with StravaSimulator(sim_config()) as simulator:
        yield simulator


def make_client(
    simulator: Any,
    tmp_path: Path,
    *,
    scope: str = FULL_SCOPE,
    limiter: RateLimiter | None = None,
    name: str = "tokens.json",
    **kwargs: Any,
) -> StravaClient:
    """A client whose store is seeded, as on a headless server, from a fresh grant's refresh token."""
    tokens = simulator.authorize(scope=scope)
    store = TokenStore(tmp_path / name, seed_refresh_token=tokens["refresh_token"])
    options: dict[str, Any] = dict(backoff_factor=0.01, timeout=(2.0, 5.0))
    options.update(kwargs)
    return StravaClient(
        base_url=simulator.base_url,
        client_id=simulator.client_id,
        client_secret=simulator.client_secret,
        token_store=store,
        rate_limiter=limiter or RateLimiter(),
        **options,
    )


def settled_log(simulator: Any) -> list[Any]:
    """The request log once it stops growing: the simulator appends an entry just *after* sending the
    response, so right after a call returns its entry may not be there yet."""
    previous = -1
    log = simulator.request_log
    deadline = time.monotonic() + 5
    while len(log) != previous and time.monotonic() < deadline:
        previous = len(log)
        time.sleep(0.05)
        log = simulator.request_log
    return log


def clear_log(simulator: Any) -> None:
    settled_log(simulator)
    simulator.clear_request_log()


def api_log(simulator: Any, fragment: str = "") -> list[Any]:
    return [e for e in settled_log(simulator) if e.path.startswith("/api/v3") and fragment in e.path]


def token_posts(simulator: Any) -> list[Any]:
    return [e for e in settled_log(simulator) if e.path.rstrip("/").endswith("/oauth/token")]


# -- paging --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [450, 400, 0])
def test_pages_until_the_empty_page(tmp_path: Path, count: int) -> None:
    with StravaSimulator(sim_config(activities=count)) as simulator:
        client = make_client(simulator, tmp_path)
        clear_log(simulator)
        ids: list[int] = []
        pages = list(client.iter_activity_pages())
        for page in pages:
            ids.extend(item["id"] for item in page.json())
        expected = simulator.activity_ids()
        assert len(ids) == len(expected) and set(ids) == expected
        listing = api_log(simulator, "/athlete/activities")
        assert len(listing) == math.ceil(len(expected) / 200) + 1
        assert [e.query.get("page") for e in listing] == [str(i) for i in range(1, len(listing) + 1)]
        assert all(e.query.get("per_page") == "200" and "access_token" not in e.query for e in listing)
        assert len(pages) == len(listing) - 1  # the terminating [] is not yielded
        client.close()


def test_after_and_before_are_passed(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    clear_log(sim)
    list(client.iter_activity_pages(after=1_600_000_000, before=1_900_000_000, per_page=30))
    first = api_log(sim, "/athlete/activities")[0]
    assert first.query["after"] == "1600000000" and first.query["before"] == "1900000000"
    assert first.query["per_page"] == "30"


# -- streams -------------------------------------------------------------------------------------------------


def test_streams_404_for_a_manual_activity_is_none_after_one_request(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    manual = [a["id"] for a in sim.activities() if a.get("manual")]
    activity_id = manual[0] if manual else sim.add_activity(manual=True)
    clear_log(sim)
    assert client.get_activity_streams(activity_id) is None
    streams_requests = api_log(sim, "/streams")
    assert [e.status for e in streams_requests] == [404]
    assert streams_requests[0].query["keys"] == ",".join(ALL_STREAM_KEYS)
    assert streams_requests[0].query["key_by_type"] == "true"


def test_streams_key_by_type(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    recorded = [a["id"] for a in sim.activities() if not a.get("manual")]
    response = client.get_activity_streams(recorded[0])
    assert response is not None and response.status == 200
    streams = response.json()
    assert isinstance(streams, dict) and "distance" in streams
    assert set(streams) <= set(ALL_STREAM_KEYS)
    lengths = {len(s["data"]) for s in streams.values()}
    assert len(lengths) == 1


# -- the other endpoints, and what ApiResponse carries -------------------------------------------------------


def test_athlete_zones_gear_stats_activity(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    athlete_response = client.get_athlete()
    athlete = athlete_response.json()
    assert athlete["id"] == sim.athlete_id
    assert athlete_response.fetched_at.tzinfo is not None and athlete_response.fetched_at.utcoffset().seconds == 0
    assert athlete_response.headers.get("x-ratelimit-limit") == "200,2000"
    assert "access_token" not in athlete_response.url and athlete_response.url.endswith("/api/v3/athlete")
    assert isinstance(client.get_athlete_zones().json(), dict)
    gear_ids = [g["id"] for g in athlete.get("bikes", []) + athlete.get("shoes", [])]
    if gear_ids:
        assert client.get_gear(gear_ids[0]).json()["id"] == gear_ids[0]
    assert "all_run_totals" in client.get_athlete_stats(sim.athlete_id).json()
    some_id = next(iter(sim.activity_ids()))
    detail = client.get_activity(some_id)
    assert detail.json()["id"] == some_id
    sim.delete_activity(some_id)
    with pytest.raises(StravaNotFoundError):
        client.get_activity(some_id)
    assert "SECRET" not in repr(client) and sim.client_secret not in repr(client)


# -- tokens --------------------------------------------------------------------------------------------------


def test_refresh_rotates_and_persists_the_new_refresh_token(sim: Any, tmp_path: Path) -> None:
    grant = sim.authorize(scope=FULL_SCOPE)
    store_path = tmp_path / "tokens.json"
    client = StravaClient(
        base_url=sim.base_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        token_store=TokenStore(store_path, seed_refresh_token=grant["refresh_token"]),
    )
    clear_log(sim)
    client.get_athlete()
    assert [e.status for e in token_posts(sim)] == [200]
    stored = TokenStore(store_path, seed_refresh_token=grant["refresh_token"]).load()
    assert stored is not None and stored.refresh_token != grant["refresh_token"]
    assert stat.S_IMODE(os.stat(store_path).st_mode) == 0o600
    # The server rejects the old refresh token now: strict rotation, so it had to be persisted.
    old = requests.post(
        f"{sim.base_url}/oauth/token",
        data={
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": grant["refresh_token"],
        },
        timeout=5,
    )
    assert old.status_code == 400
    # A new process with the same (stale) seed uses the stored token and needs no refresh.
    again = StravaClient(
        base_url=sim.base_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        token_store=TokenStore(store_path, seed_refresh_token=grant["refresh_token"]),
    )
    clear_log(sim)
    again.get_athlete()
    assert token_posts(sim) == []


def test_expired_access_token_mid_run_costs_one_refresh(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    pages = client.iter_activity_pages(per_page=10)
    next(pages)
    sim.expire_access_tokens()
    clear_log(sim)
    rest = list(pages)
    assert len(rest) == 4  # 50 activities, 10 per page
    assert [e.status for e in token_posts(sim)] == [200]
    statuses = [e.status for e in api_log(sim)]
    assert statuses[0] == 401 and statuses.count(401) == 1 and statuses[1:] == [200] * (len(statuses) - 1)
    assert client.stats["refreshes"] == 2  # the seeded first refresh + this one


def test_token_near_expiry_is_refreshed_before_the_call(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    client.get_athlete()
    clear_log(sim)
    client._oauth._clock = lambda: time.time() + 21600 - 1800  # type: ignore[method-assign]  # 30 min left
    client.get_athlete()
    assert [e.status for e in token_posts(sim)] == [200]
    assert [e.status for e in api_log(sim)] == [200]


def test_revoked_authorisation_raises_auth_error_with_advice(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    client.get_athlete()
    stale_copy = tmp_path / "copy.json"
    stale_copy.write_bytes((tmp_path / "tokens.json").read_bytes())
    stored = TokenStore(stale_copy).load()
    assert stored is not None
    client.deauthorize()
    assert TokenStore(tmp_path / "tokens.json").load() is None  # forgotten locally
    other = StravaClient(
        base_url=sim.base_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        token_store=TokenStore(stale_copy),
    )
    with pytest.raises(StravaAuthError, match="run `strava-pipeline auth` to reconnect") as info:
        other.get_athlete()
    message = str(info.value)
    for secret in (stored.access_token, stored.refresh_token, sim.client_secret):
        assert secret not in message


def test_missing_scope_raises_scope_error(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path, scope="read")
    with pytest.raises(StravaScopeError) as info:
        list(client.iter_activity_pages())
    assert info.value.scope == "activity:read"
    assert "strava-pipeline auth" in str(info.value)
    with pytest.raises(StravaScopeError) as zones:
        client.get_athlete_zones()
    assert zones.value.scope == "profile:read"


def test_known_insufficient_scope_fails_without_spending_a_request(sim: Any, tmp_path: Path) -> None:
    grant = sim.authorize(scope="read")
    store = TokenStore(tmp_path / "tokens.json")
    store.save(Tokens(grant["access_token"], grant["refresh_token"], grant["expires_at"], scope="read"))
    client = StravaClient(
        base_url=sim.base_url, client_id=sim.client_id, client_secret=sim.client_secret, token_store=store
    )
    clear_log(sim)
    with pytest.raises(StravaScopeError, match="activity:read"):
        client.get_activity_streams(1)
    assert settled_log(sim) == []


def test_authorization_url_and_code_exchange(sim: Any, tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    client = StravaClient(
        base_url=sim.base_url, client_id=sim.client_id, client_secret=sim.client_secret, token_store=store
    )
    url = client.authorization_url(redirect_uri="http://localhost:8765/cb", scope=FULL_SCOPE, state="xyz")
    assert "scope=read,activity:read_all,profile:read_all" in url
    redirect = requests.get(url, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["Location"]).query).items()}
    assert query["state"] == "xyz"
    tokens = client.exchange_code(query["code"], scope=query["scope"])
    assert tokens.athlete_id == sim.athlete_id and tokens.scope == query["scope"]
    assert store.load() == tokens
    assert client.get_athlete().json()["id"] == sim.athlete_id
    with pytest.raises(StravaAuthError, match="single-use"):
        client.exchange_code(query["code"])


def test_secrets_never_logged(sim: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim.set_faults("athlete:expired=#1,athlete:500=#1")
    with caplog.at_level(logging.DEBUG):
        client = make_client(sim, tmp_path)
        client.get_athlete()
        client.get_athlete()
        client.close()
    stored = TokenStore(tmp_path / "tokens.json").load()
    assert stored is not None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "refreshed the Strava access token" in text
    for secret in (stored.access_token, stored.refresh_token, sim.client_secret):
        assert secret not in text


# -- faults --------------------------------------------------------------------------------------------------

FAULTS = [
    # (spec for the listing endpoint, extra listing requests the retries cost, status seen by the server)
    ("500=#2", 2, 500),
    ("503=#1", 1, 503),
    ("reset=#2", 2, 0),
    ("truncate=#2", 2, 200),
    ("malformed=#2", 2, 200),
    ("slow=#1@2", 1, 200),
    ("noheaders=#3", 0, 200),
    ("expired=#1", 1, 401),
]


@pytest.mark.parametrize(("fault", "extra", "fault_status"), FAULTS)
def test_faults_are_recovered_with_bounded_retries(tmp_path: Path, fault: str, extra: int, fault_status: int) -> None:
    with StravaSimulator(sim_config(activities=30)) as simulator:
        client = make_client(simulator, tmp_path, timeout=(2.0, 1.0))
        client.get_athlete()
        clear_log(simulator)
        simulator.set_faults(f"athlete/activities:{fault}")
        ids = [item["id"] for page in client.iter_activity_pages(per_page=10) for item in page.json()]
        assert set(ids) == simulator.activity_ids() and len(ids) == 30
        if fault.startswith("slow"):
            time.sleep(2.5)  # the server logs the slow request only once it has finished answering it
        listing = api_log(simulator, "/athlete/activities")
        assert len(listing) == 4 + extra  # 3 pages + the empty one, plus one request per retry
        assert [e.status for e in listing[: extra + 1]].count(fault_status) >= (1 if extra else 0)
        if fault.startswith("expired"):
            assert [e.status for e in token_posts(simulator)] == [200]


def test_persistent_5xx_gives_up_after_max_retries(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path, max_retries=2)
    client.get_athlete()
    clear_log(sim)
    sim.set_faults("athlete:502=#10")
    with pytest.raises(StravaTransientError, match="502"):
        client.get_athlete()
    assert [e.status for e in api_log(sim)] == [502, 502, 502]


def test_persistent_bad_json_raises_payload_error_naming_url_and_offset(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path, max_payload_retries=2)
    client.get_athlete()
    clear_log(sim)
    sim.set_faults("athlete:malformed=#10")
    with pytest.raises(StravaPayloadError) as info:
        client.get_athlete()
    assert info.value.url.endswith("/api/v3/athlete") and info.value.offset == 0
    assert "/api/v3/athlete" in str(info.value) and "byte 0" in str(info.value)
    assert len(api_log(sim)) == 3


def test_persistent_truncation_raises_payload_error(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path, max_payload_retries=1)
    client.get_athlete()
    clear_log(sim)
    sim.set_faults("athlete:truncate=#10")
    with pytest.raises(StravaPayloadError) as info:
        client.get_athlete()
    assert "/api/v3/athlete" in str(info.value) and info.value.offset is not None and info.value.offset > 0
    assert len(api_log(sim)) == 2


def test_token_endpoint_5xx_is_not_retried_and_keeps_the_stored_token(sim: Any, tmp_path: Path) -> None:
    client = make_client(sim, tmp_path)
    sim.set_faults("token:500=#1")
    clear_log(sim)
    with pytest.raises(StravaTransientError, match="stored tokens are unchanged"):
        client.get_athlete()
    assert len(token_posts(sim)) == 1
    # The seed is still in force and still valid on the server: the next run succeeds.
    assert client.get_athlete().status == 200


# -- rate limits ---------------------------------------------------------------------------------------------


def test_limiter_waits_before_exhaustion_in_a_compressed_window(tmp_path: Path) -> None:
    """Tiny read limit, 2-second windows: all data arrives, the server sees at most one 429."""
    with StravaSimulator(sim_config(activities=12, window_seconds=2, read_limit=(5, 1000))) as simulator:
        limiter = RateLimiter(window_seconds=2, safety_margin=1, state_path=tmp_path / "rate.json")
        client = make_client(simulator, tmp_path, limiter=limiter)
        ids = sorted(simulator.activity_ids())[:10]
        started = time.monotonic()
        details = [client.get_activity(i).json()["id"] for i in ids]
        elapsed = time.monotonic() - started
        assert details == ids
        statuses = [e.status for e in api_log(simulator)]
        assert statuses.count(429) <= 1, statuses
        assert limiter.wait_count >= 1  # 10 requests at most 4 per window (margin 1 below 5)
        per_window: dict[int, int] = {}
        for entry in api_log(simulator):
            per_window[int(entry.time // 2)] = per_window.get(int(entry.time // 2), 0) + 1
        assert max(per_window.values()) <= 5, per_window
        assert elapsed < 20


def test_429_waits_for_the_reset_and_retries_the_same_request(tmp_path: Path) -> None:
    """Limits lowered behind the client's back: one 429, a wait to the window reset, then success.

    A manual clock drives both the simulator and the limiter (its sleep advances the clock), so the
    15-minute wait takes no real time.
    """
    clock = ManualClock(1_772_366_400.0 + 60)  # 12:01 UTC
    with StravaSimulator(sim_config(activities=5, clock=clock)) as simulator:
        limiter = RateLimiter(clock=clock, sleep=clock.advance, safety_margin=0)
        client = make_client(simulator, tmp_path, limiter=limiter, clock=clock)
        client.get_athlete()
        # The server counted 1 request in this window; lowering the limit to 1 makes the next one a 429
        # the client could not foresee (its last headers said 100).
        simulator.set_rate_limits(read=(1, 1000))
        clear_log(simulator)
        ids = sorted(simulator.activity_ids())
        got = [client.get_activity(i).json()["id"] for i in ids[:3]]
        assert got == ids[:3]
        # One 429, then a wait to 12:15 and the same request again; after that the limiter knows the limit
        # is 1 and waits before each request instead of provoking another 429.
        assert [e.status for e in api_log(simulator)] == [429, 200, 200, 200]
        assert [e.path for e in api_log(simulator)][:2] == [f"/api/v3/activities/{ids[0]}"] * 2
        assert limiter.wait_count == 3
        assert clock() >= 1_772_366_400.0 + 2700  # resumed at 12:15, 12:30 and 12:45
        assert client.stats["retries_429"] >= 1


# -- proxies -------------------------------------------------------------------------------------------------


class _ForwardProxy:
    """A real HTTP forward proxy (absolute-URI GETs and POSTs, relayed with urllib): records what went
    through it."""

    def __init__(self) -> None:
        import threading
        import urllib.request
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.relay(None)

            def do_POST(self) -> None:  # the token refresh goes through the proxy too
                self.relay(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def relay(self, data: bytes | None) -> None:
                seen.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
                request = urllib.request.Request(self.path, data=data, headers=headers)
                try:
                    upstream = direct.open(request, timeout=10)
                except urllib.error.HTTPError as exc:
                    upstream = exc
                body = upstream.read()
                self.send_response(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forward_proxy() -> Iterator[_ForwardProxy]:
    proxy = _ForwardProxy()
    yield proxy
    proxy.close()


def test_api_requests_go_through_the_configured_proxy_unless_no_proxy_names_the_host(
    sim: Any, tmp_path: Path, forward_proxy: _ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)

    client = make_client(sim, tmp_path)
    try:
        athlete = client.get_athlete().json()
        client.get_athlete()
    finally:
        client.close()
    assert athlete["id"] == sim.athlete_id
    assert [p for p in forward_proxy.seen if "/api/v3/" in p] == [f"{sim.base_url}/api/v3/athlete"] * 2

    forward_proxy.seen.clear()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = make_client(sim, tmp_path, name="other.json")
    try:
        assert client.get_athlete().json()["id"] == athlete["id"]
    finally:
        client.close()
    assert forward_proxy.seen == []
