"""Importing a Strava export archive into the raw layer: the step before the export assets run.

``stage_archive`` copies every file of the archive, byte for byte, into the raw blob store (addressed by
SHA-256, so every typed table can be rebuilt without the archive), reads ``activities.csv``, decodes each
activity's original file once to learn its local date, the
partition it belongs to, and keeps the decoded samples in the landing cache for the typed streams.
The result is the archive index: one row per activity of the newest archive that holds it, with the
verbatim CSV row, the file it names and how reading it went. A later, newer archive replaces the rows it
holds again and adds new ones; importing the same archive twice changes nothing. Only the days whose rows
changed need materialising.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from strava_pipeline.export.activities_csv import CsvRow, parse_activities_csv
from strava_pipeline.export.archive import ACTIVITIES_CSV, Archive, open_archive
from strava_pipeline.export.local_time import LocalStart, local_start
from strava_pipeline.export.profile import gear_documents, profile_document
from strava_pipeline.export.recordings import RecordingError, decode_recording
from strava_pipeline.export.summaries import export_summary
from strava_pipeline.storage.blobs import BlobStore
from strava_pipeline.storage.files import write_atomic
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.transforms.activities import EXPORT_ACTIVITY_RAW_SCHEMA
from strava_pipeline.transforms.athlete import ATHLETE_RAW_SCHEMA
from strava_pipeline.transforms.recorded_streams import complete_streams

__all__ = [
    "ExportPaths", "StagedArchive", "api_local_dates", "archives_in", "read_archive_athlete", "read_index",
    "read_samples", "redate_to_api", "stage_archive",
]

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportPaths:
    """Where the archive's raw layer lives under a data dir."""

    data_dir: Path

    @property
    def root(self) -> Path:
        return self.data_dir / "raw" / "export"

    @property
    def blobs(self) -> BlobStore:
        return BlobStore(self.root / "blobs")

    @property
    def index(self) -> Path:
        return self.root / "index.parquet"

    @property
    def athlete(self) -> Path:
        """The newest archive's athlete and gear, as ``athlete_raw`` rows in the API's document shapes."""
        return self.root / "athlete_raw.parquet"

    def manifest(self, archive_sha256: str) -> Path:
        return self.root / "archives" / f"{archive_sha256}.json"

    def samples(self, file_sha256: str) -> Path:
        """The decoded, completed samples of one original file (a cache: rebuilt from the blob if absent)."""
        return self.data_dir / "landing" / "export" / f"{file_sha256}.parquet"


@dataclass
class StagedArchive:
    """What staging an archive found and changed."""

    path: Path
    archive_sha256: str
    already_imported: bool
    activities: int = 0
    #: Rows by status (ok, no_file, missing_file, failed).
    statuses: dict[str, int] = field(default_factory=dict)
    #: Archive members refused (unsafe names, links) and CSV rows without a usable id: (what, why).
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: Days whose export rows are new, changed or moved away: the partitions to materialise.
    days: list[date] = field(default_factory=list)
    samples: int = 0
    #: Files read by each decoder ("fitfast 0.1.0": 830, "lxml 6.1.3": 120, ...).
    decoders: dict[str, int] = field(default_factory=dict)


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_members(archive: Archive, blobs: BlobStore) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """Every safe member into the blob store: relative name -> {sha256, size}; refused ones with reasons."""
    stored: dict[str, dict[str, Any]] = {}
    refused: list[tuple[str, str]] = []
    for member in archive.members:
        if member.refused is not None:
            refused.append((member.name, member.refused))
            continue
        with archive.open(member) as handle:
            sha, size = blobs.put(handle)
        stored[archive.relative(member.name)] = {"sha256": sha, "size": size}
    return stored, refused


def _file_format(name: str) -> str:
    lowered = name.lower().removesuffix(".gz")
    return lowered.rsplit(".", 1)[-1] if "." in lowered else ""


