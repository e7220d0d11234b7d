"""The archive reader never leaves the archive, and every activity gets the local date its rules give."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from strava_pipeline.export.archive import ArchiveError, member_name_problem, open_archive
from strava_pipeline.export.local_time import local_start
from strava_pipeline.storage.blobs import BlobStore


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.fit", "activities/../../etc/passwd", "/etc/passwd", "C:/x.fit",
                                  "activities\\..\\..\\x", "a\x00b"])
def test_unsafe_member_names_are_refused_and_never_opened(tmp_path: Path, name: str) -> None:
    assert member_name_problem(name) is not None
    path = _zip(tmp_path / "export_1.zip", {"activities.csv": b"x", name.replace("\x00", "") or "x": b"y"})
    if "\x00" in name:
        return  # zipfile itself drops the NUL; the name check above is what matters
    with open_archive(path) as archive:
        refused = [m for m in archive.members if m.refused]
        assert [m.name for m in refused] == [name]
        with pytest.raises(ArchiveError, match="refused"), archive.open(refused[0]):
            pass
    assert not (tmp_path.parent / "evil.fit").exists()


def test_a_wrapping_folder_and_an_unpacked_folder_read_the_same(tmp_path: Path) -> None:
    wrapped = _zip(tmp_path / "w.zip", {"export_9/activities.csv": b"csv", "export_9/activities/1.gpx": b"<gpx/>"})
    folder = tmp_path / "unpacked"
    (folder / "activities").mkdir(parents=True)
    (folder / "activities.csv").write_bytes(b"csv")
    (folder / "activities" / "1.gpx").write_bytes(b"<gpx/>")
    os.symlink("/etc/passwd", folder / "activities" / "2.gpx")
    for path in (wrapped, folder):
        with open_archive(path) as archive:
            member = archive.find("activities/1.gpx")
            assert member is not None
            with archive.open(member) as handle:
                assert handle.read() == b"<gpx/>"
            assert archive.find("activities/2.gpx") is None  # a link out of the folder is refused


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "export.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match=r"export.zip: not a zip archive"):
        open_archive(bogus)
    with pytest.raises(ArchiveError, match="no such file"):
        open_archive(tmp_path / "missing.zip")


def test_blobs_are_content_addressed_private_and_stored_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    first = store.put(io.BytesIO(b"same bytes"))
    second = store.put(io.BytesIO(b"same bytes"))
    assert first == second and first[1] == 10
    assert store.read(first[0]) == b"same bytes"
    assert oct(store.path(first[0]).stat().st_mode & 0o777) == "0o600"
    assert len(list((tmp_path / "blobs").rglob("*"))) == 2  # one folder, one blob, no temporary left


START = datetime(2024, 3, 9, 23, 30, tzinfo=UTC)


def test_fit_local_timestamp_gives_the_offset() -> None:
    # The FIT activity message says 01:30 local at 23:30 UTC: UTC+2, so the next calendar day.
    found = local_start(START, fit_local_timestamp=datetime(2024, 3, 10, 1, 30),
                        fit_timestamp_utc=START, first_position=(40.7, -74.0))
    assert (found.date, found.rule, found.utc_offset_s) == (date(2024, 3, 10), "fit_local_timestamp", 7200)


def test_the_first_gps_point_gives_the_zone_without_a_fit_clock() -> None:
    found = local_start(START, first_position=(40.7128, -74.0060))  # New York: 18:30 the same day
    assert (found.date, found.rule, found.timezone) == (date(2024, 3, 9), "gps_timezone", "America/New_York")
    tokyo = local_start(START, first_position=(35.68, 139.69))
    assert (tokyo.date, tokyo.timezone) == (date(2024, 3, 10), "Asia/Tokyo")


def test_the_configured_zone_is_the_last_resort() -> None:
    found = local_start(START, configured_timezone="Pacific/Auckland")
    assert (found.date, found.rule) == (date(2024, 3, 10), "configured_timezone")
    with pytest.raises(ValueError, match="STRAVA_PIPELINE_TIMEZONE='Nowhere/City'"):
        local_start(START, configured_timezone="Nowhere/City")


def test_an_impossible_device_offset_falls_through_to_gps() -> None:
    found = local_start(START, fit_local_timestamp=datetime(2031, 1, 1), fit_timestamp_utc=START,
                        first_position=(51.5, -0.12))
    assert found.rule == "gps_timezone" and found.timezone == "Europe/London"


def test_the_apis_date_wins_at_staging_and_later(tmp_path: Path) -> None:
    """Rule 1: an activity the API lists is filed under the API's local date, whenever the API learns of it."""
    from strava_pipeline.ingest.export_import import read_index, redate_to_api, stage_archive
    from strava_pipeline.simulator import SimulatorConfig, StravaSimulator

    sim = StravaSimulator(SimulatorConfig(seed=2, start_date=date(2024, 6, 1), end_date=date(2024, 6, 20),
                                          activities=6))
    manifest = sim.write_export(tmp_path / "downloads")
    first, second = (a.activity_id for a in manifest.activities[:2])
    staged = stage_archive(manifest.path, tmp_path / "data", api_dates={first: date(2030, 1, 1)})
    index = {r["activity_id"]: r for r in read_index(tmp_path / "data").iter_rows(named=True)}
    assert (index[first]["activity_date"], index[first]["local_date_rule"]) == (date(2030, 1, 1), "api")
    assert index[second]["local_date_rule"] != "api"
    assert date(2030, 1, 1) in staged.days

    moved = redate_to_api(tmp_path / "data", {second: date(2031, 1, 1)})
    assert date(2031, 1, 1) in moved and index[second]["activity_date"] in moved
    again = {r["activity_id"]: r for r in read_index(tmp_path / "data").iter_rows(named=True)}
    assert (again[second]["activity_date"], again[second]["local_date_rule"]) == (date(2031, 1, 1), "api")
    assert redate_to_api(tmp_path / "data", {second: date(2031, 1, 1)}) == []
