"""The ``activity_files`` asset end to end: a backfilled mirror and an imported archive on disk as GPX/TCX files.

Every file is validated against its published schema and read back (gpxpy for GPX) to the samples of
``activity_streams``; re-materialising a day replaces exactly that day's files.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from datetime import date
from pathlib import Path

import polars as pl

from strava_pipeline.cli.backfill import run_backfill
from strava_pipeline.cli.importing import run_import
from strava_pipeline.simulator import SimulatorConfig
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.transforms.activity_files import day_prefix, relative_path
from strava_pipeline_tests.transforms.activity_file_checks import assert_gpx_round_trip, assert_tcx_round_trip

NO_CREDENTIALS = {"STRAVA_CLIENT_ID": "", "STRAVA_CLIENT_SECRET": "", "STRAVA_REFRESH_TOKEN": ""}


def _root(p) -> Path:
    return p.settings.data_dir / "files"


def _on_disk(p) -> dict[str, Path]:
    """Every file under the files root by its path relative to it (temporary files would show here too)."""
    root = _root(p)
    return {f.relative_to(root).as_posix(): f for f in root.rglob("*") if f.is_file()} if root.is_dir() else {}


def _snapshot(files: dict[str, Path]) -> dict[str, tuple[int, int, str]]:
    return {name: (f.stat().st_ino, f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
            for name, f in files.items()}


def _path(row: dict, suffix: str) -> str:
    return relative_path(row["activity_id"], row["activity_date"], row["name"], row["sport_type"], suffix).as_posix()


def _assert_files_match_the_tables(p) -> tuple[pl.DataFrame, dict[int, pl.DataFrame]]:
    """Each activity with samples has its GPX (when positioned) and TCX, valid and equal to its samples;
    nothing else is there but originals; every file 0600, every folder 0700."""
    store = ParquetStore(p.settings.parquet_dir)
    activities = store.read("activities")
    samples = {k[0]: f for k, f in store.read("activity_streams").partition_by("activity_id", as_dict=True).items()}
    on_disk = _on_disk(p)
    expected: set[str] = set()
    for row in activities.iter_rows(named=True):
        frame = samples.get(row["activity_id"])
        if frame is None:
            continue
        if frame.filter(pl.col("lat").is_not_null()).height:
            expected.add(_path(row, ".gpx"))
            assert assert_gpx_round_trip(on_disk[_path(row, ".gpx")].read_bytes(), row, frame) > 0
        expected.add(_path(row, ".tcx"))
        assert assert_tcx_round_trip(on_disk[_path(row, ".tcx")].read_bytes(), row, frame) == frame.height
    assert {n for n in on_disk if ".original." not in n} == expected
    for f in on_disk.values():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for folder in (_root(p), *{f.parent for f in on_disk.values()}):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    return activities, samples


def test_a_backfill_writes_valid_gpx_and_tcx_for_every_activity_with_samples(backfilled) -> None:
    p, _ = backfilled()
    activities, samples = _assert_files_match_the_tables(p)
    with_gps = [a for a, f in samples.items() if f.filter(pl.col("lat").is_not_null()).height]
    indoor = [a for a, f in samples.items() if not f.filter(pl.col("lat").is_not_null()).height]
    assert with_gps and indoor, "the month has outdoor and indoor activities"
    manual = activities.filter(pl.col("manual")).get_column("activity_id").to_list()
    assert manual and not [n for n in _on_disk(p) if any(f"_{a}_" in n for a in manual)]
    # Names in any script reach the file names (the simulator's athlete names runs in Japanese, Russian, ...).
    assert any(not n.isascii() for n in _on_disk(p))


def test_an_imported_archive_writes_files_and_keeps_each_original_byte_for_byte(make_pipeline, tmp_path) -> None:
    config = SimulatorConfig(seed=23, start_date=date(2024, 1, 1), end_date=date(2024, 1, 31), activities=14)
    p = make_pipeline(config, **NO_CREDENTIALS)
    manifest = p.sim.write_export(tmp_path / "downloads", formats={"fit": 0.5, "gpx": 0.25, "tcx": 0.25})

    run_import(p.settings, manifest.path, progress=lambda _: None)

    activities, samples = _assert_files_match_the_tables(p)
    originals = {n: f for n, f in _on_disk(p).items() if ".original." in n}
    by_id = {row["activity_id"]: row for row in activities.iter_rows(named=True)}
    with zipfile.ZipFile(manifest.path) as archive:
        for activity_id in manifest.ids_with_files:
            exported = manifest.activity(activity_id)
            suffix = ".original" + "".join(Path(exported.filename).suffixes).lower()
            name = _path(by_id[activity_id], suffix)
            assert originals.pop(name).read_bytes() == archive.read(exported.filename), name
    assert originals == {}
    kinds = {Path(n).suffixes[-2] if n.endswith(".gz") else Path(n).suffix for n in _on_disk(p) if ".original." in n}
    assert {".fit", ".gpx", ".tcx"} <= kinds
    assert set(samples) == set(manifest.ids_with_files)


def test_rematerialising_a_day_replaces_exactly_that_days_files(backfilled) -> None:
    p, _ = backfilled()
    store = ParquetStore(p.settings.parquet_dir)
    activities = store.read("activities")
    runs = activities.filter(pl.col("sport_type").is_in(["Run", "TrailRun"]) & ~pl.col("manual"))
    day = runs.get_column("activity_date")[0]
    renamed = runs.filter(pl.col("activity_date") == day).row(0, named=True)
    old_names = [n for n in _on_disk(p) if f"_{renamed['activity_id']}_" in n]
    assert old_names
    others = {n: f for n, f in _on_disk(p).items() if not Path(n).name.startswith(day_prefix(day))}
    before_others = _snapshot(others)

    added = p.sim.add_activity(start_date_local=f"{day.isoformat()}T18:30:00", sport_type="Run",
                               zone="Europe/Paris", name="Abendlauf 🌙 mit Zoë")
    p.sim.update_activity(renamed["activity_id"], name="Ραντεβού στο πάρκο 🏁")
    run_backfill(p.settings, day, day, progress=lambda _: None)

    _assert_files_match_the_tables(p)
    day_files = {n for n in _on_disk(p) if Path(n).name.startswith(day_prefix(day))}
    assert not set(old_names) & day_files, "the old name's files are gone"
    assert {n for n in day_files if f"_{renamed['activity_id']}_" in n} == {
        n.replace(n.split("_", 2)[2].split(".")[0], "ραντεβού-στο-πάρκο") for n in old_names}
    assert {n for n in day_files if f"_{added}_" in n} == {
        f"{day.year}/{day_prefix(day)}{added}_abendlauf-mit-zoë{s}" for s in (".gpx", ".tcx")}
    assert _snapshot(others) == before_others, "no file of another day was touched"

    # Unchanged: nothing is rewritten. Deleted: its files go, the rest of the day stays as it was.
    kept = _snapshot({n: f for n, f in _on_disk(p).items() if n in day_files})
    run_backfill(p.settings, day, day, progress=lambda _: None)
    assert _snapshot({n: f for n, f in _on_disk(p).items() if n in day_files}) == kept
    p.sim.delete_activity(added)
    run_backfill(p.settings, day, day, progress=lambda _: None)
    after = {n for n in _on_disk(p) if Path(n).name.startswith(day_prefix(day))}
    assert after == {n for n in day_files if f"_{added}_" not in n}
    assert _snapshot({n: f for n, f in _on_disk(p).items() if n in after}) == {n: kept[n] for n in after}
    assert _snapshot(others) == before_others
    assert not [f for f in _root(p).rglob(".*")], "no temporary file is left behind"
