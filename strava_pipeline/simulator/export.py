"""Strava's bulk-export archive (`export_<athlete id>.zip`) of the synthetic athlete.

Tests, the demo and benchmarks import an archive exactly as a user would, so the archive follows what
is known of real ones (../shared/strava/EXPORT-FACTS.md): `activities.csv` with repeated column names
(display block, then raw block), UTC dates in the account's language, one original per upload under
`activities/<upload id>.<ext>` in the formats people upload, empty `Filename`s for manual activities,
and optionally a listed file that is missing or truncated.

Each file encodes exactly the samples `/activities/{id}/streams` serves (same generator, same seed),
so the API is the ground truth of an import; `ExportManifest` says which file holds which activity,
which stream types each format carries, and what was broken on purpose.

The archive is streamed to disk one file at a time. Files are rendered in worker processes when there
are many; results are consumed in order, so the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import multiprocessing
import os
import random
import re
import struct
import warnings
import zipfile
from collections import Counter, deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from strava_pipeline.simulator import bodies
from strava_pipeline.simulator.dataset import Activity, Dataset, Gear, epoch_of
from strava_pipeline.simulator.export_fit import FIT_STREAMS, FileMeta, fit_bytes
from strava_pipeline.simulator.export_xml import GPX_STREAMS, TCX_STREAMS, gpx_bytes, tcx_bytes
from strava_pipeline.simulator.streams import generate

__all__ = ["FORMATS", "HEADER_2018", "HEADER_2025", "HEADER_2026", "ExportManifest", "ExportedActivity",
           "german_header", "write_export"]

FORMATS = ("fit.gz", "fit", "gpx", "gpx.gz", "tcx", "tcx.gz")
#: Default mix, after one real 2026 archive (1,264 .fit.gz, 76 .gpx.gz, 52 .tcx.gz, 29 .gpx of 1,421).
DEFAULT_MIX: dict[str, float] = {"fit.gz": 0.86, "gpx.gz": 0.05, "tcx.gz": 0.04, "gpx": 0.02, "fit": 0.02,
                                 "tcx": 0.01}
#: Stream types each format carries (the rest of a file's streams cannot be written in it).
CARRIES: dict[str, tuple[str, ...]] = {"fit": FIT_STREAMS, "gpx": GPX_STREAMS, "tcx": TCX_STREAMS}

# The English header of 2025-2026 as listed in the export contract: 94 names, five of them twice.
_HEADER_2025_LINE = (
    "Activity ID,Activity Date,Activity Name,Activity Type,Activity Description,Elapsed Time,Distance,"
    "Max Heart Rate,Relative Effort,Commute,Activity Private Note,Activity Gear,Filename,Athlete Weight,"
    "Bike Weight,Elapsed Time,Moving Time,Distance,Max Speed,Average Speed,Elevation Gain,Elevation Loss,"
    "Elevation Low,Elevation High,Max Grade,Average Grade,Average Positive Grade,Average Negative Grade,"
    "Max Cadence,Average Cadence,Max Heart Rate,Average Heart Rate,Max Watts,Average Watts,Calories,"
    "Max Temperature,Average Temperature,Relative Effort,Total Work,Number of Runs,Uphill Time,"
    "Downhill Time,Other Time,Perceived Exertion,Type,Start Time,Weighted Average Power,Power Count,"
    "Prefer Perceived Exertion,Perceived Relative Effort,Commute,Total Weight Lifted,From Upload,"
    "Grade Adjusted Distance,Weather Observation Time,Weather Condition,Weather Temperature,"
    "Apparent Temperature,Dewpoint,Humidity,Weather Pressure,Wind Speed,Wind Gust,Wind Bearing,"
    "Precipitation Intensity,Sunrise Time,Sunset Time,Moon Phase,Bike,Gear,Precipitation Probability,"
    "Precipitation Type,Cloud Cover,Weather Visibility,UV Index,Weather Ozone,Jump Count,Total Grit,"
    "Average Flow,Flagged,Average Elapsed Speed,Dirt Distance,Newly Explored Distance,"
    "Newly Explored Dirt Distance,Activity Count,Total Steps,Carbon Saved,Pool Length,Training Load,"
    "Intensity,Average Grade Adjusted Pace,Timer Time,Total Cycles,Media"
)
HEADER_2025: tuple[str, ...] = tuple(_HEADER_2025_LINE.split(","))
#: A later, wider header (103 columns seen in 2026): columns an importer does not know must be kept.
HEADER_2026: tuple[str, ...] = (
    *HEADER_2025[:-1], "Recovery", "With Pet", "Competition", "Long Run", "For a Cause", "With Kid",
    "Downhill Distance", "Total Sets", "Total Reps", "Media")
#: Before about July 2019.
HEADER_2018: tuple[str, ...] = ("id", "date", "name", "type", "description", "elapsed_time", "distance",
                                "commute", "gear", "filename")

GERMAN_NAMES: dict[str, str] = {
    "Activity ID": "Aktivitäts-ID", "Activity Date": "Aktivitätsdatum", "Activity Name": "Name der Aktivität",
    "Activity Type": "Aktivitätsart", "Activity Description": "Beschreibung der Aktivität",
    "Elapsed Time": "Verstrichene Zeit", "Distance": "Distanz", "Max Heart Rate": "Maximale Herzfrequenz",
    "Relative Effort": "Relative Anstrengung", "Commute": "Pendeln",
    "Activity Private Note": "Private Notiz zur Aktivität", "Activity Gear": "Aktivitätsausrüstung",
    "Filename": "Dateiname", "Athlete Weight": "Sportlergewicht", "Bike Weight": "Fahrradgewicht",
    "Moving Time": "Bewegungszeit", "Max Speed": "Maximale Geschwindigkeit",
    "Average Speed": "Durchschnittliche Geschwindigkeit", "Elevation Gain": "Höhenzunahme",
    "Elevation Loss": "Höhenabnahme", "Elevation Low": "Niedrigste Höhe", "Elevation High": "Höchste Höhe",
    "Max Grade": "Maximale Steigung", "Average Grade": "Durchschnittliche Steigung",
    "Max Cadence": "Maximale Trittfrequenz", "Average Cadence": "Durchschnittliche Trittfrequenz",
    "Average Heart Rate": "Durchschnittliche Herzfrequenz", "Max Watts": "Maximale Wattleistung",
    "Average Watts": "Durchschnittliche Wattleistung", "Calories": "Kalorien",
    "Max Temperature": "Maximale Temperatur", "Average Temperature": "Durchschnittstemperatur",
    "Perceived Exertion": "Empfundene Anstrengung", "Start Time": "Startzeit",
    "Weighted Average Power": "Gewichtete Durchschnittsleistung",
    "Grade Adjusted Distance": "Steigungsbereinigte Distanz", "Weather Condition": "Wetterbedingungen",
    "Weather Temperature": "Wettertemperatur", "Total Steps": "Schritte gesamt", "Gear": "Ausrüstung",
    "Media": "Medien",
}

#: sport_type -> Strava's English display name (what `Activity Type` holds).
DISPLAY_TYPES: dict[str, str] = {
    "Run": "Run", "Ride": "Ride", "Swim": "Swim", "Hike": "Hike", "Walk": "Walk",
    "WeightTraining": "Weight Training", "VirtualRide": "Virtual Ride", "VirtualRun": "Virtual Run",
    "TrailRun": "Trail Run", "MountainBikeRide": "Mountain Bike Ride", "GravelRide": "Gravel Ride",
    "Yoga": "Yoga", "Rowing": "Rowing", "Workout": "Workout", "EBikeRide": "E-Bike Ride",
}
GERMAN_TYPES: dict[str, str] = {
    "Run": "Lauf", "Ride": "Radfahrt", "Swim": "Schwimmen", "Hike": "Wanderung", "Walk": "Spaziergang",
    "WeightTraining": "Krafttraining", "VirtualRide": "Virtuelle Radfahrt", "VirtualRun": "Virtueller Lauf",
    "TrailRun": "Trailrun", "MountainBikeRide": "Mountainbike-Fahrt", "GravelRide": "Gravel-Fahrt",
    "Yoga": "Yoga", "Rowing": "Rudern", "Workout": "Workout",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Columns whose values are text (no decimal comma in German).
_TEXT_COLUMNS = {"Activity Date", "Activity Name", "Activity Type", "Activity Description", "Activity Private Note",
                 "Activity Gear", "Filename", "Media"}
_PRIVATE_NOTES = (
    'Legs heavy, "hot" day.\nSkip intervals next time.',
    "Ate 2 gels & 1 bar <3",
    "New shoes, left heel rubbing 🩹",
    "Route: café → park → home, 5 x 1'",
)


def german_header(header: Iterable[str]) -> tuple[str, ...]:
    """The contract's German names for an English header (columns without one keep their English name)."""
    return tuple(GERMAN_NAMES.get(name, name) for name in header)


