"""``activity_files``: every activity's samples as GPX and TCX files, and the archive's original uploads, on disk.

The layout and the documents are those of ``transforms.activity_files`` (read its module docstring):
``<data dir>/files/YYYY/<local date>_<activity id>_<slug>.{gpx,tcx,original.<ext>}``. The asset is
partitioned by local day like the tables it reads; re-materialising a day replaces exactly that day's files:
each file through ``storage.files.write_atomic`` (a private temporary file, fsync, rename, fsync of the
folder), an unchanged file is left as it is (same bytes: no write, its time kept), and the day's files that
are no longer produced (a deleted or renamed activity, one moved to another day, or of a sport
``STRAVA_SPORT_TYPES`` leaves out) are removed, then the folder is fsynced.

It returns a ``MaterializeResult`` with counts rather than a table: the files are the product, their
folder is their index (a day's files are the names starting with its date), and a table would only repeat
it in a second place that can disagree with the disk (and need a PostgreSQL migration). A sink that
uploads the files depends on this asset (``deps``) and reads the folder.
"""

import contextlib
import itertools
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from strava_pipeline.defs.partitions import STREAMS_BACKFILL_POLICY, partition_days
from strava_pipeline.defs.resources import LandedDataResource, SportFilterResource
from strava_pipeline.ingest.export_import import ExportPaths
from strava_pipeline.storage.files import TMP_SUFFIX, fsync_dir, write_atomic
from strava_pipeline.transforms.activities import ACTIVITY_SCHEMA
from strava_pipeline.transforms.activity_files import (
    FILES_DIR,
    day_prefix,
    iter_documents,
    original_suffix,
    relative_path,
)
from strava_pipeline.transforms.streams import STREAM_SCHEMA

__all__ = ["DayFiles", "FilesOutcome", "build_activity_file_assets", "day_files", "files_root", "replace_day_files"]

GROUP = "files"
PRIVATE_DIR_MODE = 0o700
#: Chunks written at once: two overlap one chunk's document building with another's disk writes.
WORKERS = 2
#: Samples whose documents are built together (``iter_documents``), about three one-hour activities at 1 Hz:
#: enough to spread polars' per-call cost, few enough that a chunk's XML (about 560 bytes per sample, held
#: about three times over while it is put together) stays small beside a batch's frames.
CHUNK_SAMPLES = 12_000
#: A temporary file of a day this old is a killed run's leftover, never one being written.
ABANDONED_AFTER_S = 3600


def files_root(data_dir: str | Path) -> Path:
    """Where the activity files of a data dir live."""
    return Path(data_dir) / FILES_DIR


@dataclass
class FilesOutcome:
    """What writing some days' files did."""

    activities: int = 0
    written: dict[str, int] = field(default_factory=dict)  # by format: gpx, tcx, original
    unchanged: int = 0
    removed: int = 0
    bytes_written: int = 0
    without_samples: int = 0

    def add(self, other: "FilesOutcome") -> None:
        self.activities += other.activities
        for kind, count in other.written.items():
            self.written[kind] = self.written.get(kind, 0) + count
        self.unchanged += other.unchanged
        self.removed += other.removed
        self.bytes_written += other.bytes_written
        self.without_samples += other.without_samples


#: One day's files: name in its year's folder -> (format, content: bytes, or a file to copy byte for byte).
DayFiles = dict[str, tuple[str, bytes | Path]]


def _private_dirs(path: Path, root: Path) -> None:
    """Create ``path`` (under ``root``) and its missing parents as 0700 folders, whatever the umask."""
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current == root or current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        os.chmod(folder, PRIVATE_DIR_MODE)


def _same_content(path: Path, content: bytes | Path) -> bool:
    """Whether ``path`` already holds exactly ``content`` (compared without reading a file of another size)."""
    try:
        size = path.stat().st_size
        if isinstance(content, Path):
            return size == content.stat().st_size and path.read_bytes() == content.read_bytes()
        return size == len(content) and path.read_bytes() == content
    except FileNotFoundError:
        return False


