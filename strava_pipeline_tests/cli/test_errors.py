"""Every user mistake is one short message naming the variable or argument, what is wrong and what to do:
exit 2 for a wrong argument or setting, no traceback (``--debug`` shows it), no secret.

None of these cases gets as far as starting the database: the checks come first, so a mistake costs
seconds, not the half minute the client would spend retrying an address nobody listens on.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strava_pipeline import cli
from strava_pipeline.settings import Settings

SECRET = "client-secret-never-printed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Credentials set, everything else default; no .env of the checkout is read."""
    monkeypatch.chdir(tmp_path)
    for name in ("STRAVA_PIPELINE_DATABASE_URL", "STRAVA_BASE_URL", "STRAVA_HISTORY_START", "STRAVA_EXPORT_PATH",
                 "STRAVA_PIPELINE_TIMEZONE", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRAVA_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STRAVA_CLIENT_ID", "12345")
    monkeypatch.setenv("STRAVA_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("STRAVA_TOKEN_FILE", str(tmp_path / "tokens.json"))
    return monkeypatch


TOMORROW = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()

# (id, environment changes (None: unset), argv, exit code, what the message must name)
CASES = [
    ("no-credentials", {"STRAVA_CLIENT_ID": None, "STRAVA_CLIENT_SECRET": None}, ["backfill"], 2,
     ["STRAVA_CLIENT_ID", "strava-pipeline auth", "strava-pipeline demo"]),
    ("no-credentials-sync", {"STRAVA_CLIENT_ID": None}, ["sync"], 2, ["STRAVA_CLIENT_ID", "strava-pipeline auth"]),
    ("base-url-unreachable", {"STRAVA_BASE_URL": "http://127.0.0.1:{port}"}, ["backfill"], 2,
     ["STRAVA_BASE_URL=http://127.0.0.1:", "unreachable", "connection refused"]),
    ("base-url-unknown-host", {"STRAVA_BASE_URL": "http://no-such-host.invalid"}, ["sync"], 2,
     ["STRAVA_BASE_URL=http://no-such-host.invalid", "host not found"]),
    ("base-url-not-a-url", {"STRAVA_BASE_URL": "www.strava.com"}, ["backfill"], 2,
     ["STRAVA_BASE_URL=www.strava.com", "not an http(s) URL"]),
    ("database-url", {"STRAVA_PIPELINE_DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:notaport/db"},
     ["backfill", "--select", "activities"], 2, ["STRAVA_PIPELINE_DATABASE_URL"]),
    ("start-after-end", {}, ["backfill", "--start", "2024-03-01", "--end", "2024-01-01"], 2,
     ["--start 2024-03-01 is after --end 2024-01-01"]),
    ("start-in-future", {}, ["backfill", "--start", TOMORROW], 2, [f"--start {TOMORROW} is in the future"]),
    ("end-before-history", {"STRAVA_HISTORY_START": "2020-01-01"}, ["backfill", "--end", "2019-12-31"], 2,
     ["--end 2019-12-31", "STRAVA_HISTORY_START 2020-01-01"]),
    ("date-format", {}, ["backfill", "--start", "2024-13-01"], 2, ["--start", "'2024-13-01' is not a date"]),
    ("date-format-end", {}, ["backfill", "--end", "01/02/2024"], 2, ["--end", "YYYY-MM-DD"]),
    ("unknown-asset", {}, ["backfill", "--select", "activites"], 2, ["--select", "activites", "activities"]),
    ("lookback", {}, ["sync", "--lookback-days", "0"], 2, ["--lookback-days 0"]),
    ("rate-window-abc", {"STRAVA_RATE_WINDOW_SECONDS": "abc"}, ["backfill"], 2,
     ["STRAVA_RATE_WINDOW_SECONDS='abc'", "whole number"]),
    ("rate-window-zero", {"STRAVA_RATE_WINDOW_SECONDS": "0"}, ["sync"], 2, ["STRAVA_RATE_WINDOW_SECONDS='0'"]),
    ("max-response-negative", {"STRAVA_MAX_RESPONSE_MB": "-1"}, ["backfill"], 2,
     ["STRAVA_MAX_RESPONSE_MB='-1'", "above 0"]),
    ("max-response-float", {"STRAVA_MAX_RESPONSE_MB": "1.5"}, ["backfill"], 2, ["STRAVA_MAX_RESPONSE_MB='1.5'"]),
    ("lookback-env", {"STRAVA_SYNC_LOOKBACK_DAYS": "three"}, ["sync"], 2, ["STRAVA_SYNC_LOOKBACK_DAYS='three'"]),
    ("sensor-interval", {"STRAVA_SENSOR_INTERVAL_SECONDS": "-5"}, ["backfill"], 2,
     ["STRAVA_SENSOR_INTERVAL_SECONDS='-5'"]),
    ("request-timeout", {"STRAVA_REQUEST_TIMEOUT_SECONDS": "soon"}, ["backfill"], 2,
     ["STRAVA_REQUEST_TIMEOUT_SECONDS='soon'", "a number"]),
    ("request-timeout-nan", {"STRAVA_REQUEST_TIMEOUT_SECONDS": "nan"}, ["backfill"], 2,
     ["STRAVA_REQUEST_TIMEOUT_SECONDS='nan'"]),
    ("history-start", {"STRAVA_HISTORY_START": "2009-02-30"}, ["backfill"], 2, ["STRAVA_HISTORY_START='2009-02-30'"]),
    ("timezone", {"STRAVA_PIPELINE_TIMEZONE": "Mars/Olympus"}, ["sync"], 2,
     ["STRAVA_PIPELINE_TIMEZONE='Mars/Olympus'"]),
    ("import-settings", {"STRAVA_MAX_RESPONSE_MB": "lots"}, ["import", "."], 2, ["STRAVA_MAX_RESPONSE_MB='lots'"]),
]


@pytest.mark.parametrize(("changes", "argv", "code", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_one_short_message(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        changes: dict[str, str | None], argv: list[str], code: int,
                                        named: list[str]) -> None:
    port = _closed_port()
    for name, value in changes.items():
        if value is None:
            env.delenv(name, raising=False)
        else:
            env.setenv(name, value.format(port=port))
    started = time.monotonic()
    try:
        result = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        result = exc.code
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert result == code, err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    # One line; argparse's own errors come after its usage (wrapped to the terminal's width).
    assert len(lines) == 1 or (lines[0].startswith("usage:") and len(lines) <= 5), err
    for text in named:
        assert text in lines[-1], lines[-1]
    assert SECRET not in out + err
    assert elapsed < 15, f"took {elapsed:.1f} s: checks must not wait for retries"
    assert not (tmp_path / "data" / "postgres").exists(), "the database was started for a mistake in the arguments"


def test_debug_shows_the_traceback(env: pytest.MonkeyPatch) -> None:
    env.setenv("STRAVA_RATE_WINDOW_SECONDS", "abc")
    from strava_pipeline.settings import SettingsError

    with pytest.raises(SettingsError, match="STRAVA_RATE_WINDOW_SECONDS"):
        cli.main(["--debug", "backfill"])


def test_an_unreachable_default_strava_is_a_runtime_error(env: pytest.MonkeyPatch, capsys) -> None:
    """Without STRAVA_BASE_URL set the address is Strava's own: then it is the network, exit 1."""
    from strava_pipeline.cli import backfill

    env.setattr(backfill.socket, "create_connection", _refuse)
    assert cli.main(["sync"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach https://www.strava.com" in err and "STRAVA_BASE_URL" in err and "network" in err


def _refuse(*_args: object, **_kwargs: object) -> socket.socket:
    raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize("suffix", ["/api/v3", "/api/v3/", "/"])
def test_a_base_url_with_the_api_path_is_accepted(env: pytest.MonkeyPatch, suffix: str) -> None:
    env.setenv("STRAVA_BASE_URL", f"http://127.0.0.1:8765{suffix}")
    assert Settings.from_env().base_url == "http://127.0.0.1:8765"