def display_type(sport_type: str, language: str = "en") -> str:
    if language == "de" and sport_type in GERMAN_TYPES:
        return GERMAN_TYPES[sport_type]
    return DISPLAY_TYPES.get(sport_type) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", sport_type)


def activity_date(epoch: int, language: str = "en") -> str:
    """`Activity Date` in UTC: `Oct 7, 2020, 2:43:11 PM` (en) or `07.10.2020, 14:43:11` (de)."""
    d = datetime.fromtimestamp(epoch, UTC)
    if language == "de":
        return d.strftime("%d.%m.%Y, %H:%M:%S")
    hour, half = d.hour % 12 or 12, "PM" if d.hour >= 12 else "AM"
    return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}, {hour}:{d.minute:02d}:{d.second:02d} {half}"


def _f32(value: float) -> str:
    """Raw-block numbers are single-precision floats printed in full (`200100.015625`), as Strava writes them."""
    return repr(struct.unpack("<f", struct.pack("<f", float(value)))[0])


# --- manifest ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportedActivity:
    """One activities.csv row and its file: the ground truth a test checks an import against."""

    activity_id: int
    upload_id: int | None
    filename: str  # the Filename column: "" for activities without a file (manual, replayed)
    format: str | None  # "fit.gz", "fit", "gpx", "gpx.gz", "tcx", "tcx.gz"
    streams: tuple[str, ...]  # stream types the file encodes, one sample per entry of /streams
    samples: int  # number of samples (FIT records, GPX trkpts, TCX Trackpoints)
    broken: tuple[str, ...] = ()  # "missing" (listed, not in the archive), "truncated" (cut short)
    manual: bool = False

    @property
    def in_archive(self) -> bool:
        return bool(self.filename) and "missing" not in self.broken