def _decode_one(blob: str, name: str, cache: str) -> dict[str, Any]:
    """Decode one original file, cache its completed samples, return what the index needs. A file that
    cannot be read fails only its own activity, whatever the reason."""
    try:
        recording = decode_recording(Path(blob).read_bytes(), name)
    except RecordingError as exc:
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:  # a decoder's own bug on an odd file must not stop the other activities
        return {"status": "failed", "error": f"{name}: could not be read ({type(exc).__name__}: {exc})"}
    samples = complete_streams(recording.samples)
    write_atomic(Path(cache), lambda tmp: samples.write_parquet(tmp, compression="zstd"))
    positions = samples.filter(pl.col("lat").is_not_null() & pl.col("lng").is_not_null()).select("lat", "lng")
    first = tuple(positions.row(0)) if positions.height else None
    last = tuple(positions.row(-1)) if positions.height else None
    return {
        "status": "ok",
        "samples": samples.height,
        "start_utc": recording.start_utc,
        "local_start": recording.local_start,
        "local_timestamp_utc": recording.local_timestamp_utc,
        "first_position": first,
        "last_position": last,
        "has_heartrate": bool(samples.get_column("heartrate_bpm").is_not_null().any()) if samples.height else False,
        "format": recording.format,
        "decoder": recording.decoder,
    }


def _activity_id_of(row: CsvRow) -> int | None:
    if row.activity is not None:
        return row.activity.activity_id
    try:
        return int(row.values[0])  # Activity ID (id before 2019) is the first column of every layout
    except (IndexError, ValueError):
        return None


def _raw_row(columns: Iterable[tuple[str, int]], values: Iterable[str]) -> str:
    return json.dumps([[name, occurrence, value] for (name, occurrence), value in zip(columns, values, strict=False)],
                      ensure_ascii=False)


def _local(row: CsvRow, decoded: Mapping[str, Any] | None, timezone: str) -> LocalStart:
    assert row.activity is not None
    decoded = decoded or {}
    local_ts, local_ts_utc = decoded.get("local_start"), decoded.get("local_timestamp_utc")
    start = row.activity.start_date_utc
    return local_start(start, fit_local_timestamp=local_ts, fit_timestamp_utc=local_ts_utc,
                       first_position=decoded.get("first_position"), configured_timezone=timezone)


def archives_in(path: Path) -> list[Path]:
    """The archives at ``path``: itself (a zip, or an unpacked folder holding activities.csv), or every
    ``*.zip`` and unpacked archive folder inside it, oldest first (so a newer archive's rows win)."""
    path = Path(path).expanduser()
    if path.is_file() or (path / ACTIVITIES_CSV).is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such archive or folder")
    found = [p for p in path.iterdir() if (p.is_file() and p.suffix.lower() == ".zip")
             or (p.is_dir() and (p / ACTIVITIES_CSV).is_file())]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def api_local_dates(data_dir: Path) -> dict[int, date]:
    """Local dates of the activities the API has listed (``activities_raw``): the archive files them under
    the same day, so the two sources never put one activity on two days."""
    frame = ParquetStore(Path(data_dir) / "parquet").read("activities_raw", None,
                                                          columns=["activity_id", "activity_date"])
    return dict(frame.iter_rows()) if frame.width else {}


