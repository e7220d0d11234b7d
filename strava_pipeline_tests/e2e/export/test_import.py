"""Importing the simulator's export archive end to end: every table filled with zero API requests."""

from __future__ import annotations

import dataclasses
import uuid
import zipfile
from datetime import date
from pathlib import Path

import polars as pl

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.cli.importing import run_import
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.parquet_store import ParquetStore

START, END = date(2024, 1, 1), date(2024, 2, 29)
NO_CREDENTIALS = {"STRAVA_CLIENT_ID": "", "STRAVA_CLIENT_SECRET": "", "STRAVA_REFRESH_TOKEN": ""}
TABLES = ("athlete", "gear", "export_activities_raw", "activities", "activity_streams", "activity_metrics",
          "daily_training_load", "weekly_summary")


def _config(**overrides: object) -> SimulatorConfig:
    return SimulatorConfig(seed=23, start_date=START, end_date=END, activities=24, **overrides)


def _api_requests(p) -> list[str]:
    return [e.path for e in p.sim.request_log if e.path.startswith("/api/v3/") or e.path.startswith("/oauth")]


def _samples_per_activity(p, source: str | None = None) -> dict[int, int]:
    where = f"WHERE source = '{source}'" if source else ""
    return dict(p.query(f"SELECT activity_id, count(*) FROM strava.activity_streams {where} GROUP BY 1"))


def _file_samples(manifest) -> dict[int, int]:
    """Samples of each original file the archive holds whole (the simulator's streams of that activity)."""
    return {a.activity_id: a.samples for a in manifest.activities if a.filename and not a.broken}


def test_an_archive_alone_fills_every_table_without_a_single_request(make_pipeline, tmp_path: Path) -> None:
    p = make_pipeline(_config(), **NO_CREDENTIALS)
    manifest = p.sim.write_export(tmp_path / "downloads")
    archive = manifest.path
    p.sim.clear_request_log()

    report = run_import(p.settings, archive, progress=lambda _: None)

    assert p.sim.request_log == [], "no HTTP request at all: not even a token refresh"
    truth = sorted(p.sim.activity_ids())
    assert p.ids("activities") == truth
    assert set(p.query("SELECT DISTINCT source FROM strava.activities")) == {("export",)}
    assert _samples_per_activity(p, "export") == _file_samples(manifest)
    for table in TABLES:
        assert p.query(f"SELECT count(*) FROM strava.{table}")[0][0] > 0, table
    # Parquet holds the same rows as PostgreSQL.
    store = ParquetStore(p.settings.parquet_dir)
    assert sorted(store.read("activities").get_column("activity_id").to_list()) == truth
    assert store.read("activity_streams").height == sum(_samples_per_activity(p).values())
    assert p.query("SELECT athlete_id FROM strava.athlete") == [(p.sim.athlete_id,)]
    assert report.staged.statuses == {"ok": len(_file_samples(manifest)),
                                      "no_file": len(truth) - len(_file_samples(manifest))}

    # The same archive again changes nothing and runs nothing.
    again = run_import(p.settings, archive, progress=lambda _: None)
    assert again.staged.days == [] and again.backfill is None
    assert p.ids("activities") == truth


def test_after_an_archive_a_full_backfill_requests_no_stream(make_pipeline, tmp_path: Path) -> None:
    p = make_pipeline(_config())
    manifest = p.sim.write_export(tmp_path / "downloads")
    run_import(p.settings, manifest.path, progress=lambda _: None)
    p.sim.clear_request_log()

    run_backfill(p.settings, START, END, progress=lambda _: None)

    paths = _api_requests(p)
    assert not [path for path in paths if path.endswith("/streams")], "the archive holds every recording"
    assert any(path.startswith("/api/v3/athlete/activities") for path in paths)
    # The API summary is now the row of record; the samples still come from the original files.
    assert set(p.query("SELECT DISTINCT source FROM strava.activities")) == {("api",)}
    assert _samples_per_activity(p) == _samples_per_activity(p, "export") == _file_samples(manifest)
    assert p.ids("activities") == sorted(p.sim.activity_ids())


def test_broken_files_fail_only_their_activity(make_pipeline, tmp_path: Path) -> None:
    p = make_pipeline(_config(), **NO_CREDENTIALS)
    manifest = p.sim.write_export(tmp_path / "downloads", missing_files=1, truncated_files=1)
    broken = {a.activity_id for a in (*manifest.missing, *manifest.truncated)}
    assert len(broken) == 2

    report = run_import(p.settings, manifest.path, progress=lambda _: None)

    rows = dict(p.query("SELECT activity_id, status FROM strava.export_activities_raw"))
    assert {rows[a.activity_id] for a in manifest.missing} == {"missing_file"}
    assert {rows[a.activity_id] for a in manifest.truncated} == {"failed"}
    errors = dict(p.query("SELECT activity_id, error FROM strava.export_activities_raw WHERE error IS NOT NULL"))
    assert all(errors[a] for a in broken)
    # Everything else landed; the broken ones keep their summary row but have no samples.
    assert p.ids("activities") == sorted(p.sim.activity_ids())
    assert _samples_per_activity(p) == _file_samples(manifest)
    checks = [e for e in report.backfill.checks if e.check_name == "export_files_readable"]
    assert checks and not all(e.passed for e in checks)
    named = {int(k) for e in checks if not e.passed for k in e.metadata["sample"].value}
    assert named == broken


