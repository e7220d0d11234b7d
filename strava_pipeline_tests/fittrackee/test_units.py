"""The sink's pure parts: sport mapping, rate-limit headers and waits, the shared token store, planning."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from strava_pipeline import cli
from strava_pipeline.fittrackee import (
    FALLBACK_SPORT,
    STRAVA_TO_FITTRACKEE,
    Activity,
    FitTrackeeInterrupted,
    FitTrackeeRateLimiter,
    FitTrackeeRateLimitError,
    FitTrackeeTokens,
    FitTrackeeTokenStore,
    resolve_sport,
)
from strava_pipeline.fittrackee.rate_limit import parse_rate_headers
from strava_pipeline.fittrackee.sync import StoredWorkout, find_activity_file, plan_sync, reduced_gpx, track_hash
from strava_pipeline.strava import Tokens, TokenStore
from strava_pipeline_tests.fittrackee.helpers import write_gpx
from strava_pipeline_tests.recordings import SHARED_STRAVA

#: The sports of FitTrackee 0.12 (the test instance) and those 1.x added.
FITTRACKEE_0_12 = [
    "Cycling (Sport)", "Cycling (Transport)", "Hiking", "Mountain Biking", "Running", "Walking",
    "Mountain Biking (Electric)", "Trail", "Skiing (Alpine)", "Skiing (Cross Country)", "Rowing", "Snowshoes",
    "Cycling (Virtual)", "Mountaineering", "Paragliding", "Open Water Swimming", "Cycling (Trekking)", "Swimrun",
    "Kayaking", "Canoeing", "Halfbike", "Windsurfing", "Standup Paddleboarding", "Tennis (Outdoor)",
]
FITTRACKEE_1_X = [*FITTRACKEE_0_12, "Padel (Outdoor)", "Canoeing (Whitewater)", "Kayaking (Whitewater)",
                  "Ice Skating", "Inline Skating"]


def _strava_sport_types() -> list[str]:
    schema = json.loads((SHARED_STRAVA / "models.schema.json").read_text(encoding="utf-8"))
    return list(schema["definitions"]["SportType"]["enum"])


def test_every_strava_sport_type_has_a_mapping_to_a_real_fittrackee_sport() -> None:
    sport_types = _strava_sport_types()
    assert len(sport_types) >= 50
    assert set(sport_types) == set(STRAVA_TO_FITTRACKEE), "the mapping lists exactly Strava's SportType enum"
    for labels in (FITTRACKEE_0_12, FITTRACKEE_1_X):
        for sport_type in sport_types:
            assert resolve_sport(sport_type, labels) in labels
        for preferred in STRAVA_TO_FITTRACKEE.values():  # no typo: each label exists in FitTrackee 1.x
            assert set(preferred) <= set(FITTRACKEE_1_X)


@pytest.mark.parametrize(("sport_type", "commute", "labels", "expected"), [
    ("Run", False, FITTRACKEE_0_12, "Running"),
    ("TrailRun", False, FITTRACKEE_0_12, "Trail"),
    ("Ride", True, FITTRACKEE_0_12, "Cycling (Transport)"),
    ("VirtualRide", False, FITTRACKEE_0_12, "Cycling (Virtual)"),
    ("Padel", False, FITTRACKEE_0_12, "Tennis (Outdoor)"),
    ("Padel", False, FITTRACKEE_1_X, "Padel (Outdoor)"),
    ("IceSkate", False, FITTRACKEE_0_12, FALLBACK_SPORT),
    ("IceSkate", False, FITTRACKEE_1_X, "Ice Skating"),
    ("Yoga", False, FITTRACKEE_1_X, FALLBACK_SPORT),
    ("SomethingStravaAddsLater", False, FITTRACKEE_1_X, FALLBACK_SPORT),
    (None, False, FITTRACKEE_1_X, FALLBACK_SPORT),
    ("Run", False, ["Hiking", "Rowing"], "Hiking"),  # Running and the fallback deactivated: the first active one
])
def test_sport_resolution(sport_type: str | None, commute: bool, labels: list[str], expected: str) -> None:
    assert resolve_sport(sport_type, labels, commute=commute) == expected


def test_rate_headers_in_every_spelling() -> None:
    flask = parse_rate_headers({"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "Retry-After": "187",
                                "X-RateLimit-Reset": "1796150416"})
    assert (flask.limit, flask.remaining, flask.reset_in) == (300, 0, 187.0)
    epoch = parse_rate_headers({"x-ratelimit-remaining": "4", "x-ratelimit-reset": "1000",
                                "Date": "Thu, 01 Jan 1970 00:15:00 GMT"})
    assert (epoch.remaining, epoch.reset_in) == (4, 100.0)  # measured against the server's clock
    ietf = parse_rate_headers({"RateLimit-Limit": "5", "RateLimit-Remaining": "1", "RateLimit-Reset": "7"})
    assert (ietf.limit, ietf.remaining, ietf.reset_in) == (5, 1, 7.0)
    combined = parse_rate_headers({"RateLimit": "limit=10, remaining=0, reset=3"})
    assert (combined.limit, combined.remaining, combined.reset_in) == (10, 0, 3.0)
    dated = parse_rate_headers({"Retry-After": "Thu, 01 Jan 1970 00:00:30 GMT"}, now=10.0)
    assert dated.reset_in == 20.0
    assert parse_rate_headers({}) == parse_rate_headers({"Retry-After": "soon"})


def test_limiter_waits_for_an_empty_window_and_after_a_429() -> None:
    now = [100.0]
    waits: list[float] = []

    class Clock(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(float(timeout or 0))
            now[0] += float(timeout or 0)
            return False

    limiter = FitTrackeeRateLimiter(clock=lambda: now[0], shutdown=Clock(), max_wait_s=60)
    limiter.before("POST /api/workouts")  # nothing known: no wait
    assert limiter.after("POST /api/workouts", 201, {"X-RateLimit-Remaining": "1", "Retry-After": "9"}) is None
    limiter.before("POST /api/workouts")
    assert waits == []
    limiter.after("POST /api/workouts", 201, {"X-RateLimit-Remaining": "0", "Retry-After": "8"})
    limiter.before("GET /api/sports")  # another route has its own budget
    assert waits == []
    limiter.before("POST /api/workouts")
    assert waits == [pytest.approx(8.5)]
    delay = limiter.after("POST /api/workouts", 429, {"Retry-After": "4"})
    assert delay == 4.0
    limiter.backoff("POST /api/workouts", delay)
    assert waits[-1] == pytest.approx(4.5) and limiter.rate_limited == 1 and limiter.waits == 2
    limiter.after("POST /api/workouts", 429, {"Retry-After": "3600"})
    with pytest.raises(FitTrackeeRateLimitError, match="API_RATE_LIMITS"):
        limiter.before("POST /api/workouts")


def test_a_stop_signal_ends_a_rate_limit_wait() -> None:
    stop = threading.Event()
    limiter = FitTrackeeRateLimiter(shutdown=stop)
    limiter.after("POST /api/workouts", 429, {"Retry-After": "300"})
    stop.set()
    with pytest.raises(FitTrackeeInterrupted):
        limiter.before("POST /api/workouts")


def test_fittrackee_and_strava_tokens_share_the_store_without_losing_each_other(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    strava = TokenStore(path)
    fittrackee = FitTrackeeTokenStore(path, instance_url="https://ft.example/", client_id="abc")
    strava.save(Tokens(access_token="s-access", refresh_token="s-refresh", expires_at=1))
    fittrackee.save(FitTrackeeTokens("f-access", "f-refresh", expires_at=2.0, scope="workouts:write"))
    strava.save(Tokens(access_token="s-access-2", refresh_token="s-refresh-2", expires_at=3))
    assert fittrackee.require().refresh_token == "f-refresh"
    assert strava.load() is not None and strava.load().refresh_token == "s-refresh-2"  # type: ignore[union-attr]
    fittrackee.save(FitTrackeeTokens("f-access-2", "f-refresh-2", expires_at=4.0))
    assert strava.load().refresh_token == "s-refresh-2"  # type: ignore[union-attr]
    assert FitTrackeeTokenStore(path, instance_url="https://ft.example", client_id="abc").require().expires_at == 4
    assert FitTrackeeTokenStore(path, instance_url="https://other.example", client_id="abc").load() is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name("tokens.json.lock").stat().st_mode) == 0o600


def test_activity_files_are_found_by_date_and_id(tmp_path: Path) -> None:
    year = tmp_path / "2024"
    year.mkdir()
    for name in ("2024-03-02_15_morning-run.tcx", "2024-03-02_15_morning-run.original.gpx",
                 "2024-03-02_151_other.gpx", ".2024-03-02_15_x.gpx.123.tmp"):
        (year / name).write_text("<gpx/>")
    assert find_activity_file(tmp_path, 15, date(2024, 3, 2)) == year / "2024-03-02_15_morning-run.original.gpx"
    (year / "2024-03-02_15_morning-run.gpx").write_text("<gpx/>")
    assert find_activity_file(tmp_path, 15, date(2024, 3, 2)) == year / "2024-03-02_15_morning-run.gpx"
    assert find_activity_file(tmp_path, 15, date(2024, 3, 3)) is None


def test_track_hash_ignores_the_name_and_a_reduced_gpx_fits(tmp_path: Path) -> None:
    start = datetime(2024, 3, 2, 8, tzinfo=UTC)
    write_gpx(tmp_path / "a.gpx", start, seconds=3600, step_s=1, name="before")
    write_gpx(tmp_path / "b.gpx", start, seconds=3600, step_s=1, name="after ✏️")
    write_gpx(tmp_path / "c.gpx", start, seconds=3600, step_s=1, speed_mps=3.1)
    assert track_hash(tmp_path / "a.gpx") == track_hash(tmp_path / "b.gpx") != track_hash(tmp_path / "c.gpx")
    size = (tmp_path / "a.gpx").stat().st_size
    content, factor = reduced_gpx(tmp_path / "a.gpx", size // 3) or (b"", 0)
    assert 0 < len(content) <= size // 3 and factor >= 2
    assert reduced_gpx(tmp_path / "a.gpx", 100) is None


def _stored(activity: Activity, **changes: object) -> StoredWorkout:
    values = dict(activity_id=activity.activity_id, workout_id="w1", activity_date=activity.activity_date,
                  sport_type=activity.sport_type, sport_label="Running", with_file=activity.file is not None,
                  track_hash=activity.track_hash, recording_hash=activity.recording_hash(),
                  payload_hash=activity.payload_hash(), uploaded_at=datetime.now(UTC), updated_at=datetime.now(UTC))
    values.update(changes)
    return StoredWorkout(**values)  # type: ignore[arg-type]


def test_planning_decides_from_hashes_alone(tmp_path: Path) -> None:
    start = datetime(2024, 3, 2, 8, tzinfo=UTC)
    write_gpx(tmp_path / "2024" / "2024-03-02_1_x.gpx", start)
    with_file = Activity.from_row({"activity_id": 1, "activity_date": start.date(), "start_date": start,
                                   "name": "run", "sport_type": "Run", "distance_m": 5400.0, "moving_time_s": 1800},
                                  tmp_path)
    manual = Activity(2, start.date(), start, name="manual", distance_m=5000, moving_time_s=1500)
    assert with_file.file is not None and with_file.track_hash
    same = plan_sync([with_file, manual], {1: _stored(with_file), 2: _stored(manual)}, delete_removed=True)
    assert same.empty and same.unchanged == 2
    renamed = Activity(**{**with_file.__dict__, "name": "renamed"})
    file_gone = Activity(**{**with_file.__dict__, "file": None, "track_hash": None, "name": "renamed"})
    assert [a for a, _ in plan_sync([renamed], {1: _stored(with_file)}, delete_removed=True).update] == [renamed]
    # A file that went missing keeps the track already in FitTrackee: an update, never a replacement.
    assert plan_sync([file_gone], {1: _stored(with_file)}, delete_removed=True).update
    retracked = Activity(**{**with_file.__dict__, "track_hash": "points:other"})
    assert plan_sync([retracked], {1: _stored(with_file)}, delete_removed=True).replace
    # Refused as too large before: the same track is not tried again.
    refused = _stored(with_file, with_file=False, recording_hash=with_file.recording_hash(), payload_hash="old")
    assert plan_sync([renamed], {1: refused}, delete_removed=True).update
    # Removed from the mirror: deleted, unless turned off; an empty mirror never deletes everything.
    assert [r.activity_id for r in plan_sync([manual], {1: _stored(with_file), 2: _stored(manual)},
                                             delete_removed=True).delete] == [1]
    assert plan_sync([manual], {1: _stored(with_file)}, delete_removed=False).kept_removed == 1
    assert plan_sync([], {1: _stored(with_file)}, delete_removed=True).delete == []
    # A sport STRAVA_SPORT_TYPES leaves out: neither uploaded nor deleted (it is still in the mirror).
    left_out = {1: "sport not selected (STRAVA_SPORT_TYPES)"}
    kept = plan_sync([renamed, manual], {1: _stored(with_file)}, delete_removed=True, excluded=left_out)
    assert kept.update == [] and kept.delete == [] and kept.skipped[1].startswith("sport not selected")
    assert [a.activity_id for a in kept.create] == [2]
    assert plan_sync([renamed], {}, delete_removed=True, excluded=left_out).create == []


def test_auth_fittrackee_without_configuration_names_the_variables(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("FITTRACKEE_URL", "FITTRACKEE_CLIENT_ID", "FITTRACKEE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRAVA_PIPELINE_DATA_DIR", str(tmp_path))
    assert cli.main(["auth", "fittrackee"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "FITTRACKEE_URL" in error and "Settings > Apps" in error
    monkeypatch.setenv("FITTRACKEE_URL", "fittrackee.example")
    assert cli.main(["auth", "fittrackee"]) == 2
    assert "FITTRACKEE_URL must be the instance's address" in capsys.readouterr().err
