"""The FitTrackee sink: every activity of the mirror as a FitTrackee workout, exactly once.

**What is sent.** An activity with a GPS track (the GPX ``activity_files`` writes,
``<data dir>/files/YYYY/<local date>_<id>_<slug>.gpx``) is uploaded with it (``POST /api/workouts``):
FitTrackee computes distance, duration, the map and the charts from the track. One without a file (manual
entries, indoor sessions) goes through ``POST /api/workouts/no_gpx`` with its start (in the FitTrackee
user's time zone, to the minute), distance and moving time. FitTrackee requires a distance and a duration
for those: an activity with neither a file nor a distance (yoga, weight training) cannot be stored there and
is skipped, with the reason. A GPX larger than the instance accepts (HTTP 413, ``max_single_file_size``, 1 MB
by default: about two hours at one point a second) is sent thinned to fit (:func:`reduced_gpx`, said in the
notes), or without its track when even that does not fit.
The title is the activity's name (emoji and all, at most 255 characters), the notes hold the Strava link
(``https://www.strava.com/activities/<id>``), the name and the Strava sport; the sport follows
:mod:`strava_pipeline.fittrackee.sports`.

**Idempotency.** ``strava.fittrackee_workouts`` maps (instance, activity) to the workout with a hash of
everything sent. A run compares hashes before any request: an unchanged activity costs nothing (a run over an
unchanged mirror sends no request at all); a changed name, sport or summary is a ``PATCH`` of the workout; a
changed file (or a file that appeared) replaces the workout (deleted, then uploaded again: the row says
"deleted, upload pending" in between, so an interrupted run neither loses nor duplicates it); an activity
gone from the mirror is deleted there too unless ``delete_removed`` is off. Each row is written as soon as
its request succeeded, and runs are serialised with a PostgreSQL advisory lock, so two runs at once cannot
upload an activity twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from strava_pipeline.storage.databases import connect

from .client import FitTrackeeClient
from .errors import FitTrackeeHTTPError
from .sports import resolve_sport

__all__ = [
    "FILE_SUFFIXES",
    "TABLE",
    "Activity",
    "StoredWorkout",
    "SyncPlan",
    "SyncReport",
    "WorkoutTable",
    "find_activity_file",
    "plan_sync",
    "run_sync",
    "strava_url",
]

TABLE = "strava.fittrackee_workouts"
#: The files uploaded, in order of preference: the GPX ``activity_files`` writes from the mirror's samples
#: (GPX requires positions: it exists only for activities with a track), else the archive's original GPX.
#: TCX files are not sent (FitTrackee refuses one without positions), nor compressed originals.
FILE_SUFFIXES = (".gpx", ".original.gpx")
TITLE_MAX = 255
NOTES_MAX = 500
#: Bump when what is sent for the same activity changes, so every workout is updated once.
PAYLOAD_FORMAT = 1
_LOCK_KEY = 0x4654_5452_4143_4B45  # "FTTRACKE"


def strava_url(activity_id: int) -> str:
    """The activity's page on Strava."""
    return f"https://www.strava.com/activities/{activity_id}"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: The parts of a GPX/TCX file that are the recording (not its name, description or creator).
_POINTS = {"trkpt", "rtept", "Trackpoint"}
_POINT_VALUES = {"ele", "time", "Time", "LatitudeDegrees", "LongitudeDegrees", "AltitudeMeters", "DistanceMeters"}


def track_hash(path: Path) -> str:
    """A hash of the file's track points only: renaming an activity rewrites its GPX ``<name>`` but must
    stay an in-place update, not a new upload. Files that cannot be read as XML (FIT) hash whole."""
    if path.suffix.lower() not in (".gpx", ".tcx"):
        return f"sha256:{_sha256_file(path)}"
    digest = hashlib.sha256()
    try:
        for _, element in etree.iterparse(str(path), events=("end",), resolve_entities=False, no_network=True,
                                          huge_tree=True):
            name = etree.QName(element).localname
            if name in _POINTS:
                digest.update(f"|{element.get('lat')},{element.get('lon')}".encode())
                element.clear()
            elif name in _POINT_VALUES:
                digest.update(f";{name}={(element.text or '').strip()}".encode())
    except etree.XMLSyntaxError:
        return f"sha256:{_sha256_file(path)}"
    return f"points:{digest.hexdigest()}"


