"""A sub-resource of the athlete that Strava cannot serve (a gear deleted after `/athlete` listed it, zones
without `profile:read_all`) is recorded or skipped with a warning, and everything else lands."""

from __future__ import annotations

import json
import logging
from datetime import date

import dagster as dg

from strava_pipeline.cli.backfill import run_backfill

ATHLETE_ASSETS = ["athlete_raw", "athlete", "gear"]
START, END = date(2024, 1, 1), date(2024, 1, 31)


def _athlete_raw_run(instance: dg.DagsterInstance) -> tuple[dict[str, object], list[str]]:
    """The latest `athlete_raw` materialisation's metadata values and the warnings its run logged."""
    event = instance.get_latest_materialization_event(dg.AssetKey("athlete_raw"))
    assert event is not None and event.asset_materialization is not None
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    warnings = [e.user_message for e in instance.all_logs(event.run_id) if e.level == logging.WARNING]
    return metadata, warnings


def test_a_gear_deleted_after_the_profile_listed_it_is_recorded_as_not_found(make_pipeline, monkeypatch,
                                                                             dagster_instance) -> None:
    p = make_pipeline()
    dataset = p.sim.app.dataset
    all_gear = [g.id for g in dataset.athlete.gear]
    assert len(all_gear) >= 2
    victim = all_gear[-1]
    # `/athlete` still lists it, `/gear/{id}` answers Strava's 404 "Record Not Found" (the simulator's
    # answer for an unknown id): the gear was deleted between the two requests.
    lookup = dataset.gear
    monkeypatch.setattr(dataset, "gear", lambda gear_id: None if gear_id == victim else lookup(gear_id))

    run_backfill(p.settings, START, END, select=ATHLETE_ASSETS, instance=dagster_instance, progress=lambda _: None)

    assert [r[0] for r in p.query("SELECT gear_id FROM strava.gear ORDER BY gear_id")] == \
        sorted(g for g in all_gear if g != victim)
    assert p.query("SELECT athlete_id FROM strava.athlete") == [(p.sim.athlete_id,)]
    (payload,) = p.query("SELECT payload FROM strava.athlete_raw WHERE resource = 'gear' AND resource_id = %s",
                         victim)[0]
    assert (json.loads(payload) if isinstance(payload, str) else payload) == {"not_found": True, "status": 404}
    assert p.query("SELECT count(*) FROM strava.athlete_raw WHERE resource = 'gear'") == [(len(all_gear),)]
    metadata, warnings = _athlete_raw_run(dagster_instance)
    assert metadata["gear_not_found"] == 1
    assert "zones_skipped" not in metadata
    assert any(victim in w for w in warnings), warnings


def test_without_profile_read_all_the_athlete_lands_and_zones_are_skipped(make_pipeline,
                                                                          dagster_instance) -> None:
    p = make_pipeline(scope="read,activity:read_all")

    run_backfill(p.settings, START, END, select=ATHLETE_ASSETS, instance=dagster_instance, progress=lambda _: None)

    assert p.query("SELECT athlete_id FROM strava.athlete") == [(p.sim.athlete_id,)]
    assert p.query("SELECT count(*) FROM strava.athlete_raw WHERE resource = 'zones'") == [(0,)]
    assert p.query("SELECT hr_zone_1_min_bpm FROM strava.athlete") == [(None,)]
    # Without the scope Strava's `/athlete` lists no bikes or shoes, so the gear table lands empty.
    assert p.query("SELECT count(*) FROM strava.gear") == [(0,)]
    metadata, warnings = _athlete_raw_run(dagster_instance)
    assert "profile:read_all" in str(metadata["zones_skipped"])
    assert metadata["gear_not_found"] == 0
    assert any("zones" in w and "profile:read_all" in w for w in warnings), warnings
