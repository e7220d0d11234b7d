"""The whole way: simulator -> backfill (activities, activity_files) -> `strava-pipeline auth fittrackee` ->
the `fittrackee_workouts` asset -> a real FitTrackee, read back through its own API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any

import dagster as dg
import gpxpy
import psycopg
import pytest
import requests

from strava_pipeline.cli.auth import fittrackee_auth_status, fittrackee_redirect_uri, run_fittrackee_auth
from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.fittrackee import SCOPE, resolve_sport, strava_url
from strava_pipeline.fittrackee.sync import reduced_gpx
from strava_pipeline.settings import Settings
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline_tests.conftest import Pipeline
from strava_pipeline_tests.fittrackee.helpers import new_user
from strava_pipeline_tests.fittrackee.instance import FitTrackeeInstance, free_port

START, END = date(2024, 1, 1), date(2024, 1, 31)
EMOJI_NAME = "Sunrise 🌄 loop with Zoë 🏃‍♀️💨"


def _sink_metadata(instance: dg.DagsterInstance) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey("fittrackee_workouts"))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _backfill(p: Pipeline, instance: dg.DagsterInstance, first: date = START, last: date = END) -> dict[str, Any]:
    run_backfill(Settings.from_env(), first, last, instance=instance, progress=lambda _: None)
    return _sink_metadata(instance)


def _workouts(ft: FitTrackeeInstance, jwt: str) -> dict[int, dict[str, Any]]:
    """FitTrackee's workouts (in full) by the Strava activity id their notes link to."""
    found = {}
    for light in ft.workouts(jwt):
        workout = ft.workout(jwt, light["id"])
        activity_id = int(workout["notes"].split("\n")[0].rsplit("/", 1)[1])
        assert workout["notes"].startswith(strava_url(activity_id))
        found[activity_id] = workout
    return found