def test_derived_tables_from_the_archive_match_those_from_the_api(
    make_pipeline, tmp_path: Path, pg_server, monkeypatch
) -> None:
    """Metrics computed from the original files agree with those computed from Strava's streams."""
    api = make_pipeline(_config())
    run_backfill(api.settings, START, END, progress=lambda _: None)
    from_api = pl.DataFrame(api.query("SELECT activity_id, moving_time_s, elevation_gain_m, avg_heartrate_bpm "
                                      "FROM strava.activity_metrics ORDER BY 1"),
                            schema=["activity_id", "moving", "elev", "hr"], orient="row")
    archive = api.sim.write_export(tmp_path / "downloads").path

    # A second mirror, archive only: its own data dir and database.
    name = f"archive_only_{uuid.uuid4().hex[:8]}"
    url = create_database(pg_server.url, name)
    monkeypatch.setenv("STRAVA_PIPELINE_DATABASE_URL", url)
    other = dataclasses.replace(api.settings, data_dir=tmp_path / "archive-only", database_url=url)
    try:
        report = run_import(other, archive, progress=lambda _: None)
    finally:
        monkeypatch.setenv("STRAVA_PIPELINE_DATABASE_URL", api.database_url)
        drop_database(pg_server.url, name)
    assert report.backfill is not None
    store = ParquetStore(other.parquet_dir)
    from_archive = store.read("activity_metrics").select(
        "activity_id", pl.col("moving_time_s").alias("moving"), pl.col("elevation_gain_m").alias("elev"),
        pl.col("avg_heartrate_bpm").alias("hr")).sort("activity_id")
    joined = from_api.join(from_archive, on="activity_id", suffix="_archive")
    assert joined.height == from_api.height > 0
    for column, tolerance in (("moving", 0.05), ("elev", 0.15), ("hr", 0.01)):
        a, b = joined.get_column(column), joined.get_column(f"{column}_archive")
        relative = ((a - b).abs() / a.abs().clip(lower_bound=1))
        worst = joined.with_columns(relative.alias("_r")).sort("_r", descending=True, nulls_last=True).head(3)
        assert relative.drop_nulls().max() <= tolerance, f"{column}: {worst}"


def test_german_and_pre_2019_archives_import_the_same_activities(make_pipeline, tmp_path: Path) -> None:
    p = make_pipeline(_config(), **NO_CREDENTIALS)
    english = p.sim.write_export(tmp_path / "en")
    german = p.sim.write_export(tmp_path / "de", language="de")
    run_import(p.settings, german.path, progress=lambda _: None)
    typed = {r[0]: r[1:] for r in p.query("SELECT activity_id, name, sport_type, distance_m, moving_time_s "
                                          "FROM strava.activities")}
    assert sorted(typed) == sorted(p.sim.activity_ids())
    truth = {s["id"]: s for s in p.sim.activities()}
    for activity_id, (name, sport, distance, moving) in typed.items():
        summary = truth[activity_id]
        assert (name, sport, moving) == (summary["name"], summary["sport_type"], summary["moving_time"])
        assert abs(distance - summary["distance"]) < 0.01
    assert _samples_per_activity(p, "export") == _file_samples(english)

    old = make_pipeline(_config(), **NO_CREDENTIALS)
    legacy = old.sim.write_export(tmp_path / "2018", layout="2018")
    run_import(old.settings, legacy.path, progress=lambda _: None)
    assert old.ids("activities") == sorted(old.sim.activity_ids())


def test_members_that_would_leave_the_archive_are_refused(make_pipeline, tmp_path: Path) -> None:
    p = make_pipeline(_config(), **NO_CREDENTIALS)
    manifest = p.sim.write_export(tmp_path / "downloads")
    with zipfile.ZipFile(manifest.path, "a") as archive:
        archive.writestr("../../escaped.txt", b"outside")
        archive.writestr("/etc/cron.d/evil", b"outside")
    report = run_import(p.settings, manifest.path, progress=lambda _: None)
    assert {name for name, _ in report.staged.refused} == {"../../escaped.txt", "/etc/cron.d/evil"}
    assert not (tmp_path / "escaped.txt").exists() and not Path("/etc/cron.d/evil").exists()
    written = [f for f in p.settings.data_dir.rglob("*") if f.is_file()]
    assert all(f.read_bytes() != b"outside" for f in written if f.stat().st_size == 7)
    assert p.ids("activities") == sorted(p.sim.activity_ids())
