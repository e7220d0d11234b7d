"""A streams body the client accepts but PostgreSQL's jsonb refuses (here ``NaN``) must not poison reruns.

Before the fix the body was landed in the landing cache and replayed on every rerun, failing the whole
batch forever without a single request. Now it is rejected once, the rest of the batch lands, and it is
requested once more on the next run and then no more until ``--refetch``.
"""

from __future__ import annotations

import json
import logging
from datetime import date

import dagster as dg

from strava_pipeline.cli.backfill import run_backfill

STREAM_ASSETS = ["activities_raw", "activities", "streams_raw", "activity_streams"]
START, END = date(2024, 1, 1), date(2024, 3, 31)


def _requests_for(p, activity_id: int) -> int:
    return sum(e.path == f"/api/v3/activities/{activity_id}/streams" for e in p.sim.request_log)


def _stream_requests(p) -> int:
    return sum(e.path.endswith("/streams") for e in p.sim.request_log)


def _run(p, instance: dg.DagsterInstance) -> tuple[dict[str, object], list[str]]:
    """Backfill; the metadata of the streams_raw materialisations of this backfill, merged, and its warnings."""
    report = run_backfill(p.settings, START, END, select=STREAM_ASSETS, instance=instance, progress=lambda _: None)
    rejected: dict[str, object] = {}
    for record in instance.fetch_materializations(dg.AssetKey("streams_raw"), limit=1000).records:
        if record.run_id in report.run_ids:
            meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
            if meta.get("rejected_bodies"):
                rejected.update(meta["rejected_activities"])
    warnings = [e.user_message for run_id in report.run_ids for e in instance.all_logs(run_id)
                if e.level == logging.WARNING]
    return rejected, warnings


def test_a_body_postgres_refuses_is_rejected_not_replayed_and_refetched_once(
    make_pipeline, monkeypatch, dagster_instance
) -> None:
    p = make_pipeline()
    non_manual = {s["id"] for s in p.sim.activities() if not s["manual"]}
    bad = sorted(non_manual)[len(non_manual) // 2]
    streams = p.sim.app.streams
    original = streams.body

    def poisoned(act, keys, key_by_type):
        body = original(act, keys, key_by_type)
        if act.id != bad:
            return body
        doc = json.loads(body)
        items = doc.values() if isinstance(doc, dict) else doc
        next(s for s in items if s.get("type", "velocity_smooth") == "velocity_smooth")["data"][1] = float("nan")
        return json.dumps(doc).encode()  # Python writes NaN, which Python's json reads back and jsonb refuses

    monkeypatch.setattr(streams, "body", poisoned)
    landing = p.settings.data_dir / "landing" / "streams"

    # First run: every other activity lands; the bad body is named, not landed, and asked for once.
    rejected, warnings = _run(p, dagster_instance)
    assert _requests_for(p, bad) == 1
    assert {i for i, in p.query("SELECT activity_id FROM strava.streams_raw")} == non_manual - {bad}
    samples = {i for i, in p.query("SELECT DISTINCT activity_id FROM strava.activity_streams")}
    assert samples == non_manual - {bad}
    assert list(rejected) == [str(bad)] and "NaN" in str(rejected[str(bad)])
    assert any(str(bad) in w and "rejected" in w for w in warnings)
    assert not [f for f in landing.iterdir() if not f.name.endswith(".rejected")], "no body kept in the cache"

    # Second run: the rejected activity (only it) is requested exactly once more; still bad.
    p.sim.clear_request_log()
    rejected, warnings = _run(p, dagster_instance)
    assert _requests_for(p, bad) == _stream_requests(p) == 1
    assert list(rejected) == [str(bad)]
    assert any(str(bad) in w and "--refetch" in w for w in warnings)
    assert not [f for f in landing.iterdir() if not f.name.endswith(".rejected")]

    # Third run: not requested again automatically; the rest stays as it is.
    p.sim.clear_request_log()
    rejected, warnings = _run(p, dagster_instance)
    assert _stream_requests(p) == 0
    assert list(rejected) == [str(bad)]
    assert any(str(bad) in w and "--refetch" in w for w in warnings)
    assert {i for i, in p.query("SELECT activity_id FROM strava.streams_raw")} == non_manual - {bad}

    # Once Strava serves a good body, a forced refetch lands it and forgets the rejection.
    monkeypatch.setattr(streams, "body", original)
    p.sim.clear_request_log()
    bad_day = next(s for s in p.sim.activities() if s["id"] == bad)["start_date_local"][:10]
    dg.materialize(
        [a for a in _definitions(p).assets if isinstance(a, dg.AssetsDefinition)],
        selection=["streams_raw"],
        resources=_resources(p),
        run_config={"ops": {"streams_raw": {"config": {"refetch": True}}}},
        tags={"dagster/asset_partition_range_start": bad_day, "dagster/asset_partition_range_end": bad_day},
    )
    assert _requests_for(p, bad) == 1
    assert p.query("SELECT status FROM strava.streams_raw WHERE activity_id = %s", bad) == [("ok",)]
    assert not list(landing.iterdir()), "the rejection marker is gone once a good body landed"


def _definitions(p):
    from strava_pipeline.defs import build_definitions

    return build_definitions(p.settings)


def _resources(p):
    from strava_pipeline.defs import build_resources

    return build_resources(p.settings)