def reduced_gpx(path: Path, max_bytes: int) -> tuple[bytes, int] | None:
    """The GPX made small enough for an instance's ``max_single_file_size``: ``(bytes, k)``, keeping one
    track point in k (k a power of two; each segment's last point kept) without extensions (heart rate,
    cadence, power) or indentation; None when even one point in 64 does not fit. FitTrackee's distance, duration and map
    stay close to the full track's; its heart-rate and cadence charts are lost, which the notes say."""
    try:
        tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True,
                                                      remove_blank_text=True))
    except (etree.XMLSyntaxError, OSError):
        return None
    root = tree.getroot()
    for element in list(root.iter("{*}extensions")):
        element.getparent().remove(element)
    factor = 1
    while True:
        content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        if len(content) <= max_bytes:
            return content, factor
        if factor >= 64:
            return None
        for segment in root.iter("{*}trkseg"):
            points = list(segment.iter("{*}trkpt"))
            for index, point in enumerate(points[:-1]):
                if index % 2:
                    segment.remove(point)
        factor *= 2


def find_activity_file(files_root: Path, activity_id: int, day: date) -> Path | None:
    """The activity's GPX under ``files_root/YYYY/<day>_<id>_<slug>.gpx`` (or ``.original.gpx``), if any."""
    directory = Path(files_root) / f"{day.year:04d}"
    if not directory.is_dir():
        return None
    found: dict[str, Path] = {}
    for path in directory.glob(f"{day.isoformat()}_{activity_id}_*.gpx"):
        if path.is_file():
            found.setdefault(".original.gpx" if path.name.endswith(".original.gpx") else ".gpx", path)
    return next((found[s] for s in FILE_SUFFIXES if s in found), None)


@dataclass(frozen=True)
class Activity:
    """What the sink needs of one activity (a row of ``activities`` and its file)."""

    activity_id: int
    activity_date: date
    start_date: datetime
    name: str | None = None
    sport_type: str | None = None
    commute: bool = False
    distance_m: float | None = None
    moving_time_s: int | None = None
    elapsed_time_s: int | None = None
    file: Path | None = None
    #: :func:`track_hash` of ``file``.
    track_hash: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], files_root: Path | None) -> Activity:
        start = row["start_date"]
        if isinstance(start, datetime) and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        day = row["activity_date"]
        file = find_activity_file(files_root, int(row["activity_id"]), day) if files_root is not None else None
        return cls(
            activity_id=int(row["activity_id"]), activity_date=day, start_date=start, name=row.get("name"),
            sport_type=row.get("sport_type"), commute=bool(row.get("commute")), distance_m=row.get("distance_m"),
            moving_time_s=row.get("moving_time_s"), elapsed_time_s=row.get("elapsed_time_s"), file=file,
            track_hash=track_hash(file) if file is not None else None,
        )

    @property
    def duration_s(self) -> int:
        """Moving time (Strava's headline time), else elapsed time."""
        return int(self.moving_time_s or self.elapsed_time_s or 0)

    @property
    def distance_km(self) -> float:
        return round(float(self.distance_m or 0.0) / 1000.0, 3)

    def title(self) -> str:
        name = (self.name or "").strip() or f"Strava activity {self.activity_id}"
        return name[:TITLE_MAX]

    def notes(self) -> str:
        sport = f"Strava {self.sport_type}" if self.sport_type else "Strava"
        name = (self.name or "").strip()
        text = f"{strava_url(self.activity_id)}\n{sport}" + (f": {name}" if name else "")
        return text[:NOTES_MAX]

    def without_file_reason(self) -> str | None:
        """Why FitTrackee cannot store this activity without a file, or None."""
        if self.distance_km <= 0:
            return "no GPS file and no distance (FitTrackee needs a distance for a workout without a file)"
        if self.duration_s <= 0:
            return "no GPS file and no duration (FitTrackee needs a duration for a workout without a file)"
        return None

    def summary_hash(self) -> str:
        values = {"start": self.start_date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
                  "distance_km": self.distance_km, "duration_s": self.duration_s}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()

    def recording_hash(self) -> str:
        """What a ``PATCH`` cannot change on a workout with a file: its track."""
        return f"track:{self.track_hash}" if self.track_hash else f"summary:{self.summary_hash()}"

    def payload_hash(self) -> str:
        """Everything sent: equal hashes mean nothing to do."""
        values = {"format": PAYLOAD_FORMAT, "title": self.title(), "notes": self.notes(),
                  "sport_type": self.sport_type, "commute": self.commute, "track": self.track_hash,
                  "summary": self.summary_hash()}
        return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class StoredWorkout:
    """A row of ``strava.fittrackee_workouts``."""

    activity_id: int
    workout_id: str | None
    activity_date: date
    sport_type: str | None
    sport_label: str
    with_file: bool
    track_hash: str | None
    recording_hash: str
    payload_hash: str
    uploaded_at: datetime
    updated_at: datetime


