"""Client pieces that need no server: retry policy, payload errors, URL redaction, connection failures."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strava_pipeline.strava import (
    ApiResponse,
    StravaPayloadError,
    StravaTransientError,
)
from strava_pipeline.strava.responses import check_json, decode_json, redact_url
from strava_pipeline.strava.transport import _missing_scope
from strava_pipeline_tests.strava.conftest import client_for


def test_urllib3_retries_only_connection_establishment(tmp_path: Path) -> None:
    client = client_for("https://www.strava.com", tmp_path, max_retries=4, backoff_factor=0.5)
    retry = client._transport.connect_retry()
    assert retry.connect == 4
    assert retry.read == 0 and retry.status == 0 and retry.other == 0  # counted attempts are ours
    assert not retry.respect_retry_after_header  # else urllib3 would retry a 429 carrying Retry-After
    assert not retry.status_forcelist
    assert retry.backoff_factor == 0.5 and retry.backoff_jitter == 0.5
    adapter = client._transport.session.get_adapter("https://www.strava.com/api/v3/athlete")
    assert adapter.max_retries.connect == 4


def test_refused_connection_is_retried_by_urllib3_then_reported_once(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}", tmp_path, max_retries=2, backoff_factor=0.01)
    started = time.monotonic()
    with pytest.raises(StravaTransientError, match="could not connect") as info:
        client.get_athlete()
    assert time.monotonic() - started < 5
    assert "SECRET" not in str(info.value)
    assert client.stats["requests"] == 1  # urllib3's connect retries are not multiplied by ours


def test_authorization_url(tmp_path: Path) -> None:
    client = client_for("https://www.strava.com/", tmp_path)
    url = client.authorization_url(redirect_uri="http://localhost:8000/cb", scope="read,activity:read_all", state="s1")
    assert url.startswith("https://www.strava.com/oauth/authorize?client_id=123&")
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A8000%2Fcb" in url
    assert "response_type=code" in url and "scope=read,activity:read_all" in url and "state=s1" in url
    assert "SECRET" not in url


def test_bodies_the_fast_parsers_refuse_are_judged_by_the_standard_one() -> None:
    # orjson and simdjson (the fast paths) refuse integers beyond 64 bits and NaN; the stdlib parser accepts both, and
    # what we accept must not depend on which parser ran.
    assert decode_json(b'{"id": 123456789012345678901234567890, "x": NaN}', "u")["id"] == 123456789012345678901234567890
    assert decode_json('{"name": "Café 🚴"}'.encode(), "u") == {"name": "Café 🚴"}
    # The client's whole-body check (simdjson, no objects built) agrees, and reports like decode_json.
    check_json(b'{"id": 123456789012345678901234567890, "x": NaN}', "u")
    body = '{"name": "Café", "x": '.encode()
    with pytest.raises(StravaPayloadError) as info:
        check_json(body, "https://www.strava.com/api/v3/athlete")
    assert info.value.offset == len(body) and info.value.url.endswith("/athlete")


def test_api_response_json_error_names_url_and_byte_offset() -> None:
    body = '{"name": "Café", "x": '.encode()
    response = ApiResponse(
        url="https://www.strava.com/api/v3/athlete", status=200, body=body, headers={}, fetched_at=datetime.now(UTC)
    )
    with pytest.raises(StravaPayloadError) as info:
        response.json()
    assert info.value.url == "https://www.strava.com/api/v3/athlete"
    assert info.value.offset == len(body)  # a byte offset: "é" counts twice
    assert "/api/v3/athlete" in str(info.value) and f"byte {len(body)}" in str(info.value)
    assert "bytes" in repr(response) and "Café" not in repr(response)


def test_redact_url_drops_secret_parameters() -> None:
    assert redact_url("https://x/api/v3/athlete?access_token=abc&page=2") == "https://x/api/v3/athlete?page=2"
    assert redact_url("https://x/a?keys=time,distance") == "https://x/a?keys=time,distance"
    assert "SECRET" not in redact_url("https://x/oauth/token?client_secret=SECRET&refresh_token=SECRET")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            {
                "message": "Authorization Error",
                "errors": [{"resource": "AccessToken", "field": "activity:read_permission", "code": "missing"}],
            },
            ("activity:read", "activity:read_permission"),
        ),
        (
            {"errors": [{"resource": "AccessToken", "field": "write_permission", "code": "missing"}]},
            ("write", "write_permission"),
        ),
        ({"errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}]}, None),
        ({}, None),
    ],
)
def test_missing_scope_detection(fault: dict, expected: tuple[str, str] | None) -> None:
    assert _missing_scope(fault) == expected