def day_files(root: Path, day: date) -> list[Path]:
    """The files of one day under the files root (temporary files, which start with ``.``, excluded)."""
    folder = root / f"{day.year:04d}"
    if not folder.is_dir():
        return []
    prefix = day_prefix(day)
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.is_file())


def replace_day_files(root: Path, day: date, wanted: DayFiles) -> FilesOutcome:
    """Make the day's files exactly ``wanted``: write new and changed ones atomically, keep identical ones,
    remove the others of that day, fsync the folder. Other days' files are never touched."""
    outcome = FilesOutcome()
    folder = root / f"{day.year:04d}"
    existing = {p.name for p in day_files(root, day)}
    if wanted:
        _private_dirs(folder, root.parent)
    for name, (kind, content) in sorted(wanted.items()):
        path = folder / name
        if name in existing and _same_content(path, content):
            outcome.unchanged += 1
            continue
        data = content.read_bytes() if isinstance(content, Path) else content
        write_atomic(path, data)
        outcome.written[kind] = outcome.written.get(kind, 0) + 1
        outcome.bytes_written += len(data)
    stale = sorted(existing - set(wanted))
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    outcome.removed = len(stale)
    if stale:
        fsync_dir(folder)
    _remove_abandoned_temporaries(folder, day)
    return outcome


