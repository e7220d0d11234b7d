"""`strava-pipeline auth` end to end against the simulator's /oauth/authorize (auto-approving consent)."""

from __future__ import annotations

import io
import queue
import stat
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from strava_pipeline import cli
from strava_pipeline.cli.auth import AuthFlowError, auth_status, parse_redirect, run_auth
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.strava import StravaClient, TokenStore


@pytest.fixture
def sim() -> Iterator[StravaSimulator]:
    config = SimulatorConfig(seed=3, start_date=date(2024, 1, 1), end_date=date(2024, 1, 31), activities=5)
    with StravaSimulator(config) as s:
        yield s


@pytest.fixture
def settings(sim: StravaSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in ("STRAVA_REFRESH_TOKEN", "STRAVA_PIPELINE_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("STRAVA_BASE_URL", sim.base_url)
    monkeypatch.setenv("STRAVA_CLIENT_ID", str(sim.client_id))
    monkeypatch.setenv("STRAVA_CLIENT_SECRET", sim.client_secret)
    monkeypatch.setenv("STRAVA_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STRAVA_TOKEN_FILE", str(tmp_path / "data" / "tokens.json"))
    return Settings.from_env()


def _run_in_thread(settings: Settings, **kwargs) -> tuple[threading.Thread, queue.Queue, dict, list[str]]:
    """Start run_auth in a thread; the 'browser' is a queue the test reads the URL from."""
    urls: queue.Queue[str] = queue.Queue()
    outcome: dict = {}
    printed: list[str] = []

    def target() -> None:
        try:
            outcome["tokens"] = run_auth(settings, port=0, open_browser=lambda u: urls.put(u) or True,
                                         out=printed.append, timeout=30, **kwargs)
        except Exception as exc:  # the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, urls, outcome, printed


def _browse(url: str) -> requests.Response:
    """What the athlete's browser does: open Strava's page (auto-approved), follow the redirect to us."""
    return requests.get(url, timeout=10, allow_redirects=True)


def test_browser_flow_stores_working_tokens_and_status_never_shows_them(
    sim: StravaSimulator, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    thread, urls, outcome, printed = _run_in_thread(settings)
    url = urls.get(timeout=10)
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["read,profile:read_all,activity:read_all"]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert query["redirect_uri"][0].endswith("/exchange_token")
    assert len(query["state"][0]) >= 20
    page = _browse(url)
    assert page.status_code == 200 and "close this tab" in page.text
    thread.join(15)
    assert "error" not in outcome, outcome.get("error")

    path = settings.token_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(str(path) + ".lock").stat().st_mode) == 0o600
    tokens = TokenStore(path).require()
    assert tokens.athlete_id == sim.athlete_id
    assert tokens.scope is not None and {"read", "profile:read_all", "activity:read_all"} <= set(
        tokens.scope.split(","))
    assert not any("WARNING" in line for line in printed)
    with StravaClient(base_url=sim.base_url, client_id=sim.client_id, client_secret=sim.client_secret,
                      token_store=TokenStore(path)) as client:
        assert client.get_athlete().json()["id"] == sim.athlete_id

    assert cli.main(["auth", "--status"]) == 0
    status = capsys.readouterr().out
    stored = TokenStore(path).require()
    assert str(sim.athlete_id) in status and (stored.athlete_name or "") in status
    assert "profile:read_all" in status and "activity:read_all" in status
    assert "expires at" in status and "API usage" in status
    for secret in (tokens.access_token, tokens.refresh_token, stored.access_token, stored.refresh_token,
                   sim.client_secret):
        assert secret not in status
        assert secret[:12] not in status
        assert not any(secret[:12] in line for line in printed)


def test_state_mismatch_stores_nothing(sim: StravaSimulator, settings: Settings) -> None:
    thread, urls, outcome, _ = _run_in_thread(settings)
    url = urls.get(timeout=10)
    forged = url.replace("state=", "state=forged")
    _browse(forged)
    thread.join(15)
    assert isinstance(outcome.get("error"), AuthFlowError)
    assert "state does not match" in str(outcome["error"])
    assert TokenStore(settings.token_file).load() is None


def test_access_denied_is_explained() -> None:
    with pytest.raises(AuthFlowError, match="denied"):
        parse_redirect("http://127.0.0.1:8721/exchange_token?state=s&error=access_denied", "s")


def test_missing_scopes_are_named_with_what_is_lost(sim: StravaSimulator, settings: Settings) -> None:
    thread, urls, outcome, printed = _run_in_thread(settings, scope="read,activity:read")
    _browse(urls.get(timeout=10))
    thread.join(15)
    assert "error" not in outcome, outcome.get("error")
    warnings = [line for line in printed if line.startswith("WARNING")]
    assert any("activity:read_all" in w and "private" in w and "privacy-zone" in w for w in warnings)
    assert any("profile:read_all" in w and "zones" in w for w in warnings)
    assert len(warnings) == 2
    connected, status = auth_status(settings)
    assert connected and "activity:read_all was not granted" in status


def test_paste_mode_reads_the_redirect_from_stdin(sim: StravaSimulator, settings: Settings) -> None:
    """--no-browser: nothing listens; the athlete pastes the address the browser could not load."""
    printed: list[str] = []
    url_ready: queue.Queue[str] = queue.Queue()

    class Stdin(io.StringIO):
        def readline(self, *_: object) -> str:  # type: ignore[override]
            url = url_ready.get(timeout=10)
            location = requests.get(url, timeout=10, allow_redirects=False).headers["Location"]
            return location + "\n"

    def out(line: str) -> None:
        printed.append(line)
        if line.strip().startswith("http"):
            url_ready.put(line.strip())

    tokens = run_auth(settings, port=8721, paste=True, stdin=Stdin(), out=out, open_browser=pytest.fail)
    assert tokens.athlete_id == sim.athlete_id
    assert "127.0.0.1%3A8721%2Fexchange_token" in printed[1] or "127.0.0.1:8721" in printed[1]


def test_status_without_tokens(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["auth", "--status"]) == 1
    assert "Not connected" in capsys.readouterr().out


def test_parser_defaults() -> None:
    args = cli.build_parser().parse_args(["auth"])
    assert (args.status, args.port, args.paste) == (False, 8721, False)
    assert cli.build_parser().parse_args(["auth", "--no-browser"]).paste
