"""The sink's sync against a real FitTrackee and PostgreSQL: once, updates, replacements, deletions, 429s."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strava_pipeline.fittrackee import Activity, FitTrackeeRateLimiter, WorkoutTable, run_sync, strava_url
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline_tests.fittrackee.helpers import Connected, connect, write_gpx
from strava_pipeline_tests.fittrackee.instance import FitTrackeeInstance

START = datetime(2024, 3, 2, 7, 30, tzinfo=UTC)


def _row(activity_id: int, start: datetime, **fields: Any) -> dict[str, Any]:
    return {"activity_id": activity_id, "activity_date": start.date(), "start_date": start, "name": None,
            "sport_type": "Run", "commute": False, "distance_m": 0.0, "moving_time_s": 0, "elapsed_time_s": 0,
            **fields}


class Mirror:
    """Activities as the ``activities`` table and ``activity_files`` would hold them."""

    def __init__(self, root: Path) -> None:
        self.files = root / "files"
        self.rows: dict[int, dict[str, Any]] = {}

    def add(self, activity_id: int, start: datetime, *, gpx: bool = False, speed_mps: float = 3.0,
            **fields: Any) -> dict[str, Any]:
        row = _row(activity_id, start, **fields)
        if gpx:
            path = self.files / f"{start.year}" / f"{start.date().isoformat()}_{activity_id}_slug.gpx"
            length, seconds = write_gpx(path, start, seconds=1500, speed_mps=speed_mps, name=str(fields.get("name")))
            row.update(distance_m=length, moving_time_s=seconds, elapsed_time_s=seconds)
        self.rows[activity_id] = row
        return row

    def activities(self) -> list[Activity]:
        return [Activity.from_row(row, self.files) for row in self.rows.values()]


@pytest.fixture
def database(pg_url: str) -> str:
    apply_migrations(pg_url)
    return pg_url


def _sync(user: Connected, database: str, mirror: Mirror, **kwargs: Any):
    with user.client(**kwargs.pop("client", {})) as client:
        report = run_sync(client, WorkoutTable(database, user.instance.url), mirror.activities(), **kwargs)
    return report


def _by_title(user: Connected) -> dict[str, dict[str, Any]]:
    """Every workout in full (the list endpoint leaves the notes out), by title."""
    return {w["title"]: w for w in (user.instance.workout(user.jwt, w["id"]) for w in user.instance.workouts(user.jwt))}


def _sport_labels(user: Connected) -> dict[int, str]:
    body = user.instance.api(user.jwt, "GET", "/api/sports").json()
    return {s["id"]: s["label"] for s in body["data"]["sports"]}


def test_each_activity_once_then_updated_replaced_and_deleted(fittrackee: FitTrackeeInstance, database: str,
                                                               tmp_path: Path) -> None:
    user = connect(fittrackee, tmp_path / "tokens.json")
    mirror = Mirror(tmp_path)
    mirror.add(1001, START, gpx=True, name="Col 🚴‍♀️ du Glandon", sport_type="Ride", speed_mps=6.0)
    mirror.add(1002, START + timedelta(days=1), name="Treadmill 🏃", sport_type="VirtualRun", distance_m=10_000.0,
               moving_time_s=3000, elapsed_time_s=3100)
    mirror.add(1003, START + timedelta(days=2), name="Yoga 🧘", sport_type="Yoga", moving_time_s=3600)
    sports = _sport_labels(user)

    first = _sync(user, database, mirror)
    assert (first.created, first.updated, first.replaced, first.deleted) == (2, 0, 0, 0)
    assert list(first.skipped) == [1003] and "distance" in first.skipped[1003]
    workouts = _by_title(user)
    assert set(workouts) == {"Col 🚴‍♀️ du Glandon", "Treadmill 🏃"}
    ride, run = workouts["Col 🚴‍♀️ du Glandon"], workouts["Treadmill 🏃"]
    assert sports[ride["sport_id"]] == "Cycling (Sport)" and sports[run["sport_id"]] == "Running"
    assert strava_url(1001) in ride["notes"] and "Strava Ride: Col 🚴‍♀️ du Glandon" in ride["notes"]
    assert ride["distance"] == pytest.approx(mirror.rows[1001]["distance_m"] / 1000, abs=0.02)
    assert ride["duration"] == "0:25:00"
    assert run["distance"] == 10.0 and run["duration"] == "0:50:00"  # moving time, not elapsed
    # Dated in the user's time zone (Europe/Paris) and answered in UTC: the same instant.
    assert parsedate_to_datetime(run["workout_date"]) == START + timedelta(days=1)

    again = _sync(user, database, mirror)
    assert sum(again.requests.values()) == 0, again.requests
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert len(user.instance.workouts(user.jwt)) == 2

    # A rename and a new sport: updated in place (same workout); a new summary for the manual entry too.
    mirror.rows[1001].update(name="Glandon 🏔️ renamed", sport_type="MountainBikeRide")
    mirror.rows[1002].update(distance_m=12_000.0, moving_time_s=3600)
    edited = _sync(user, database, mirror)
    assert (edited.updated, edited.created, edited.replaced) == (2, 0, 0)
    assert sum(v for k, v in edited.requests.items() if k.startswith("POST /api/workouts")) == 0
    workouts = _by_title(user)
    assert workouts["Glandon 🏔️ renamed"]["id"] == ride["id"]
    assert sports[workouts["Glandon 🏔️ renamed"]["sport_id"]] == "Mountain Biking"
    assert workouts["Treadmill 🏃"]["id"] == run["id"] and workouts["Treadmill 🏃"]["distance"] == 12.0

    # A different track (re-recorded file): only a new upload carries it.
    write_gpx(next((tmp_path / "files" / "2024").glob("2024-03-02_1001_*.gpx")), START, seconds=1500, speed_mps=4.0)
    replaced = _sync(user, database, mirror)
    assert (replaced.replaced, replaced.updated) == (1, 0)
    workouts = _by_title(user)
    assert workouts["Glandon 🏔️ renamed"]["id"] != ride["id"] and len(workouts) == 2
    assert user.instance.api(user.jwt, "GET", f"/api/workouts/{ride['id']}").status_code == 404

    # Deleted on Strava: deleted there too, and forgotten.
    del mirror.rows[1002]
    removed = _sync(user, database, mirror)
    assert removed.deleted == 1 and set(_by_title(user)) == {"Glandon 🏔️ renamed"}
    # ... unless FITTRACKEE_DELETE_REMOVED is off.
    del mirror.rows[1001]
    kept = _sync(user, database, mirror, delete_removed=False)
    assert (kept.deleted, kept.kept_removed) == (0, 1) and set(_by_title(user)) == {"Glandon 🏔️ renamed"}
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT activity_id, with_file, sport_label FROM strava.fittrackee_workouts").fetchall()
    assert rows == [(1001, True, "Mountain Biking")]


def test_a_429_is_waited_out_and_the_sync_completes(make_fittrackee: Callable[..., FitTrackeeInstance],
                                                     database: str, tmp_path: Path) -> None:
    instance = make_fittrackee(rate_limits="5 per 10 second")
    user = connect(instance, tmp_path / "tokens.json")
    mirror = Mirror(tmp_path)
    for i in range(7):
        mirror.add(2000 + i, START + timedelta(days=i), gpx=True, name=f"Run {i} 🏃", sport_type="Run")
    # Another client of the same address spends the upload route's budget first: our first upload meets a 429.
    spent = [instance.api(user.jwt, "POST", "/api/workouts").status_code for _ in range(6)]
    assert spent[-1] == 429
    started = time.monotonic()
    report = _sync(user, database, mirror, client={"limiter": FitTrackeeRateLimiter(max_wait_s=60)})
    elapsed = time.monotonic() - started
    assert report.created == 7 and not report.failed
    assert report.rate_limited >= 1 and report.rate_limit_waits >= 2
    assert report.requests["POST /api/workouts"] == 7 + report.rate_limited
    assert elapsed >= 10  # 7 uploads at 5 per 10 s, after a spent window
    assert len(instance.workouts(user.jwt)) == 7


def test_unchanged_mirror_reads_nothing_even_after_a_restart(fittrackee: FitTrackeeInstance, database: str,
                                                             tmp_path: Path) -> None:
    """The table, not memory, is what makes a re-run free: a new client and table object send nothing."""
    user = connect(fittrackee, tmp_path / "tokens.json")
    mirror = Mirror(tmp_path)
    mirror.add(3001, START, gpx=True, name="Morning ride", sport_type="GravelRide", commute=True)
    assert _sync(user, database, mirror).created == 1
    labels = _sport_labels(user)
    assert labels[_by_title(user)["Morning ride"]["sport_id"]] == "Cycling (Transport)"
    for _ in range(2):
        report = _sync(user, database, mirror)
        assert report.requests == {} and report.unchanged == 1
    with psycopg.connect(database) as conn:
        (day,) = conn.execute("SELECT activity_date FROM strava.fittrackee_workouts").fetchone()
    assert day == date(2024, 3, 2)