def _write_athlete(paths: ExportPaths, stored: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
    """The archive's profile and gear as ``athlete_raw``-shaped rows (kept beside the index)."""
    def member(name: str) -> bytes | None:
        entry = stored.get(name)
        return paths.blobs.read(entry["sha256"]) if entry is not None else None

    profile = profile_document(member("profile.csv"))
    if profile is None:
        return
    rows = [{"resource": "athlete", "resource_id": str(profile["id"]), "fetched_at": now,
             "payload": json.dumps(profile, ensure_ascii=False)}]
    rows += [{"resource": "gear", "resource_id": g["id"], "fetched_at": now,
              "payload": json.dumps(g, ensure_ascii=False)} for g in gear_documents(member("bikes.csv"),
                                                                                     member("shoes.csv"))]
    frame = pl.DataFrame(rows, schema=ATHLETE_RAW_SCHEMA)
    write_atomic(paths.athlete, lambda tmp: frame.write_parquet(tmp))


def read_archive_athlete(data_dir: Path) -> pl.DataFrame:
    """The imported archive's athlete and gear as ``athlete_raw`` rows; empty before any import."""
    path = ExportPaths(data_dir).athlete
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame(schema=ATHLETE_RAW_SCHEMA)


def read_index(data_dir: Path, days: Iterable[date] | None = None) -> pl.DataFrame:
    """The archive index (``export_activities_raw`` rows), for ``days`` or whole; empty before any import."""
    path = ExportPaths(data_dir).index
    if not path.is_file():
        return pl.DataFrame(schema=EXPORT_ACTIVITY_RAW_SCHEMA)
    frame = pl.read_parquet(path)
    if days is not None:
        frame = frame.filter(pl.col("activity_date").is_in(sorted(set(days))))
    return frame.sort("activity_date", "activity_id")


def redate_to_api(data_dir: Path, api_dates: Mapping[int, date]) -> list[date]:
    """File archive rows under the day the API lists their activity on (the API's date wins, rule 1), for an
    archive imported before the API knew the activity; return the days rows left or joined."""
    index = read_index(data_dir)
    if index.is_empty() or not api_dates:
        return []
    api = pl.DataFrame({"activity_id": list(api_dates), "_api_date": list(api_dates.values())},
                       schema={"activity_id": pl.Int64, "_api_date": pl.Date})
    joined = index.join(api, on="activity_id", how="left")
    moved = joined.filter(pl.col("_api_date").is_not_null() & (pl.col("_api_date") != pl.col("activity_date")))
    if moved.is_empty():
        return []
    days = sorted({*moved.get_column("activity_date").to_list(), *moved.get_column("_api_date").to_list()})
    redated = joined.with_columns(
        pl.coalesce("_api_date", "activity_date").alias("activity_date"),
        pl.when(pl.col("_api_date").is_not_null()).then(pl.lit("api")).otherwise(pl.col("local_date_rule"))
        .alias("local_date_rule"),
    ).drop("_api_date").sort("activity_date", "activity_id")
    write_atomic(ExportPaths(data_dir).index, lambda tmp: redated.write_parquet(tmp))
    return days


def read_samples(data_dir: Path, file_sha256: str, file_path: str) -> pl.DataFrame:
    """One original file's completed samples: from the landing cache, else decoded again from its blob."""
    paths = ExportPaths(data_dir)
    cached = paths.samples(file_sha256)
    if cached.is_file():
        return pl.read_parquet(cached)
    recording = decode_recording(paths.blobs.read(file_sha256), file_path)
    return complete_streams(recording.samples)


def stage_archive(
    path: Path,
    data_dir: Path,
    *,
    timezone: str = "UTC",
    api_dates: Mapping[int, date] | None = None,
    now: datetime | None = None,
) -> StagedArchive:
    """Copy an archive into the raw layer and update the archive index; return what changed.

    ``api_dates``: local dates of activities the API has listed (``activities_raw``), which win.
    """
    api_dates = api_dates or {}
    now = now or datetime.now(UTC)
    paths = ExportPaths(data_dir)
    path = Path(path).expanduser()
    if path.is_file():
        # A zip already imported is a no-op without copying a byte (its hash names its manifest).
        archive_sha = _sha256_of_file(path)
        if paths.manifest(archive_sha).is_file() and paths.index.is_file():
            return StagedArchive(path, archive_sha, already_imported=True)
    with open_archive(path) as archive:
        stored, refused = _copy_members(archive, paths.blobs)
    if not path.is_file():
        archive_sha = hashlib.sha256(json.dumps(sorted((n, m["sha256"]) for n, m in stored.items())).encode()
                                     ).hexdigest()
    staged = StagedArchive(path, archive_sha, paths.manifest(archive_sha).is_file(), refused=refused)
    csv_entry = stored.get(ACTIVITIES_CSV)
    if csv_entry is None:
        raise FileNotFoundError(f"{path}: no {ACTIVITIES_CSV} at the archive root (is this a Strava export?)")
    parsed = parse_activities_csv(paths.blobs.read(csv_entry["sha256"]), f"{path.name}:{ACTIVITIES_CSV}")

    jobs: dict[int, tuple[str, str, str]] = {}
    for row in parsed.rows:
        activity = row.activity
        if activity is None or not activity.filename:
            continue
        entry = stored.get(activity.filename)
        if entry is not None:
            jobs[activity.activity_id] = (str(paths.blobs.path(entry["sha256"])), activity.filename,
                                          str(paths.samples(entry["sha256"])))
    # One process: decoding holds the GIL (threads measured no faster), and a process pool would have to fork
    # a caller that has threads (Dagster's, a server's) or re-run its __main__ (spawn): neither is safe here.
    decoded = {a: _decode_one(*job) for a, job in jobs.items()}

    rows: list[dict[str, Any]] = []
    for row in parsed.rows:
        activity_id = _activity_id_of(row)
        if activity_id is None:
            staged.refused.append((f"{ACTIVITIES_CSV} line {row.line}", row.error or "no activity id"))
            continue
        record = _index_row(row, activity_id, archive_sha, parsed.columns, stored, refused, decoded.get(activity_id),
                            api_dates.get(activity_id), timezone, now)
        if record["summary"] is None and record["status"] != "failed":
            record["status"], record["error"] = "failed", row.error
        rows.append(record)
        staged.samples += record["samples"] or 0
    staged.activities = len(rows)
    for record in rows:
        staged.statuses[record["status"]] = staged.statuses.get(record["status"], 0) + 1
    for result in decoded.values():
        if result.get("decoder"):
            staged.decoders[result["decoder"]] = staged.decoders.get(result["decoder"], 0) + 1
    staged.days = _merge_index(paths, pl.DataFrame(rows, schema=EXPORT_ACTIVITY_RAW_SCHEMA))
    _write_athlete(paths, stored, now)
    write_atomic(paths.manifest(archive_sha), json.dumps({
        "archive": path.name, "sha256": archive_sha, "imported_at": now.isoformat(), "members": stored,
        "refused": refused, "layout": parsed.layout,
    }, ensure_ascii=False, indent=1))
    return staged


def _index_row(
    row: CsvRow,
    activity_id: int,
    archive_sha: str,
    columns: Iterable[tuple[str, int]],
    stored: Mapping[str, Mapping[str, Any]],
    refused: list[tuple[str, str]],
    decoded: Mapping[str, Any] | None,
    api_date: date | None,
    timezone: str,
    now: datetime,
) -> dict[str, Any]:
    activity = row.activity
    record: dict[str, Any] = {
        "activity_id": activity_id, "archive_sha256": archive_sha, "csv_line": row.line,
        "row": _raw_row(columns, row.values), "summary": None, "file_path": None, "file_sha256": None,
        "file_format": None, "file_size": None, "samples": None, "status": "failed", "error": row.error,
        "local_date_rule": "configured_timezone", "imported_at": now, "activity_date": api_date,
    }
    if activity is None:
        record["activity_date"] = api_date or now.date()
        return record
    if activity.filename:
        record["file_path"] = activity.filename
        record["file_format"] = _file_format(activity.filename)
        entry = stored.get(activity.filename)
        why_refused = next((why for name, why in refused if name.endswith(activity.filename)), None)
        if entry is not None:
            record.update(file_sha256=entry["sha256"], file_size=entry["size"])
        if decoded is not None and decoded["status"] == "ok":
            record.update(status="ok", error=None, samples=decoded["samples"])
        elif decoded is not None:
            record.update(status="failed", error=decoded["error"])
        elif why_refused:
            record.update(status="failed", error=f"{activity.filename}: refused ({why_refused})")
        else:
            record.update(status="missing_file", error=f"{activity.filename} is listed but not in the archive")
    else:
        record.update(status="no_file", error=None)
    local = _local(row, decoded if record["status"] == "ok" else None, timezone)
    ok = record["status"] == "ok" and decoded is not None
    summary = export_summary(
        activity, local,
        start_latlng=decoded.get("first_position") if ok else None,
        end_latlng=decoded.get("last_position") if ok else None,
        has_heartrate=decoded.get("has_heartrate") if ok else None,
    )
    record["summary"] = json.dumps(summary, ensure_ascii=False, default=str)
    record["activity_date"] = api_date or local.date
    record["local_date_rule"] = "api" if api_date else local.rule
    return record


#: What makes an index row different for the typed layer (``imported_at`` and the archive hash do not).
_COMPARED = ("activity_date", "row", "summary", "file_sha256", "status", "error")


def _merge_index(paths: ExportPaths, new: pl.DataFrame) -> list[date]:
    """Replace the index rows of the activities ``new`` holds; return the days that changed."""
    old = read_index(paths.data_dir)
    changed: set[date] = set()
    if old.height:
        before = {r["activity_id"]: r for r in old.select("activity_id", *_COMPARED).iter_rows(named=True)}
        for r in new.select("activity_id", *_COMPARED).iter_rows(named=True):
            previous = before.get(r["activity_id"])
            if previous is None or any(previous[c] != r[c] for c in _COMPARED):
                changed.add(r["activity_date"])
                if previous is not None:
                    changed.add(previous["activity_date"])
        if not changed:
            return []
        keep = old.filter(~pl.col("activity_id").is_in(new["activity_id"].implode()))
        merged = pl.concat([keep, new], how="vertical")
    else:
        changed = set(new.get_column("activity_date").to_list())
        merged = new
    write_atomic(paths.index, lambda tmp: merged.sort("activity_date", "activity_id").write_parquet(tmp))
    return sorted(changed)