def _remove_abandoned_temporaries(folder: Path, day: date) -> None:
    """Temporary files of the day that a killed run left (``write_atomic`` names them ``.<name>.<pid>.<hex>.tmp``);
    only old ones, so a run writing the same day right now keeps its own."""
    if not folder.is_dir():
        return
    cutoff = time.time() - ABANDONED_AFTER_S
    for leftover in folder.glob(f".{day_prefix(day)}*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _originals(export_raw: pl.DataFrame, data_dir: Path) -> dict[int, tuple[Path, str]]:
    """activity id -> (blob, archive path) of every original upload the raw layer holds."""
    if export_raw.width == 0 or export_raw.is_empty():
        return {}
    blobs = ExportPaths(data_dir).blobs
    found = {}
    rows = export_raw.filter(pl.col("file_sha256").is_not_null() & pl.col("file_path").is_not_null())
    for activity_id, sha, path in rows.select("activity_id", "file_sha256", "file_path").iter_rows():
        blob = blobs.path(sha)
        if blob.is_file():
            found[activity_id] = (blob, path)
    return found


def plan_day(activities: Iterable[Mapping[str, Any]], built: Mapping[int, dict[str, bytes]],
             originals: Mapping[int, tuple[Path, str]]) -> tuple[DayFiles, int, int]:
    """The files of one day's activities, from their documents (``iter_documents``; an activity without samples
    is absent) and originals, how many activities have any, and how many have no samples."""
    wanted: DayFiles = {}
    with_files = without_samples = 0
    for activity in activities:
        activity_id = activity["activity_id"]
        naming = (activity_id, activity["activity_date"], activity.get("name"), activity.get("sport_type"))
        produced = built.get(activity_id, {})
        without_samples += activity_id not in built
        for suffix, content in produced.items():
            wanted[relative_path(*naming, suffix).name] = (suffix.lstrip("."), content)
        if activity_id in originals:
            blob, archive_path = originals[activity_id]
            wanted[relative_path(*naming, original_suffix(archive_path)).name] = ("original", blob)
        with_files += bool(produced) or activity_id in originals
    return wanted, with_files, without_samples


def _chunks(days: list[date], samples: Mapping[date, int]) -> list[list[date]]:
    """Consecutive days in groups of about ``CHUNK_SAMPLES`` samples (a day is never split)."""
    chunks: list[list[date]] = []
    size = CHUNK_SAMPLES
    for day in days:
        if size >= CHUNK_SAMPLES:
            chunks.append([])
            size = 0
        chunks[-1].append(day)
        size += samples.get(day, 0)
    return chunks


def write_activity_files(data_dir: Path, days: list[date], activities: pl.DataFrame, streams: pl.DataFrame,
                         export_raw: pl.DataFrame) -> FilesOutcome:
    """Replace the files of ``days`` with those of ``activities`` (already filtered by sport), their
    ``streams`` samples and the originals ``export_raw`` names."""
    root = files_root(data_dir)
    summaries = pl.DataFrame(schema=ACTIVITY_SCHEMA) if activities.width == 0 else activities
    samples = streams.select(c for c in STREAM_SCHEMA if c in streams.columns) if streams.width else streams
    lengths = dict(samples.group_by("activity_id").len().iter_rows()) if samples.height else {}
    originals = _originals(export_raw, data_dir)
    by_day: dict[date, list[dict[str, Any]]] = {}
    if summaries.height:
        for key, frame in summaries.partition_by("activity_date", as_dict=True).items():
            by_day[key[0]] = list(frame.sort("start_date", "activity_id").iter_rows(named=True))  # type: ignore[index]

    def one_chunk(chunk: list[date]) -> FilesOutcome:
        # Day by day as the documents come: a written day's documents are dropped before the next day's are made.
        made = iter_documents([row for day in chunk for row in by_day.get(day, [])], samples)
        total = FilesOutcome()
        for day in chunk:
            rows = by_day.get(day, [])
            built = {i: docs for i, docs in itertools.islice(made, len(rows)) if docs is not None}
            wanted, with_files, without_samples = plan_day(rows, built, originals)
            outcome = replace_day_files(root, day, wanted)
            outcome.activities, outcome.without_samples = with_files, without_samples
            total.add(outcome)
        return total

    sizes = {day: sum(lengths.get(row["activity_id"], 0) for row in rows) for day, rows in by_day.items()}
    total = FilesOutcome()
    # Chunks are independent (each day owns the names with its date): one builds its documents (polars,
    # without the GIL) while another waits for its fsyncs.
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for outcome in pool.map(one_chunk, _chunks(days, sizes)):
            total.add(outcome)
    return total


def build_activity_file_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The ``activity_files`` asset for a given partitioning."""

    @dg.asset(
        name="activity_files",
        group_name=GROUP,
        kinds={"python", "gpx", "tcx"},
        partitions_def=partitions_def,
        backfill_policy=STREAMS_BACKFILL_POLICY,
        ins={"activities": dg.AssetIn(), "activity_streams": dg.AssetIn(), "export_activities_raw": dg.AssetIn()},
    )
    def activity_files(
        context: dg.AssetExecutionContext,
        activities: pl.DataFrame,
        activity_streams: pl.DataFrame,
        export_activities_raw: pl.DataFrame,
        landed: LandedDataResource,
        sport_filter: SportFilterResource,
    ) -> dg.MaterializeResult:
        """Each activity with samples as a GPX 1.1 track (positions, time, elevation; heart rate, cadence and
        temperature in Garmin's TrackPointExtension, power) and a TCX v2 activity (one lap, heart rate,
        cadence, speed and watts), and the export archive's original upload byte for byte, under
        `<data dir>/files/YYYY/<local date>_<activity id>_<slug>.{gpx,tcx,original.<ext>}` (0600 files, 0700
        folders). Re-materialising a day rewrites exactly that day's files (atomically, each) and removes
        those no longer produced. Only the sports of STRAVA_SPORT_TYPES, when set.
        """
        days = partition_days(context)
        data_dir = Path(landed.data_dir)
        outcome = write_activity_files(data_dir, days, sport_filter.apply(activities), activity_streams,
                                       export_activities_raw)
        root = files_root(data_dir).resolve()
        written = sum(outcome.written.values())
        context.log.info(
            f"activity files of {len(days)} days: {outcome.activities} activities, {written} files written "
            f"({', '.join(f'{n} {k}' for k, n in sorted(outcome.written.items())) or 'none'}), "
            f"{outcome.unchanged} unchanged, {outcome.removed} removed, under {root}"
        )
        return dg.MaterializeResult(metadata={
            "activities_with_files": outcome.activities,
            "files_written": written,
            "gpx_written": outcome.written.get("gpx", 0),
            "tcx_written": outcome.written.get("tcx", 0),
            "originals_written": outcome.written.get("original", 0),
            "files_unchanged": outcome.unchanged,
            "files_removed": outcome.removed,
            "bytes_written": outcome.bytes_written,
            "activities_without_samples": outcome.without_samples,
            "path": dg.MetadataValue.path(str(root)),
        })

    return [activity_files]