@dataclass(frozen=True)
class ExportManifest:
    """What `write_export` wrote: where, in which language and layout, and every row in CSV order."""

    path: Path  # the .zip, or the unpacked folder
    athlete_id: int
    language: str
    layout: str
    activities: tuple[ExportedActivity, ...]
    _by_id: dict[int, ExportedActivity] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({a.activity_id: a for a in self.activities})

    def activity(self, activity_id: int) -> ExportedActivity:
        return self._by_id[activity_id]

    @property
    def ids_with_files(self) -> list[int]:
        """Activities whose file is in the archive (truncated ones included)."""
        return [a.activity_id for a in self.activities if a.in_archive]

    @property
    def files(self) -> dict[str, ExportedActivity]:
        """Archive member name -> activity, for every file actually written."""
        return {a.filename: a for a in self.activities if a.in_archive}

    @property
    def missing(self) -> list[ExportedActivity]:
        return [a for a in self.activities if "missing" in a.broken]

    @property
    def truncated(self) -> list[ExportedActivity]:
        return [a for a in self.activities if "truncated" in a.broken]

    def summary(self) -> dict[str, Any]:
        """A JSON-able digest (what the CLI prints and `POST /_simulator/export` answers)."""
        return {
            "path": str(self.path),
            "athlete_id": self.athlete_id,
            "language": self.language,
            "layout": self.layout,
            "activities": len(self.activities),
            "files": len(self.ids_with_files),
            "manual": sum(a.manual for a in self.activities),
            "formats": dict(sorted(Counter(a.format for a in self.activities if a.in_archive).items())),
            "missing": [{"activity_id": a.activity_id, "filename": a.filename} for a in self.missing],
            "truncated": [{"activity_id": a.activity_id, "filename": a.filename} for a in self.truncated],
        }


