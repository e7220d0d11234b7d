"""Fixtures for the Strava client tests.

* ``FakeClock``: injected ``clock``/``sleep`` pair so limiter tests never really sleep.
* ``MiniStrava``: a tiny real HTTP server (token endpoint with strict rotation + ``/api/v3/athlete``) for the
  unit tests that need a server before/without the project simulator (cross-process refresh).
* ``sim``: the project's simulator (``strava_pipeline.simulator``); integration tests skip until it exists.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from strava_pipeline.strava import StravaClient, Tokens, TokenStore


class FakeClock:
    """``clock()`` returns a settable epoch; ``sleep(s)`` records the wait and advances the clock by it."""

    def __init__(self, start: float) -> None:
        self.now = float(start)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    # 2026-03-01 12:00:00 UTC
    return FakeClock(1772366400.0)


class MiniStrava:
    """Just enough Strava for token tests: strict refresh-token rotation, ``GET /api/v3/athlete``.

    ``token_delay`` makes the token endpoint slow so concurrent refreshers overlap.
    """

    def __init__(self, token_delay: float = 0.0, ttl: int = 21600) -> None:
        self.token_delay = token_delay
        self.ttl = ttl
        self.lock = threading.Lock()
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}
        self.token_calls = 0
        self.api_calls = 0
        self.log: list[tuple[str, str, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("X-Ratelimit-Limit", "200,2000")
                self.send_header("X-Ratelimit-Usage", f"{outer.api_calls},{outer.api_calls}")
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = outer.token(form)
                outer.log.append(("POST", self.path, status))
                self._send(status, body)

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ")
                with outer.lock:
                    outer.api_calls += 1
                    ok = outer.access_tokens.get(token, 0) > time.time()
                status = 200 if ok else 401
                body: Any = (
                    {"id": 42, "firstname": "Mini"}
                    if ok
                    else {
                        "message": "Authorization Error",
                        "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}],
                    }
                )
                outer.log.append(("GET", self.path, status))
                self._send(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def issue(self) -> dict[str, Any]:
        """A fresh grant, as after the athlete authorised the app."""
        refresh = secrets.token_hex(8)
        with self.lock:
            self.refresh_tokens.add(refresh)
        return {"refresh_token": refresh}

    def token(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.token_delay:
            time.sleep(self.token_delay)
        with self.lock:
            self.token_calls += 1
            if form.get("client_secret") != "mini-secret":
                return 401, {
                    "message": "Bad Request",
                    "errors": [{"resource": "Application", "field": "client_secret", "code": "invalid"}],
                }
            old = form.get("refresh_token", "")
            if form.get("grant_type") != "refresh_token" or old not in self.refresh_tokens:
                return 400, {
                    "message": "Bad Request",
                    "errors": [{"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}],
                }
            self.refresh_tokens.discard(old)  # strict rotation
            new_refresh, access = secrets.token_hex(8), secrets.token_hex(8)
            self.refresh_tokens.add(new_refresh)
            expires_at = int(time.time()) + self.ttl
            self.access_tokens[access] = expires_at
            return 200, {
                "token_type": "Bearer",
                "access_token": access,
                "expires_at": expires_at,
                "expires_in": self.ttl,
                "refresh_token": new_refresh,
            }

    def __enter__(self) -> MiniStrava:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mini_strava() -> Iterator[MiniStrava]:
    with MiniStrava(token_delay=0.3) as server:
        yield server


def simulator_available() -> bool:
    try:
        from strava_pipeline.simulator import StravaSimulator  # noqa: F401
    except ImportError:
        return False
    return True


requires_simulator = pytest.mark.skipif(
    not simulator_available(), reason="strava_pipeline.simulator.StravaSimulator is not available yet"
)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "tokens.json"


def client_for(base_url: str, tmp_path: Path, **kwargs: Any) -> StravaClient:
    """A client with a valid stored token (so no OAuth round trip), for tests against a local server."""
    store = TokenStore(tmp_path / "tokens.json")
    store.save(Tokens("acc-SECRET", "ref-SECRET", int(time.time()) + 99999, scope="read,activity:read_all"))
    return StravaClient(base_url=base_url, client_id="123", client_secret="cs-SECRET", token_store=store, **kwargs)
