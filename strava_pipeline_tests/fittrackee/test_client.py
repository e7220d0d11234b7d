"""The FitTrackee client against a real FitTrackee: OAuth2 with PKCE, refresh, and each workout endpoint."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strava_pipeline.fittrackee import FitTrackeeAuthError, FitTrackeeTokens, FitTrackeeTokenStore
from strava_pipeline_tests.fittrackee.helpers import connect, write_gpx
from strava_pipeline_tests.fittrackee.instance import FitTrackeeInstance


def test_authorisation_code_flow_stores_tokens_privately(fittrackee: FitTrackeeInstance, tmp_path: Path) -> None:
    user = connect(fittrackee, tmp_path / "tokens.json")
    tokens = FitTrackeeTokenStore(user.token_file, instance_url=fittrackee.url, client_id=user.client_id).require()
    assert tokens.username == user.username
    assert set((tokens.scope or "").split()) == {"workouts:read", "workouts:write", "profile:read"}
    assert tokens.seconds_left() > 3600
    assert stat.S_IMODE(user.token_file.stat().st_mode) == 0o600
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)


def test_expired_access_token_is_refreshed_and_the_rotated_token_saved(fittrackee: FitTrackeeInstance,
                                                                       tmp_path: Path) -> None:
    user = connect(fittrackee, tmp_path / "tokens.json")
    store = FitTrackeeTokenStore(user.token_file, instance_url=fittrackee.url, client_id=user.client_id)
    old = store.require()
    store.save(FitTrackeeTokens(old.access_token, old.refresh_token, expires_at=0, scope=old.scope,
                                username=old.username))
    with user.client() as client:
        assert client.profile()["username"] == user.username
        assert client.requests_made["POST /api/oauth/token"] == 1
    new = store.require()
    assert new.refresh_token != old.refresh_token and new.access_token != old.access_token
    assert new.username == user.username and new.seconds_left() > 3600
    # FitTrackee revoked the old pair: only the saved one works.
    store.save(old)
    with user.client() as client, pytest.raises(FitTrackeeAuthError, match="auth fittrackee"):
        client.profile()


def test_workout_endpoints(fittrackee: FitTrackeeInstance, tmp_path: Path) -> None:
    user = connect(fittrackee, tmp_path / "tokens.json")
    gpx = tmp_path / "ride.gpx"
    length_m, _ = write_gpx(gpx, datetime(2024, 3, 2, 8, 0, tzinfo=UTC), seconds=1200, speed_mps=6.0)
    with user.client() as client:
        sports = client.sports()
        assert {"Cycling (Sport)", "Running", "Walking", "Hiking"} <= set(sports)
        created = client.upload_file(gpx, {"sport_id": sports["Cycling (Sport)"], "title": "Col 🚴‍♀️ du Glandon",
                                           "notes": "https://www.strava.com/activities/1"})
        assert created["title"] == "Col 🚴‍♀️ du Glandon"
        assert created["distance"] == pytest.approx(length_m / 1000, abs=0.01)
        assert created["duration"] == "0:20:00"
        manual = client.upload_without_file({"sport_id": sports["Running"], "workout_date": "2024-03-03 07:30",
                                             "distance": 10.0, "duration": 3000, "title": "Treadmill"})
        assert manual["distance"] == 10.0 and manual["duration"] == "0:50:00"
        updated = client.update_workout(created["id"], {"sport_id": sports["Hiking"], "title": "renamed"})
        assert updated is not None and updated["title"] == "renamed" and updated["sport_id"] == sports["Hiking"]
        assert {w["id"] for w in client.iter_workouts()} == {created["id"], manual["id"]}
        assert client.delete_workout(created["id"]) is True
        assert client.delete_workout(created["id"]) is False
        assert client.update_workout(created["id"], {"title": "gone"}) is None
        assert client.workout(created["id"]) is None
    assert json.loads(user.token_file.read_text())["fittrackee"]