# --- rendering one file (runs in worker processes) ---------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    activity: Activity
    seed: int
    fmt: str
    meta: FileMeta
    truncate: bool
    compresslevel: int


@dataclass(frozen=True)
class _Rendered:
    data: bytes
    samples: int
    streams: tuple[str, ...]
    stats: dict[str, float | None]


def _stats(streams: dict[str, list[Any]]) -> dict[str, float | None]:
    """activities.csv numbers only the samples know (the summary does not carry them)."""
    alt, dist = streams.get("altitude"), streams["distance"]
    out: dict[str, float | None] = {"loss": None, "max_grade": None, "avg_grade": None}
    if alt:
        out["loss"] = sum(max(0.0, a - b) for a, b in pairwise(alt))
        out["avg_grade"] = (alt[-1] - alt[0]) / dist[-1] * 100 if dist[-1] > 0 else 0.0
    if streams.get("grade_smooth"):
        out["max_grade"] = max(streams["grade_smooth"])
    for key, stream in (("max_cadence", "cadence"), ("max_watts", "watts"), ("max_temp", "temp")):
        out[key] = max(streams[stream]) if streams.get(stream) else None
    return out


def _render(job: _Job) -> _Rendered:
    """Generate the activity's streams as the API does and write them in the job's format."""
    streams = generate(job.activity, job.seed)
    kind = job.fmt.split(".")[0]
    writer = {"fit": fit_bytes, "gpx": gpx_bytes, "tcx": tcx_bytes}[kind]
    raw = writer(job.meta, streams)
    if job.truncate:
        raw = raw[: len(raw) * 3 // 5]
    data = gzip.compress(raw, job.compresslevel, mtime=0) if job.fmt.endswith(".gz") else raw
    carried = tuple(s for s in CARRIES[kind] if s in streams)
    return _Rendered(data, len(streams["time"]), carried, _stats(streams))


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork where there is one: spawned workers would re-run the caller's main module (a script without a
    `__main__` guard would start exporting again) and pay the imports anew. Forking a process that runs
    server threads is safe here because a worker only runs `_render`, a pure function of its pickled job
    that takes no lock and imports nothing new (its modules are imported before the pool starts)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _render_all(jobs: list[_Job], workers: int) -> Iterator[_Rendered]:
    """Results in job order; at most a few per worker are in flight, so memory stays bounded."""
    if workers <= 1 or len(jobs) <= 1 or multiprocessing.current_process().daemon:  # daemons may not fork
        yield from map(_render, jobs)
        return
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=_pool_context()) as pool:
        pending: deque[Future[_Rendered]] = deque()
        for job in jobs:
            with warnings.catch_warnings():  # Python >= 3.12 warns about forking with threads (see above)
                warnings.simplefilter("ignore", DeprecationWarning)
                pending.append(pool.submit(_render, job))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --- where the archive goes --------------------------------------------------------------------------------

def _zip_time(epoch: float) -> tuple[int, int, int, int, int, int]:
    d = datetime.fromtimestamp(max(epoch, 315_532_800), UTC)  # zip dates start in 1980
    return (d.year, d.month, d.day, d.hour, d.minute, d.second)


class _ZipSink:
    """Writes members straight into the zip (a `.partial` file renamed once complete)."""

    def __init__(self, path: Path, compresslevel: int) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.zip = zipfile.ZipFile(self.partial, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel)

    def _info(self, name: str, epoch: float) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, _zip_time(epoch))
        info.compress_type = zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix, on every platform: same bytes everywhere
        info.external_attr = 0o644 << 16
        return info

    def write(self, name: str, data: bytes, epoch: float) -> None:
        self.zip.writestr(self._info(name, epoch), data)

    def text(self, name: str, epoch: float) -> io.TextIOWrapper:
        return io.TextIOWrapper(self.zip.open(self._info(name, epoch), "w"), encoding="utf-8", newline="")

    def close(self, ok: bool) -> None:
        self.zip.close()
        if ok:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


