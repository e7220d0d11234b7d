"""Small fixes: a truthful `auth --status` for seeded tokens, help texts for `ui`/`demo`, rounded `rides.load`."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from strava_pipeline import cli
from strava_pipeline.cli.auth import auth_status
from strava_pipeline.settings import Settings
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.strava import Tokens, TokenStore


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STRAVA_CLIENT_ID", "1")
    monkeypatch.setenv("STRAVA_CLIENT_SECRET", "s")
    monkeypatch.setenv("STRAVA_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STRAVA_TOKEN_FILE", str(tmp_path / "data" / "tokens.json"))
    monkeypatch.setenv("STRAVA_REFRESH_TOKEN", "seed-token")
    return Settings.from_env()


def test_status_of_refreshed_seed_token_does_not_claim_an_unknown_name(settings: Settings) -> None:
    # A store seeded from STRAVA_REFRESH_TOKEN after its first refresh: Strava's refresh answer names no athlete.
    store = TokenStore(settings.token_file, seed_refresh_token=settings.refresh_token)
    store.save(Tokens(access_token="access-x", refresh_token="rotated-y", expires_at=int(time.time()) + 3600))
    connected, report = auth_status(settings)
    assert connected
    assert "unknown name" not in report and "id ?" not in report
    assert "Athlete: connected" in report and "strava-pipeline auth" in report
    assert "access-x" not in report and "rotated-y" not in report


def test_status_of_unused_seed_token(settings: Settings) -> None:
    connected, report = auth_status(settings)
    assert connected and "not used yet" in report and "seed-token" not in report


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width


def test_ui_options_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["ui", "--help"], capsys)
    assert "interface the Dagster UI binds to" in text
    assert "port of the Dagster UI" in text


def test_demo_has_help_and_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert "simulated athlete" in _help(["--help"], capsys)
    text = _help(["demo", "--help"], capsys)
    assert "no Strava account" in text and "embedded" in text


def test_rides_view_rounds_load_and_keeps_its_columns(pg_url: str) -> None:
    apply_migrations(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO strava.activities (activity_id, activity_date, sport_type, start_date, "
                     "start_date_local, fetched_at) VALUES (1, '2024-01-01', 'Ride', now(), now(), now())")
        conn.execute("INSERT INTO strava.activity_metrics (activity_id, activity_date, load) "
                     "VALUES (1, '2024-01-01', 12.3456)")
        assert conn.execute("SELECT load FROM strava.rides").fetchall() == [(Decimal("12.3"),)]
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'strava' "
            "AND table_name = 'rides' ORDER BY ordinal_position")]
    assert columns[-3:] == ["avg_heartrate_bpm", "trainer", "load"] and len(columns) == 18


def test_a_bad_database_url_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRAVA_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STRAVA_PIPELINE_DATABASE_URL", "postgresql://u:s3cr3t@127.0.0.1:notaport/db")
    assert cli.main(["db", "migrate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "STRAVA_PIPELINE_DATABASE_URL" in err and "s3cr3t" not in err
    with pytest.raises(ValueError, match="STRAVA_PIPELINE_DATABASE_URL"):  # --debug: the real error, traceback and all
        cli.main(["--debug", "db", "migrate"])
