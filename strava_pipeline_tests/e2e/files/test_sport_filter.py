"""STRAVA_SPORT_TYPES end to end: no stream request, metric or file for another sport; every summary kept."""

from __future__ import annotations

import dataclasses
import re

import polars as pl

from strava_pipeline.cli import main
from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline_tests.conftest import SMALL_ATHLETE_END, SMALL_ATHLETE_START

_STREAMS = re.compile(r"^/api/v3/activities/(\d+)/streams$")


def _stream_requests(p) -> list[int]:
    return [int(m.group(1)) for e in p.sim.request_log if (m := _STREAMS.match(e.path))]


def test_with_runs_selected_no_ride_costs_a_request_and_only_runs_get_metrics_and_files(backfilled, monkeypatch
                                                                                        ) -> None:
    p, report = backfilled(STRAVA_SPORT_TYPES="Run")
    truth = {a["id"]: a for a in p.sim.activities()}
    runs = {i for i, a in truth.items() if a["sport_type"] == "Run" and not a.get("manual")}
    others = {i for i, a in truth.items() if a["sport_type"] != "Run" and not a.get("manual")}
    assert runs and others, "the month has runs and other sports with recordings"

    requested = _stream_requests(p)
    assert set(requested) == runs and len(requested) == len(runs), "one request per run, none for any other sport"
    assert sorted(p.ids("activities")) == sorted(truth), "every summary is kept"
    assert set(p.ids("activity_metrics")) == runs
    assert {int(n.split("_")[1]) for n in (f.name for f in (p.settings.data_dir / "files").rglob("*.*"))} == runs
    store = ParquetStore(p.settings.parquet_dir)
    assert set(store.read("activity_streams").get_column("activity_id").unique().to_list()) == runs
    # The check asks streams of the selected sport only, so it passes.
    assert [e for e in report.checks if e.check_name == "every_activity_has_streams" and not e.passed] == []
    # Views and weekly totals still count every activity; the other sports have no stream metrics.
    assert p.query("SELECT count(*) FROM strava.rides WHERE tss IS NOT NULL OR normalized_power_w IS NOT NULL"
                   )[0][0] == 0
    run_like = [i for i, a in truth.items() if a["sport_type"] in ("Run", "TrailRun", "VirtualRun")]
    assert p.query("SELECT count(*) FROM strava.runs")[0][0] == len(run_like)
    weekly = store.read("weekly_summary")
    assert weekly.get_column("activity_count").sum() == len(truth)
    assert weekly.filter(pl.col("sport_type") != "Run").get_column("load").sum() == 0

    # Selecting every sport again requests only what never landed: the other sports, once each.
    p.sim.clear_request_log()
    monkeypatch.delenv("STRAVA_SPORT_TYPES")
    p.settings = dataclasses.replace(p.settings, sport_types=())
    run_backfill(p.settings, SMALL_ATHLETE_START, SMALL_ATHLETE_END, progress=lambda _: None)
    assert sorted(_stream_requests(p)) == sorted(others)
    assert set(p.ids("activity_metrics")) == runs | others


def test_an_unknown_sport_type_is_one_line_naming_the_variable(make_pipeline, capsys) -> None:
    p = make_pipeline(STRAVA_SPORT_TYPES="Run,Jogging")
    p.sim.clear_request_log()
    code = main(["backfill", "--start", "2024-01-01", "--end", "2024-01-02"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("strava-pipeline backfill: STRAVA_SPORT_TYPES: unknown sport type 'Jogging'; valid: ")
    assert "TrailRun" in err and "VirtualRide" in err
    assert p.sim.request_log == [], "nothing was requested"