class _FolderSink:
    """The unpacked archive: the same members as files under one folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def _target(self, name: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write(self, name: str, data: bytes, epoch: float) -> None:
        target = self._target(name)
        target.write_bytes(data)
        os.utime(target, (epoch, epoch))

    def text(self, name: str, epoch: float) -> io.TextIOWrapper:
        return open(self._target(name), "w", encoding="utf-8", newline="")

    def close(self, ok: bool) -> None:
        """Nothing to finish: every member is complete once written."""


# --- planning ----------------------------------------------------------------------------------------------

def _mix(formats: str | Mapping[str, float] | None) -> dict[str, float]:
    if formats is None:
        return dict(DEFAULT_MIX)
    mix = {formats: 1.0} if isinstance(formats, str) else {k: float(v) for k, v in formats.items() if v > 0}
    unknown = set(mix) - set(FORMATS)
    if unknown or not mix:
        raise ValueError(f"unknown or empty formats {sorted(unknown) or formats!r}; choose from {FORMATS}")
    return mix


def _for_position(fmt: str, has_gps: bool) -> str:
    """GPX needs positions: an activity without GPS gets TCX (same compression) instead."""
    return fmt.replace("gpx", "tcx") if fmt.startswith("gpx") and not has_gps else fmt


def _choose_formats(acts: list[Activity], seed: int, mix: dict[str, float],
                    forced: Mapping[int, str]) -> dict[int, str]:
    """Each activity's format, drawn per activity from the mix; then every format of the mix is made to
    appear at least once (when there are enough files), so small archives still exercise every reader."""
    names, weights = list(mix), list(mix.values())
    gps = {a.id: a.has_gps for a in acts}
    chosen = {a.id: _for_position(random.Random(f"{seed}:export:{a.id}").choices(names, weights)[0], a.has_gps)
              for a in acts}
    rng = random.Random(f"{seed}:export:every-format")
    for fmt in names:
        if fmt in chosen.values():
            continue
        common, count = Counter(chosen.values()).most_common(1)[0] if chosen else ("", 0)
        pool = [a.id for a in acts if chosen[a.id] == common and a.id not in forced
                and (a.has_gps or not fmt.startswith("gpx"))]
        if count > 1 and pool:
            chosen[rng.choice(pool)] = fmt
    for activity_id, fmt in forced.items():
        if activity_id not in chosen:
            raise ValueError(f"file_formats: activity {activity_id} has no file (manual, replayed or unknown)")
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} for activity {activity_id}; choose from {FORMATS}")
        if fmt.startswith("gpx") and not gps[activity_id]:
            raise ValueError(f"file_formats: activity {activity_id} has no positions, GPX cannot hold it")
        chosen[activity_id] = fmt
    return chosen


def _pick(kind: str, spec: int | Collection[int], candidates: list[int], formats: dict[int, str], seed: int,
          taken: set[int]) -> set[int]:
    """Activities to break: the ids given, or `spec` of them drawn among the commonest format's files (so
    breaking one never removes the only file of a format)."""
    if not isinstance(spec, int):
        wanted = set(spec)
        unknown = wanted - set(candidates)
        if unknown:
            raise ValueError(f"{kind}: activities without a file in the archive: {sorted(unknown)}")
        return wanted
    if spec <= 0:
        return set()
    free = [i for i in candidates if i not in taken]
    common = Counter(formats[i] for i in free).most_common(1)[0][0] if free else ""
    preferred = [i for i in free if formats[i] == common]
    pool = preferred if len(preferred) > spec else free
    return set(random.Random(f"{seed}:export:{kind}").sample(pool, min(spec, len(pool))))


def _meta(act: Activity, s: dict[str, Any]) -> FileMeta:
    return FileMeta(
        activity_id=act.id, name=str(s.get("name") or ""), sport_type=str(s.get("sport_type") or act.sport),
        start_epoch=epoch_of(s["start_date"]), local_epoch=epoch_of(s["start_date_local"]), elapsed=act.elapsed,
        moving=act.moving_time, calories=s.get("calories", act.calories), average_speed=s.get("average_speed"),
        average_heartrate=s.get("average_heartrate"),
        average_cadence=s.get("average_cadence"), average_watts=s.get("average_watts"),
        total_elevation_gain=s.get("total_elevation_gain"), device_name=s.get("device_name"),
        serial=(act.id * 2_654_435_761) % 0xFFFF_FFFE + 1, pauses=tuple(act.pauses),
    )


# --- activities.csv ----------------------------------------------------------------------------------------

def _row(header: tuple[str, ...], s: dict[str, Any], act: Any, gear: Gear | None, athlete_weight: float,
         filename: str, stats: dict[str, float | None], language: str, seed: int) -> list[str]:
    """One activities.csv row: values by (column name, occurrence), in the header's order."""
    manual = bool(s.get("manual"))
    distance = float(s.get("distance") or 0.0)
    elapsed = int(s.get("elapsed_time") or 0)
    moving = int(s.get("moving_time") or 0)
    description = s.get("description", getattr(act, "description", "")) or ""
    note_rng = random.Random(f"{seed}:note:{s['id']}")
    note = note_rng.choice(_PRIVATE_NOTES) if note_rng.random() < 0.15 else ""
    sport_type = str(s.get("sport_type") or s.get("type") or "")
    calories = s.get("calories", getattr(act, "calories", None))
    values: dict[tuple[str, int], str] = {}

    def put(name: str, value: Any, occurrence: int = 1, fmt: Any = _f32) -> None:
        if value is not None and value != "":
            values[(name, occurrence)] = fmt(value) if fmt is not None else str(value)

    put("Activity ID", s["id"], fmt=None)
    put("Activity Date", activity_date(epoch_of(s["start_date"]), language), fmt=None)
    put("Activity Name", s.get("name"), fmt=None)
    put("Activity Type", display_type(sport_type, language), fmt=None)
    put("Activity Description", description, fmt=None)
    put("Elapsed Time", elapsed, fmt=None)
    put("Distance", f"{distance / 1000:.2f}", fmt=None)
    put("Max Heart Rate", s.get("max_heartrate"), fmt=lambda v: repr(float(v)))
    put("Relative Effort", s.get("suffer_score"), fmt=lambda v: repr(float(v)))
    put("Commute", "true" if s.get("commute") else "false", fmt=None)
    put("Activity Private Note", note, fmt=None)
    put("Activity Gear", gear.name if gear else None, fmt=None)
    put("Filename", filename, fmt=None)
    put("Athlete Weight", athlete_weight)
    put("Bike Weight", gear.weight if gear and gear.id.startswith("b") else None)
    put("Elapsed Time", elapsed, 2)
    put("Moving Time", moving)
    put("Distance", distance, 2)
    put("Max Speed", s.get("max_speed"))
    put("Average Speed", s.get("average_speed"))
    if not manual:
        put("Elevation Gain", s.get("total_elevation_gain"))
        put("Elevation Loss", stats.get("loss"))
        put("Elevation Low", s.get("elev_low"))
        put("Elevation High", s.get("elev_high"))
        put("Max Grade", stats.get("max_grade"))
        put("Average Grade", stats.get("avg_grade"))
    put("Max Cadence", stats.get("max_cadence"))
    put("Average Cadence", s.get("average_cadence"))
    put("Max Heart Rate", s.get("max_heartrate"), 2)
    put("Average Heart Rate", s.get("average_heartrate"))
    put("Max Watts", stats.get("max_watts"))
    put("Average Watts", s.get("average_watts"))
    put("Calories", calories)
    put("Max Temperature", stats.get("max_temp"))
    put("Average Temperature", s.get("average_temp"))
    put("Relative Effort", s.get("suffer_score"), 2)
    put("Total Work", s["kilojoules"] * 1000 if s.get("kilojoules") is not None else None)
    put("Prefer Perceived Exertion", 0.0)
    put("Commute", 1.0 if s.get("commute") else 0.0, 2)
    put("From Upload", 0.0 if manual else 1.0)
    if gear is not None:
        put("Bike" if gear.id.startswith("b") else "Gear", float(gear.id[1:]))
    put("Flagged", 1.0 if s.get("flagged") else 0.0)
    put("Average Elapsed Speed", distance / elapsed if elapsed else None)
    if sport_type in ("Run", "TrailRun", "Walk", "Hike") and s.get("average_cadence"):
        put("Total Steps", round(s["average_cadence"] * 2 * moving / 60))
    put("Timer Time", moving)

    row = []
    seen: Counter[str] = Counter()
    for name in header:
        seen[name] += 1
        value = values.get((name, seen[name]), "")
        if language == "de" and name not in _TEXT_COLUMNS:
            value = value.replace(".", ",")
        row.append(value)
    return row