def _seconds(text: str) -> int:
    hours, minutes, seconds = (int(x) for x in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_backfilled_activities_land_in_fittrackee_once(
    make_pipeline: Callable[..., Pipeline], fittrackee: FitTrackeeInstance, dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = make_pipeline(SimulatorConfig(seed=11, start_date=START, end_date=END, activities=14))
    renamed = sorted(p.sim.activity_ids())[3]
    p.sim.update_activity(renamed, name=EMOJI_NAME)

    # Not configured yet: the backfill's sink step skips with the reason, without a request.
    skipped = _backfill(p, dagster_instance)
    assert "FITTRACKEE_URL" in skipped["skipped"] and skipped["fittrackee_requests"] == 0

    # The user creates an OAuth2 app in FitTrackee and runs `strava-pipeline auth fittrackee`; the browser
    # (here: FitTrackee's consent API with the user's session) authorises it and is sent to our loopback.
    username, jwt = new_user(fittrackee)
    port = free_port()
    app = fittrackee.create_app(jwt, redirect_uri=fittrackee_redirect_uri(port), scope=SCOPE)
    for key, value in {"FITTRACKEE_URL": fittrackee.url, "FITTRACKEE_CLIENT_ID": app["client_id"],
                       "FITTRACKEE_CLIENT_SECRET": app["client_secret"]}.items():
        monkeypatch.setenv(key, value)

    def browser(url: str) -> bool:
        threading.Thread(target=lambda: requests.get(fittrackee.consent(jwt, url), timeout=30), daemon=True).start()
        return True

    printed: list[str] = []
    tokens = run_fittrackee_auth(Settings.from_env(), port=port, open_browser=browser, out=printed.append, timeout=60)
    assert tokens.username == username
    assert not any(tokens.access_token in line or tokens.refresh_token in line for line in printed)
    connected, status = fittrackee_auth_status(Settings.from_env())
    assert connected and username in status and tokens.access_token not in status

    # The next backfill uploads every activity FitTrackee can hold, once.
    activities = {r[0]: r for r in p.query(
        "SELECT activity_id, name, sport_type, commute, distance_m, moving_time_s, elapsed_time_s, start_date "
        "FROM strava.activities")}
    files = {int(path.name.split("_")[1]): path for path in (p.settings.data_dir / "files").rglob("*.gpx")}
    gpx = set(files)
    track_km = {i: gpxpy.parse(path.read_text(encoding="utf-8")).length_3d() / 1000 for i, path in files.items()}
    first = _backfill(p, dagster_instance)
    uploaded = {i for i, a in activities.items() if i in gpx or ((a[4] or 0) > 0 and (a[5] or a[6] or 0) > 0)}
    assert first["created"] == len(uploaded) and first["failed"] == 0 and first["sent_without_track"] == 0
    assert first["skipped"] == len(activities) - len(uploaded)
    assert gpx and len(uploaded - gpx) >= 1, "both kinds: with a GPX file and without"

    sports = {s["id"]: s["label"] for s in fittrackee.api(jwt, "GET", "/api/sports").json()["data"]["sports"]}
    limit = fittrackee.api(jwt, "GET", "/api/config").json()["data"]["max_single_file_size"]
    workouts = _workouts(fittrackee, jwt)
    assert set(workouts) == uploaded
    for activity_id, workout in workouts.items():
        _, name, sport_type, commute, distance_m, moving_s, elapsed_s, start = activities[activity_id]
        assert workout["title"] == name
        assert sports[workout["sport_id"]] == resolve_sport(sport_type, list(sports.values()), commute=bool(commute))
        if activity_id in gpx:  # FitTrackee measures the track itself: compare with the file we sent
            if str(activity_id) in first["reduced_tracks"]:  # over the instance's 1 MB: thinned to fit
                content, _ = reduced_gpx(files[activity_id], int(limit * 0.98)) or (b"", 0)
                assert 0 < len(content) <= limit
                sent_km = gpxpy.parse(content.decode()).length_3d() / 1000
            else:
                sent_km = track_km[activity_id]
            assert workout["distance"] == pytest.approx(sent_km, rel=0.002)
            assert workout["distance"] == pytest.approx(distance_m / 1000, rel=0.15)  # and Strava's, loosely
            assert _seconds(workout["duration"]) == pytest.approx(elapsed_s, abs=5)
        else:
            assert workout["distance"] == pytest.approx(distance_m / 1000, abs=0.0005)
            assert _seconds(workout["duration"]) == (moving_s or elapsed_s)
            assert parsedate_to_datetime(workout["workout_date"]) == start.replace(second=0, microsecond=0)
    assert workouts[renamed]["title"] == EMOJI_NAME

    # Nothing changed: the sink sends no request, FitTrackee still holds the same workouts.
    again = _backfill(p, dagster_instance)
    assert again["fittrackee_requests"] == 0 and again["unchanged"] == len(uploaded) and again["uploaded"] == 0
    profile = fittrackee.api(jwt, "GET", "/api/auth/profile").json()["data"]
    assert profile["nb_workouts"] == len(uploaded)

    # Renamed and re-sported on Strava: the same workout is updated.
    edited = sorted(gpx & uploaded)[0]
    p.sim.update_activity(edited, name="Edited ✏️ on Strava", sport_type="Hike")
    day = p.query("SELECT activity_date FROM strava.activities WHERE activity_id = %s", edited)[0][0]
    changed = _backfill(p, dagster_instance, day, day)
    assert (changed["updated"], changed["created"], changed["replaced"]) == (1, 0, 0)
    after = _workouts(fittrackee, jwt)
    assert after[edited]["id"] == workouts[edited]["id"]
    assert after[edited]["title"] == "Edited ✏️ on Strava" and sports[after[edited]["sport_id"]] == "Hiking"

    # Deleted on Strava: deleted in FitTrackee too.
    gone = sorted(uploaded - {edited})[0]
    p.sim.delete_activity(gone)
    day = p.query("SELECT activity_date FROM strava.activities WHERE activity_id = %s", gone)[0][0]
    deleted = _backfill(p, dagster_instance, day, day)
    assert deleted["deleted"] == 1 and deleted["uploaded"] == 0
    assert set(_workouts(fittrackee, jwt)) == uploaded - {gone}
    assert fittrackee.api(jwt, "GET", f"/api/workouts/{workouts[gone]['id']}").status_code == 404
    with psycopg.connect(p.database_url) as conn:
        ids = {r[0] for r in conn.execute("SELECT activity_id FROM strava.fittrackee_workouts")}
    assert ids == uploaded - {gone}
