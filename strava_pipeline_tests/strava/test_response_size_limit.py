"""A response larger than the limit (``STRAVA_MAX_RESPONSE_MB``) fails its own request while being read.

A real local HTTP server sends the bodies (with ``Content-Length``, and chunked without it), because the bug
is about how many bytes the client reads and keeps, which no mock of ``requests`` can show.
"""

from __future__ import annotations

import gzip
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from strava_pipeline.settings import Settings
from strava_pipeline.strava import StravaClient, StravaPayloadError
from strava_pipeline_tests.strava.conftest import client_for as shared_client_for

MIB = 1024 * 1024
LIMIT = 1 * MIB
BIG = 16 * MIB  # "far above the limit": a client that buffers the body shows it in tracemalloc's peak
STREAMS = "/api/v3/activities/123/streams"


def json_body(size: int) -> bytes:
    """A valid JSON document of exactly ``size`` bytes (so only its size can make the client refuse it)."""
    head, tail = b'{"time": {"data": [', b"0]}}"
    return head + b"0," * ((size - len(head) - len(tail)) // 2) + b" " * ((size - len(head) - len(tail)) % 2) + tail


class BodyServer:
    """Serves ``body`` at the streams path (``chunked``: without Content-Length; ``gzip``: a pre-compressed
    body sent with ``Content-Encoding: gzip``) and a small ``/athlete``."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.chunked = False
        self.gzip = False
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked transfer encoding needs it

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with outer.lock:
                    outer.hits[path] = outer.hits.get(path, 0) + 1
                body = outer.body if path == STREAMS else b'{"id": 42}'
                chunked = outer.chunked and path == STREAMS
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Ratelimit-Limit", "200,2000")
                self.send_header("X-Ratelimit-Usage", "37,137")
                if outer.gzip and path == STREAMS:
                    self.send_header("Content-Encoding", "gzip")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                view = memoryview(body)  # slices of a memoryview copy nothing: the client's memory is measured
                try:
                    for i in range(0, len(body), 256 * 1024):
                        part = view[i : i + 256 * 1024]
                        if chunked:
                            self.wfile.write(f"{len(part):x}\r\n".encode())
                        self.wfile.write(part)
                        if chunked:
                            self.wfile.write(b"\r\n")
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client gave up reading: expected for oversized bodies
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def server() -> Iterator[BodyServer]:
    srv = BodyServer()
    srv.thread.start()
    yield srv
    srv.server.shutdown()
    srv.server.server_close()


def client_for(base_url: str, tmp_path: Path, **kwargs: Any) -> StravaClient:
    """No backoff sleeps: these tests count requests, not wait for retries."""
    return shared_client_for(base_url, tmp_path, backoff_factor=0.0, sleep=lambda _s: None, **kwargs)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_fails_its_request_unbuffered_and_unretried(
    server: BodyServer, tmp_path: Path, chunked: bool
) -> None:
    server.body, server.chunked = json_body(BIG), chunked
    client = client_for(server.base_url, tmp_path, max_response_bytes=LIMIT)

    tracemalloc.start()
    try:
        with pytest.raises(StravaPayloadError) as info:
            client.get_activity_streams(123)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    message = str(info.value)
    assert f"{STREAMS}?keys=" in message and "response larger than 1 MiB" in message
    assert "STRAVA_MAX_RESPONSE_MB" in message and "SECRET" not in message
    assert STREAMS in info.value.url
    assert peak < 3 * LIMIT, f"peak {peak / MIB:.1f} MiB for a {BIG // MIB} MiB body"
    assert server.hits[STREAMS] == 1  # not retried: it would be as large next time
    assert client.stats["requests"] == 1
    assert client.stats["retries_payload"] == client.stats["retries_transient"] == 0
    assert client.rate_limiter.snapshot().get("overall", "15min").usage >= 37  # its headers were still counted

    # Only that request failed: the same client (and its connection pool) goes on.
    assert client.get_athlete().json() == {"id": 42}
    client.close()


def test_limit_counts_decoded_bytes_of_a_compressed_body(server: BodyServer, tmp_path: Path) -> None:
    # 16 MiB of JSON compresses to a few kB: Content-Length is harmless, only counting decoded bytes catches it.
    server.body, server.gzip = gzip.compress(json_body(BIG), 9), True
    client = client_for(server.base_url, tmp_path, max_response_bytes=LIMIT)
    tracemalloc.start()
    try:
        with pytest.raises(StravaPayloadError, match="larger than 1 MiB"):
            client.get_activity_streams(123)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * LIMIT
    assert server.hits[STREAMS] == 1
    client.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_of_exactly_the_limit_is_accepted(server: BodyServer, tmp_path: Path, chunked: bool) -> None:
    server.body, server.chunked = json_body(LIMIT), chunked
    with client_for(server.base_url, tmp_path, max_response_bytes=LIMIT) as client:
        response = client.get_activity_streams(123)
    assert response is not None and response.body == server.body


def test_concurrent_requests_go_on_beside_an_oversized_one(server: BodyServer, tmp_path: Path) -> None:
    server.body = json_body(BIG)
    client = client_for(server.base_url, tmp_path, max_response_bytes=LIMIT, pool_size=4)
    with client, ThreadPoolExecutor(4) as pool:
        big = [pool.submit(client.get_activity_streams, 123) for _ in range(2)]
        small = [pool.submit(client.get_athlete) for _ in range(6)]
        for future in big:
            with pytest.raises(StravaPayloadError, match="STRAVA_MAX_RESPONSE_MB"):
                future.result()
        assert [f.result().json() for f in small] == [{"id": 42}] * 6
    assert server.hits[STREAMS] == 2


def test_limit_defaults_to_256_mib_and_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strava_pipeline.defs.resources import strava_client

    assert client_for("http://127.0.0.1:9", tmp_path)._transport.max_response_bytes == 256 * MIB
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("STRAVA_TOKEN_FILE", "STRAVA_REFRESH_TOKEN", "STRAVA_MAX_RESPONSE_MB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRAVA_PIPELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRAVA_CLIENT_ID", "123")
    monkeypatch.setenv("STRAVA_CLIENT_SECRET", "cs-SECRET")
    assert Settings.from_env().max_response_mb == 256
    monkeypatch.setenv("STRAVA_MAX_RESPONSE_MB", "3")
    settings = Settings.from_env()
    assert settings.max_response_mb == 3
    client = strava_client(settings)
    assert client._transport.max_response_bytes == 3 * MIB
    client.close()