def _row_2018(s: dict[str, Any], gear: Gear | None, filename: str, act: Any) -> list[str]:
    start = datetime.fromtimestamp(epoch_of(s["start_date"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
    description = s.get("description", getattr(act, "description", "")) or ""
    return [str(s["id"]), start, str(s.get("name") or ""), display_type(str(s.get("sport_type") or "")), description,
            str(s.get("elapsed_time") or 0), repr(float(s.get("distance") or 0.0)),
            "true" if s.get("commute") else "false", gear.name if gear else "", filename]


def _write_gear_and_profile(sink: _ZipSink | _FolderSink, dataset: Dataset, epoch: float) -> None:
    a = dataset.athlete
    tables = {
        "profile.csv": (
            ("Athlete ID", "Email Address", "First Name", "Last Name", "Sex", "Description", "City", "State",
             "Country", "Health Consent Status", "Date of Health Consent Status"),
            [(a.id, f"{a.username}@example.invalid", a.firstname, a.lastname, a.sex,
              bodies.summary_athlete(a)["bio"], a.city, a.state, a.country, "", "")],
        ),
        "bikes.csv": (
            ("Bike Name", "Bike Brand", "Bike Model", "Bike Default Sport Types"),
            [(g.name, g.brand, g.model, {"mtb": "MountainBikeRide", "trainer": "VirtualRide"}.get(g.kind, "Ride"))
             for g in a.gear if g.id.startswith("b")],
        ),
        "shoes.csv": (
            ("Shoe Name", "Shoe Brand", "Shoe Model", "Shoe Default Sport Types"),
            [(g.name, g.brand, g.model, "Hike" if g.kind == "hike" else "Run")
             for g in a.gear if g.id.startswith("g")],
        ),
    }
    for name, (header, rows) in tables.items():
        with sink.text(name, epoch) as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)


# --- the entry point ---------------------------------------------------------------------------------------

def _default_workers(files: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return 1 if files < 48 else max(1, min(cpus, 8))


def write_export(
    dataset: Dataset,
    path: str | os.PathLike[str],
    *,
    language: Literal["en", "de"] = "en",
    layout: Literal["2025", "2026", "2018"] = "2025",
    formats: str | Mapping[str, float] | None = None,
    file_formats: Mapping[int, str] | None = None,
    missing_files: int | Collection[int] = 0,
    truncated_files: int | Collection[int] = 0,
    unpacked: bool = False,
    workers: int | None = None,
    compresslevel: int = 6,
    before: str | None = None,
) -> ExportManifest:
    """Write the athlete's bulk-export archive and return its manifest.

    `path` is a folder that receives `export_<athlete id>.zip` (or, with `unpacked`, the folder
    `export_<athlete id>/`); a path ending in `.zip` names the archive itself. `language` "de" writes
    German column names, activity types, day-first dates and decimal commas; `layout` picks the header:
    "2025" (the contract's), "2026" (nine more columns before `Media`) or "2018" (the lower-case pre-2019
    header, English only). `formats` is one format or a weight per format (default: `DEFAULT_MIX`);
    `file_formats` forces the format of given activity ids. `missing_files` / `truncated_files` is a count
    (drawn deterministically) or the activity ids whose listed file is left out / cut to 60 %.
    `workers` renders files in that many processes (default: one per core for big archives); the output
    is the same byte for byte whatever the number. `before` (an ISO date) writes the archive as it was
    requested that day: only activities that started (UTC) before it, so newer ones exist only in the API.
    """
    if language not in ("en", "de"):
        raise ValueError(f"language must be 'en' or 'de', not {language!r}")
    if layout not in ("2025", "2026", "2018"):
        raise ValueError(f"layout must be '2025', '2026' or '2018', not {layout!r}")
    if layout == "2018" and language != "en":
        raise ValueError("the pre-2019 header exists in English only")
    header = {"2025": HEADER_2025, "2026": HEADER_2026, "2018": HEADER_2018}[layout]
    mix = _mix(formats)

    with dataset.lock:
        acts = list(reversed(dataset.ordered()))  # oldest first, as activities.csv lists them
        summaries = [copy.deepcopy(a.summary()) for a in acts]
        if before is not None:
            kept = [(a, s) for a, s in zip(acts, summaries, strict=True) if s["start_date"][:10] < before]
            acts, summaries = [a for a, _ in kept], [s for _, s in kept]
        athlete = dataset.athlete
        seed = dataset.seed
    gear_by_id = {g.id: g for g in athlete.gear}

    # Which activities have a file, under which (unique) upload id.
    uploads: dict[int, int] = {}
    used: set[int] = set()
    with_file: list[Activity] = []
    for act, s in zip(acts, summaries, strict=True):
        upload = s.get("upload_id")
        if isinstance(act, Activity) and act.has_streams and not s.get("manual") and upload is not None:
            upload = int(upload)
            while upload in used:  # never two rows for one file
                upload += 1
            used.add(upload)
            uploads[act.id] = upload
            with_file.append(act)
    chosen = _choose_formats(with_file, seed, mix, dict(file_formats or {}))
    candidates = [a.id for a in with_file]
    missing = _pick("missing", missing_files, candidates, chosen, seed, set())
    truncated = _pick("truncated", truncated_files, candidates, chosen, seed, missing)

    target = Path(path)
    stem = f"export_{athlete.id}"
    if unpacked:
        target = target if target.name == stem else target / stem
        sink: _ZipSink | _FolderSink = _FolderSink(target)
    else:
        if target.suffix.lower() != ".zip":
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{stem}.zip"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        sink = _ZipSink(target, compresslevel)

    summary_of = {a.id: s for a, s in zip(acts, summaries, strict=True)}
    ends = [epoch_of(s["start_date"]) + int(s.get("elapsed_time") or 0) for s in summaries]
    export_epoch = (max(ends) if ends else 1_577_836_800) + 3600  # after the last upload; deterministic
    jobs = [_Job(a, seed, chosen[a.id], _meta(a, summary_of[a.id]), a.id in truncated, compresslevel)
            for a in with_file if a.id not in missing]
    n_workers = workers if workers is not None else _default_workers(len(jobs))

    ok = False
    try:
        rendered: dict[int, _Rendered] = {}
        for job, result in zip(jobs, _render_all(jobs, n_workers), strict=True):
            name = f"activities/{uploads[job.activity.id]}.{job.fmt}"
            sink.write(name, result.data, job.meta.start_epoch + job.meta.elapsed)
            rendered[job.activity.id] = _Rendered(b"", result.samples, result.streams, result.stats)
        for act in with_file:
            if act.id in missing:  # not written, but the manifest still says what it would have held
                kind = chosen[act.id].split(".")[0]
                streams = generate(act, seed)
                rendered[act.id] = _Rendered(b"", len(streams["time"]),
                                             tuple(s for s in CARRIES[kind] if s in streams), _stats(streams))
        entries = []
        with sink.text("activities.csv", export_epoch) as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header if language == "en" else german_header(header))
            for act, s in zip(acts, summaries, strict=True):
                result = rendered.get(act.id)
                filename = f"activities/{uploads[act.id]}.{chosen[act.id]}" if act.id in uploads else ""
                gear = gear_by_id.get(s.get("gear_id") or "")
                if layout == "2018":
                    writer.writerow(_row_2018(s, gear, filename, act))
                else:
                    writer.writerow(_row(header, s, act, gear, athlete.weight, filename,
                                         result.stats if result else {}, language, seed))
                broken = ("missing",) if act.id in missing else ("truncated",) if act.id in truncated else ()
                entries.append(ExportedActivity(
                    activity_id=act.id, upload_id=uploads.get(act.id), filename=filename,
                    format=chosen.get(act.id), streams=result.streams if result else (),
                    samples=result.samples if result else 0, broken=broken, manual=bool(s.get("manual")),
                ))
        _write_gear_and_profile(sink, dataset, export_epoch)
        ok = True
    finally:
        sink.close(ok)
    return ExportManifest(target, athlete.id, language, layout, tuple(entries))
