"""No secret leaks anywhere the pipeline writes; credentials files are private; servers bind loopback;
hostile text is data, never SQL."""

from __future__ import annotations

import logging
import stat
import textwrap
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._serdes import serialize_value
from psycopg import sql

from strava_pipeline import cli
from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.strava import TokenStore

ASSETS = ["athlete_raw", "athlete", "activities_raw", "activities", "streams_raw", "activity_streams"]
HOSTILE_NAME = "'); DROP TABLE activities; --"


def _record_issued_tokens(sim, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every access and refresh token the simulator ever hands out (current and rotated away)."""
    issued: set[str] = set()
    oauth = sim.app.oauth
    for name in ("exchange_code", "refresh"):
        original = getattr(oauth, name)

        def wrapper(*args, _original=original):
            grant, access, refresh = _original(*args)
            issued.update({access.token, refresh})
            return grant, access, refresh

        monkeypatch.setattr(oauth, name, wrapper)
    return issued


def _instance(home: Path) -> dg.DagsterInstance:
    """A real, persistent instance whose run/event-log storage is the test's PostgreSQL database."""
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(textwrap.dedent(f"""
        storage:
          postgres:
            postgres_url:
              env: STRAVA_PIPELINE_DATABASE_URL
        compute_logs:
          module: dagster._core.storage.local_compute_log_manager
          class: LocalComputeLogManager
          config:
            base_dir: {home / "compute_logs"}
        python_logs:
          managed_python_loggers:
            - strava_pipeline
        telemetry:
          enabled: false
    """))
    return dg.DagsterInstance.from_config(str(home))


def _hits(text: str, secrets: set[str]) -> list[str]:
    return [s[:6] + "…" for s in secrets if s in text]


def test_full_backfill_leaks_no_secret(make_pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    config = SimulatorConfig(seed=21, start_date=date(2024, 1, 1), end_date=date(2024, 1, 31), activities=24)
    p = make_pipeline(config)
    issued = _record_issued_tokens(p.sim, monkeypatch)
    seed = p.settings.refresh_token
    assert seed
    victim = sorted(p.sim.activity_ids())[0]
    p.sim.update_activity(victim, name=HOSTILE_NAME)
    caplog.set_level(logging.DEBUG)
    printed: list[str] = []
    home = tmp_path / "dagster_home"
    instance = _instance(home)
    try:
        run_backfill(p.settings, date(2024, 1, 1), date(2024, 1, 15), select=ASSETS, instance=instance,
                     progress=printed.append)
        p.sim.expire_access_tokens()  # a second token generation mid-backfill (401 -> refresh -> rotation)
        run_backfill(p.settings, date(2024, 1, 16), date(2024, 1, 31), select=ASSETS, instance=instance,
                     progress=printed.append)

        store = TokenStore(p.settings.token_file)
        current = store.require()
        secrets = {p.sim.client_secret, seed, *issued, current.access_token, current.refresh_token}
        assert len(issued) >= 4, "at least two refreshes happened (two access and two refresh tokens)"
        assert all(len(s) >= 16 for s in secrets)

        # Dagster event log, runs (config and tags).
        runs = instance.get_runs()
        assert len(runs) >= 4
        findings: dict[str, list[str]] = {}
        for run in runs:
            findings[f"run {run.run_id} config/tags"] = _hits(serialize_value(run), secrets)
            for entry in instance.all_logs(run.run_id):
                findings.setdefault(f"event log of {run.run_id}", []).extend(
                    _hits(serialize_value(entry), secrets))
    finally:
        instance.dispose()

    # Python logs and what the backfill printed.
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        if record.exc_text:
            text += record.exc_text
        findings.setdefault("python logs", []).extend(_hits(text, secrets))
    findings["python logs (formatted)"] = _hits(caplog.text, secrets)
    findings["progress output"] = _hits("\n".join(printed), secrets)

    # Every file under the data dir (Parquet included) and the Dagster home (compute logs); not the store.
    scanned = 0
    for root in (p.settings.data_dir, home):
        for path in root.rglob("*"):
            if path.is_file() and path not in (p.settings.token_file, Path(str(p.settings.token_file) + ".lock")):
                scanned += 1
                data = path.read_bytes()
                findings[str(path)] = [s[:6] + "…" for s in secrets if s.encode() in data]
    assert any(str(f).endswith(".parquet") for f in findings), "parquet files were scanned"
    assert scanned > 10

    # Every row of every table in schemas strava and public (Dagster's storage lives in public).
    with psycopg.connect(p.database_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('strava', 'public') AND table_type = 'BASE TABLE'").fetchall()
        assert any(t == "event_logs" for _, t in tables), "the event log is in this database"
        for schema, table in tables:
            query = sql.SQL("SELECT row_to_json(t)::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table))
            text = "\n".join(r[0] for r in conn.execute(query))
            findings[f"table {schema}.{table}"] = _hits(text, secrets)

    # Positive control: the scanner does find the secrets where they belong (the token store).
    assert _hits(p.settings.token_file.read_text(), secrets)
    leaks = {where: hits for where, hits in findings.items() if hits}
    assert leaks == {}

    # Credentials files are private.
    assert stat.S_IMODE(p.settings.token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(str(p.settings.token_file) + ".lock").stat().st_mode) == 0o600

    # The hostile activity name is stored verbatim, and every table is still there.
    assert p.query("SELECT name FROM strava.activities WHERE activity_id = %s", victim) == [(HOSTILE_NAME,)]
    assert p.query("SELECT payload->>'name' FROM strava.activities_raw WHERE activity_id = %s", victim) == [
        (HOSTILE_NAME,)]
    assert p.ids("activities") == sorted(p.sim.activity_ids())


def test_servers_bind_loopback_by_default() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["ui"]).host == "127.0.0.1"
    assert parser.parse_args(["simulate"]).host == "127.0.0.1"
    assert SimulatorConfig().host == "127.0.0.1"


def test_auth_callback_binds_loopback_only() -> None:
    from strava_pipeline.cli.auth import _CallbackServer

    server = _CallbackServer(0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