_COLUMNS = ("activity_id", "workout_id", "activity_date", "sport_type", "sport_label", "with_file", "track_hash",
            "recording_hash", "payload_hash", "uploaded_at", "updated_at")


class WorkoutTable:
    """``strava.fittrackee_workouts`` for one instance; each write commits at once."""

    def __init__(self, database_url: str, instance_url: str) -> None:
        self.database_url = database_url
        self.instance_url = instance_url.rstrip("/")

    def load(self) -> dict[int, StoredWorkout]:
        with connect(self.database_url) as conn:
            rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM {TABLE} WHERE instance_url = %s",
                                (self.instance_url,)).fetchall()
        return {int(r[0]): StoredWorkout(*r) for r in rows}

    def save(self, row: StoredWorkout) -> None:
        values = [getattr(row, c) for c in _COLUMNS]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])
        with connect(self.database_url) as conn:
            placeholders = ", ".join(["%s"] * (len(_COLUMNS) + 1))
            conn.execute(
                f"INSERT INTO {TABLE} (instance_url, {', '.join(_COLUMNS)}) VALUES ({placeholders}) "
                f"ON CONFLICT (instance_url, activity_id) DO UPDATE SET {updates}",
                (self.instance_url, *values),
            )

    def forget(self, activity_id: int) -> None:
        with connect(self.database_url) as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE instance_url = %s AND activity_id = %s",
                         (self.instance_url, activity_id))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One sink run at a time per database (a second run waits, then sees the first one's rows)."""
        with connect(self.database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                yield
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


@dataclass
class SyncPlan:
    """What a run will do, decided from the table alone (no request)."""

    create: list[Activity] = field(default_factory=list)
    update: list[tuple[Activity, StoredWorkout]] = field(default_factory=list)
    replace: list[tuple[Activity, StoredWorkout]] = field(default_factory=list)
    delete: list[StoredWorkout] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[int, str] = field(default_factory=dict)
    #: Gone from the mirror but kept in FitTrackee (``delete_removed`` off, or the mirror is empty).
    kept_removed: int = 0

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.replace or self.delete)


def _refused(row: StoredWorkout | None, activity: Activity) -> bool:
    """FitTrackee refused this very track before (too large): it is sent without it, not tried again."""
    return (row is not None and not row.with_file and row.track_hash is not None
            and row.track_hash == activity.track_hash)


def plan_sync(activities: Iterable[Activity], stored: Mapping[int, StoredWorkout], *, delete_removed: bool,
              excluded: Mapping[int, str] | None = None) -> SyncPlan:
    """Decide each activity's action by comparing hashes with the table.

    ``excluded`` activities (e.g. a sport ``STRAVA_SPORT_TYPES`` leaves out) are skipped with their reason:
    never uploaded, and never deleted there either, since they are still in the mirror.
    """
    plan = SyncPlan()
    seen: set[int] = set()
    excluded = excluded or {}
    for activity in activities:
        seen.add(activity.activity_id)
        if activity.activity_id in excluded:
            plan.skipped[activity.activity_id] = excluded[activity.activity_id]
            continue
        row = stored.get(activity.activity_id)
        sends_file = activity.file is not None and not _refused(row, activity)
        reason = None if sends_file else activity.without_file_reason()
        if reason is not None and (row is None or row.workout_id is None or not row.with_file):
            plan.skipped[activity.activity_id] = reason
            continue
        if row is None or row.workout_id is None:
            plan.create.append(activity)
        elif row.payload_hash == activity.payload_hash():
            plan.unchanged += 1
        elif sends_file and (not row.with_file or row.recording_hash != activity.recording_hash()):
            plan.replace.append((activity, row))  # a new or different track: only a new upload carries it
        else:
            plan.update.append((activity, row))  # a file gone missing keeps the track already there
    removed = [row for activity_id, row in stored.items() if activity_id not in seen]
    if delete_removed and seen:
        plan.delete = removed
    else:
        plan.kept_removed = len(removed)
    return plan


@dataclass
class SyncReport:
    """What a run did."""

    created: int = 0
    updated: int = 0
    replaced: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    without_track: dict[int, str] = field(default_factory=dict)
    #: Sent with a thinned track: the file was larger than the instance accepts.
    reduced_track: dict[int, str] = field(default_factory=dict)
    kept_removed: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    rate_limit_waits: int = 0
    rate_limit_waited_s: float = 0.0
    rate_limited: int = 0

    @property
    def uploads(self) -> int:
        """Workouts created (new or replacing one)."""
        return self.created + self.replaced


#: Answers that concern one activity (its file or values): recorded, and the run goes on with the others.
_PER_ACTIVITY_STATUS = {400, 413, 415, 422, 500}


class _Session:
    """The lazily fetched instance facts one run needs (each costs a request, made at most once)."""

    def __init__(self, client: FitTrackeeClient) -> None:
        self.client = client
        self._sports: dict[str, int] | None = None
        self._zone: ZoneInfo | None = None
        self._max_file_size: int | None = None

    def sport(self, activity: Activity) -> tuple[str, int]:
        if self._sports is None:
            self._sports = self.client.sports()
        label = resolve_sport(activity.sport_type, self._sports, commute=activity.commute)
        return label, self._sports[label]

    def max_file_size(self) -> int | None:
        if self._max_file_size is None:
            self._max_file_size = self.client.max_file_size() or 0
        return self._max_file_size or None

    def zone(self) -> ZoneInfo:
        if self._zone is None:
            name = self.client.profile().get("timezone") or "UTC"
            try:
                self._zone = ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                self._zone = ZoneInfo("UTC")
        return self._zone

    def values(self, activity: Activity, sport_id: int, *, with_summary: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"sport_id": sport_id, "title": activity.title(), "notes": activity.notes()}
        if with_summary:
            local = activity.start_date.astimezone(self.zone())
            data.update(workout_date=local.strftime("%Y-%m-%d %H:%M"), distance=activity.distance_km,
                        duration=activity.duration_s)
        return data


def run_sync(
    client: FitTrackeeClient,
    table: WorkoutTable,
    activities: Iterable[Activity],
    *,
    delete_removed: bool = True,
    excluded: Mapping[int, str] | None = None,
    log: logging.Logger | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SyncReport:
    """Bring the instance in line with ``activities`` (the whole mirror) and the table."""
    log = log or logging.getLogger("strava_pipeline.fittrackee")
    activities = list(activities)
    before = Counter(client.requests_made)
    report = SyncReport()
    with table.exclusive():
        stored = table.load()
        plan = plan_sync(activities, stored, delete_removed=delete_removed, excluded=excluded)
        report.unchanged, report.skipped, report.kept_removed = plan.unchanged, dict(plan.skipped), plan.kept_removed
        session = _Session(client)

        def record(activity: Activity, workout: Mapping[str, Any], label: str, *, with_file: bool,
                   previous: StoredWorkout | None, keep_track: bool = False) -> None:
            stamp = now()
            same = previous is not None and previous.workout_id == str(workout["id"])
            table.save(StoredWorkout(
                activity_id=activity.activity_id, workout_id=str(workout["id"]), activity_date=activity.activity_date,
                sport_type=activity.sport_type, sport_label=label, with_file=with_file,
                track_hash=previous.track_hash if keep_track and previous else activity.track_hash,
                recording_hash=previous.recording_hash if keep_track and previous else activity.recording_hash(),
                payload_hash=activity.payload_hash(), uploaded_at=previous.uploaded_at if same and previous else stamp,
                updated_at=stamp))

        def upload_reduced(activity: Activity, values: Mapping[str, Any],
                           refusal: FitTrackeeHTTPError) -> Mapping[str, Any] | None:
            """After a 413: the track thinned to the instance's limit, or None (then it goes without it)."""
            assert activity.file is not None
            limit = session.max_file_size()
            reduced = reduced_gpx(activity.file, int(limit * 0.98)) if limit else None
            if reduced is not None:
                content, step = reduced
                notes = f"{values['notes']}\n(track reduced to one point in {step}: FitTrackee's file size limit)"
                try:
                    workout = client.upload_file(activity.file, {**values, "notes": notes[:NOTES_MAX]},
                                                 content=content)
                except FitTrackeeHTTPError as exc:
                    if exc.status != 413:
                        raise
                else:
                    report.reduced_track[activity.activity_id] = (
                        f"{activity.file.name}: {activity.file.stat().st_size} bytes > limit {limit}; sent one point "
                        f"in {step}, without extensions")
                    return workout
            report.without_track[activity.activity_id] = f"{activity.file.name}: {refusal}"
            log.warning("activity %s: FitTrackee refuses its GPX as too large (max_single_file_size, set in "
                        "FitTrackee's administration); sent without its track", activity.activity_id)
            return None

        def create(activity: Activity, previous: StoredWorkout | None) -> None:
            label, sport_id = session.sport(activity)
            if activity.file is not None and not _refused(previous, activity):
                values = session.values(activity, sport_id, with_summary=False)
                try:
                    workout = client.upload_file(activity.file, values)
                except FitTrackeeHTTPError as exc:
                    if exc.status != 413:
                        raise
                    workout = upload_reduced(activity, values, exc)
                if workout is not None:
                    record(activity, workout, label, with_file=True, previous=previous)
                    return
                if activity.without_file_reason() is not None:
                    raise FitTrackeeHTTPError(f"{activity.file.name} is larger than FitTrackee accepts, even "
                                              "reduced, and the activity has no distance to send without it",
                                              status=413)
            workout = client.upload_without_file(session.values(activity, sport_id, with_summary=True))
            record(activity, workout, label, with_file=False, previous=previous)

        def update(activity: Activity, row: StoredWorkout) -> None:
            label, sport_id = session.sport(activity)
            values = session.values(activity, sport_id, with_summary=not row.with_file)
            workout = client.update_workout(str(row.workout_id), values)
            if workout is None:  # deleted in FitTrackee meanwhile: upload it again
                log.warning("activity %s: workout %s is gone from FitTrackee; uploading it again",
                            activity.activity_id, row.workout_id)
                create(activity, None)
            else:
                record(activity, workout, label, with_file=row.with_file, previous=row,
                       keep_track=row.with_file and activity.file is None)

        def replace(activity: Activity, row: StoredWorkout) -> None:
            client.delete_workout(str(row.workout_id))
            pending = StoredWorkout(**{**row.__dict__, "workout_id": None, "updated_at": now()})
            table.save(pending)  # deleted there: an interrupted run uploads it next time
            create(activity, pending)

        def delete(row: StoredWorkout) -> None:
            if row.workout_id is not None:
                client.delete_workout(row.workout_id)
            table.forget(row.activity_id)

        def attempt(activity_id: int, action: Callable[[], None]) -> bool:
            """Run one activity's requests; an answer about that activity alone is recorded, not raised."""
            try:
                action()
            except FitTrackeeHTTPError as exc:
                if exc.status not in _PER_ACTIVITY_STATUS:
                    raise
                report.failed[activity_id] = str(exc)
                log.warning("activity %s: %s", activity_id, exc)
                return False
            return True

        for activity in plan.create:
            report.created += attempt(activity.activity_id, lambda a=activity: create(a, stored.get(a.activity_id)))
        for activity, row in plan.update:
            report.updated += attempt(activity.activity_id, lambda a=activity, r=row: update(a, r))
        for activity, row in plan.replace:
            report.replaced += attempt(activity.activity_id, lambda a=activity, r=row: replace(a, r))
        for row in plan.delete:
            report.deleted += attempt(row.activity_id, lambda r=row: delete(r))

    report.requests = Counter(client.requests_made) - before
    report.rate_limit_waits = client.limiter.waits
    report.rate_limit_waited_s = client.limiter.waited_s
    report.rate_limited = client.limiter.rate_limited
    return report

