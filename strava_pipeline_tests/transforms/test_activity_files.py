"""GPX/TCX documents and file names of activities: schema-valid, read back to the same samples, safe names.

The real-device files in ``../shared/strava/files`` are decoded with the export readers (as an imported
archive is), written as GPX and TCX, validated against the published schemas and read back.
"""

from __future__ import annotations

import gzip
import unicodedata
from datetime import UTC, date, datetime
from pathlib import Path

import gpxpy
import polars as pl
import pytest
from lxml import etree

from strava_pipeline.export.recordings import decode_recording
from strava_pipeline.transforms.activity_files import (
    MAX_SLUG_BYTES,
    documents,
    documents_by_activity,
    file_stem,
    gpx_document,
    original_suffix,
    relative_path,
    slugify,
    tcx_document,
)
from strava_pipeline.transforms.recorded_streams import complete_streams
from strava_pipeline.transforms.streams import STREAM_SCHEMA
from strava_pipeline_tests.recordings import SHARED_STRAVA
from strava_pipeline_tests.transforms.activity_file_checks import (
    assert_gpx_round_trip,
    assert_tcx_round_trip,
    assert_valid,
    gpx_schema,
    tcx_schema,
)

START = datetime(2024, 5, 4, 7, 30, tzinfo=UTC)
REAL_FILES = SHARED_STRAVA / "files"
#: Files the export readers refuse (an import records them as failed: no samples, so no GPX/TCX).
UNREADABLE = {"strava-android-app-201.10-b1218918.fit"}  # Strava's app crashed mid-file (test_recordings.py)


def _activity(name: str | None = "Morning Run", sport_type: str = "Run", **extra: object) -> dict[str, object]:
    return {"activity_id": 11223344556, "activity_date": START.date(), "name": name, "sport_type": sport_type,
            "start_date": START, "elapsed_time_s": None, "distance_m": None, "calories_kcal": None, **extra}


def _samples(**columns: list[object]) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, list[object]] = {"activity_id": [11223344556] * n, "activity_date": [START.date()] * n,
                                     "sample_index": list(range(n)), "source": ["api"] * n}
    return pl.DataFrame({**base, **columns}, schema={c: t for c, t in STREAM_SCHEMA.items()
                                                     if c in base or c in columns})


def test_every_sample_field_is_written_valid_and_read_back() -> None:
    """Edge values: missing fields, out-of-range sensors (dropped, not invalid), 180° E, a tiny latitude."""
    samples = _samples(
        time_s=[0, 1, 2, 3, None, 5],
        lat=[46.0569465, 1e-7, None, -33.8688197, 46.5, 89.9999999],
        lng=[14.5057515, 180.0, 14.6, 151.2092955, None, -179.9999999],
        altitude_m=[295.4, 296.0, None, -12.25, 300.0, 4000.0],
        distance_m=[0.0, 2.5, 5.0, 7.5, 10.0, 12.5],
        velocity_mps=[0.0, 2.5, 2.5, float("nan"), 2.5, 2.5],
        heartrate_bpm=[0, 121, 300, 140, 150, 255],
        cadence_rpm=[80.4, 255.0, 81.6, None, 82.0, 0.0],
        watts=[210, -5, None, 32767, 0, 250],
        temp_c=[21, None, -4, 20, 20, 19],
    )
    gpx, tcx = gpx_document(_activity(), samples), tcx_document(_activity(), samples)
    assert gpx is not None and tcx is not None
    assert assert_gpx_round_trip(gpx, _activity(), samples) == 4  # the samples with a position
    assert assert_tcx_round_trip(tcx, _activity(), samples) == 5  # the samples with a time
    point = gpxpy.parse(gpx.decode()).tracks[0].segments[0].points[1]
    assert (point.latitude, point.longitude) == (1e-7, -180.0)


def test_power_cadence_and_temperature_land_where_readers_look() -> None:
    samples = _samples(time_s=[0, 1], lat=[46.0, 46.1], lng=[14.0, 14.1], heartrate_bpm=[150, 151],
                       cadence_rpm=[90.0, 91.0], watts=[250, 260], temp_c=[18, 19])
    ride = _activity("Morning Ride", "Ride")
    gpx = etree.fromstring(gpx_document(ride, samples))
    extensions = gpx.find(".//{*}trkpt/{*}extensions")
    tags = [etree.QName(e).localname for e in extensions.iter()]
    assert {"power", "TrackPointExtension", "hr", "cad", "atemp"} <= set(tags)
    tcx = etree.fromstring(tcx_document(ride, samples))
    point = tcx.find(".//{*}Trackpoint")
    assert point.findtext("{*}Cadence") == "90"  # bike cadence is TCX's own element
    assert point.findtext(".//{*}TPX/{*}Watts") == "250"
    run = etree.fromstring(tcx_document(_activity(), samples))
    assert run.find(".//{*}Trackpoint/{*}Cadence") is None  # a run's cadence is the extension's RunCadence
    assert run.findtext(".//{*}Trackpoint//{*}RunCadence") == "90"
    assert run.find(".//{*}Activity").get("Sport") == "Running"


def test_one_lap_carries_the_summary_totals() -> None:
    samples = _samples(time_s=[0, 60, 120], heartrate_bpm=[120, 140, 160], watts=[100, 200, 300])
    activity = _activity("Zwift", "VirtualRide", elapsed_time_s=125, distance_m=1000.5, calories_kcal=88.6,
                         average_speed_mps=8.0)
    lap = assert_valid(tcx_document(activity, samples), tcx_schema()).find(".//{*}Lap")
    assert lap.get("StartTime") == "2024-05-04T07:30:00Z"
    assert lap.findtext("{*}TotalTimeSeconds") == "125"
    assert lap.findtext("{*}DistanceMeters") == "1000.5"
    assert lap.findtext("{*}Calories") == "89"
    assert lap.findtext("{*}AverageHeartRateBpm/{*}Value") == "140"
    assert lap.findtext("{*}MaximumHeartRateBpm/{*}Value") == "160"
    assert lap.findtext(".//{*}LX/{*}AvgWatts") == "200" and lap.findtext(".//{*}LX/{*}MaxWatts") == "300"


def test_a_format_that_holds_no_point_is_not_written() -> None:
    indoor = _samples(time_s=[0, 1, 2], heartrate_bpm=[100, 101, 102], watts=[150, 160, 170])
    assert gpx_document(_activity(sport_type="VirtualRide"), indoor) is None
    assert assert_tcx_round_trip(tcx_document(_activity(), indoor), _activity(), indoor) == 3
    untimed = _samples(lat=[46.0, 46.1], lng=[14.0, 14.1], altitude_m=[300.0, 301.0])
    assert tcx_document(_activity(), untimed) is None
    gpx = gpx_document(_activity(), untimed)
    assert assert_gpx_round_trip(gpx, _activity(), untimed) == 2
    assert all(p.time is None for p in gpxpy.parse(gpx.decode()).tracks[0].segments[0].points)
    assert set(documents(_activity(), indoor)) == {".tcx"}
    assert set(documents(_activity(), untimed)) == {".gpx"}



def test_many_activities_at_once_give_each_the_documents_it_has_alone() -> None:
    """The asset builds a chunk's documents together: what one activity holds (a start with microseconds, a
    value polars writes with an exponent, run cadence, no position, no time) must not leak into another."""
    def own(activity_id: int, **columns: list[object]) -> pl.DataFrame:
        return _samples(**columns).with_columns(activity_id=pl.lit(activity_id, dtype=pl.Int64))

    activities = [
        _activity(activity_id=1, start_date=START.replace(microsecond=250000)),
        _activity("Ride", "Ride", activity_id=2, distance_m=12.5),
        _activity("Trainer", "VirtualRide", activity_id=3),
        _activity("Untimed", activity_id=4),
        _activity("No samples", activity_id=5),
    ]
    frames = [
        own(1, time_s=[0, 1], lat=[46.0, 1e-7], lng=[180.0, 14.0], cadence_rpm=[88.0, 90.4], altitude_m=[3e-6, 1.0]),
        own(2, time_s=[0, 5, 10], lat=[46.0, 46.1, 46.2], lng=[14.0, 14.1, 14.2], cadence_rpm=[70.0, 71.0, 72.0],
            velocity_mps=[1.0, 2.5, 3.0], watts=[100, 250, 300]),
        own(3, time_s=[2, 3], heartrate_bpm=[120, 130], watts=[150, 160]),
        own(4, lat=[46.0, 46.1], lng=[14.0, 14.1]),
    ]
    mixed = pl.concat(frames, how="diagonal_relaxed").sample(fraction=1.0, shuffle=True, seed=3)
    together = documents_by_activity(activities, mixed)
    alone = {a["activity_id"]: documents(a, f) for a, f in zip(activities, frames, strict=False)}
    assert together == alone
    assert set(together) == {1, 2, 3, 4} and set(together[3]) == {".tcx"} and set(together[4]) == {".gpx"}
    first = etree.fromstring(together[1][".tcx"])
    assert first.findtext(".//{*}Trackpoint/{*}Time") == "2024-05-04T07:30:00.250000Z"
    assert b"e-0" not in together[1][".gpx"]
    assert etree.fromstring(together[2][".tcx"]).findtext(".//{*}Lap/{*}MaximumSpeed") == "3"


#: Names from the simulator's athlete and beyond: emoji (ZWJ sequences, skin tones, flags, keycaps), CJK,
#: Cyrillic, Greek, Arabic and Hebrew (right to left), Devanagari and Thai (combining marks), and markup.
NAMES = [
    "Evening Run 🌇", "朝ラン", "Вечерняя пробежка", "Αγώνας 10K", "جري الصباح", "ריצת בוקר", "नमस्ते दुनिया",
    "วิ่งตอนเช้า", "Parkrun 🏃‍♀️", "👍🏽🇫🇷 1️⃣", "Zwift - 東京ループ", "Easy run with Zoë", "<b>&amp; \"quotes\"</b>",
    "a/b\\c:d*e?f|g<h>i", "../../etc/passwd", ".hidden", "CON", "🔥🔥🔥", "   ", "", None, "x" * 300, "日本語" * 40,
    "e\u0301\u0301 combining",
]


@pytest.mark.parametrize("name", NAMES)
def test_any_name_is_a_safe_file_name_and_survives_in_the_xml(name: str | None, tmp_path: Path) -> None:
    stem = file_stem(1234, date(2024, 5, 4), name, "Run")
    slug = stem.removeprefix("2024-05-04_1234_")
    assert slug and len(slug.encode()) <= MAX_SLUG_BYTES
    assert not {"/", "\\", "\x00", ":", "*", "?", '"', "<", ">", "|", " "} & set(slug)
    assert not slug.startswith((".", "-")) and not slug.endswith("-") and "--" not in slug
    assert slug == unicodedata.normalize("NFC", slug)
    assert not any(unicodedata.category(c) in ("So", "Sk", "Cf", "Cc", "Co", "Cs") for c in slug)
    for suffix in (".gpx", ".tcx", ".original.fit.gz"):
        path = tmp_path / relative_path(1234, date(2024, 5, 4), name, "Run", suffix)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")  # the filesystem takes it
        assert path.parent == tmp_path / "2024" and len(path.name.encode()) < 255
    samples = _samples(time_s=[0, 1], lat=[35.68, 35.69], lng=[139.76, 139.77], heartrate_bpm=[130, 131])
    activity = _activity(name)
    gpx, tcx = gpx_document(activity, samples), tcx_document(activity, samples)
    assert_gpx_round_trip(gpx, activity, samples)
    assert_tcx_round_trip(tcx, activity, samples)
    read = gpxpy.parse(gpx.decode()).tracks[0].name
    assert read == (name or None) or (not name and read is None)
    assert etree.fromstring(tcx).findtext(".//{*}Notes") == (name or None)


def test_slugs_keep_letters_of_every_script_and_drop_emoji() -> None:
    assert slugify("Evening Run 🌇") == "evening-run"
    assert slugify("朝ラン") == "朝ラン"
    assert slugify("Вечерняя пробежка") == "вечерняя-пробежка"
    assert slugify("Parkrun 🏃‍♀️") == "parkrun"
    assert slugify("नमस्ते दुनिया") == "नमस्ते-दुनिया"  # the vowel signs (combining marks) stay
    assert slugify("🔥🔥", fallback="TrailRun") == "trailrun"
    assert slugify("🔥🔥") == slugify(None) == slugify("") == "activity"
    cut = slugify("नमस्ते" * 20)
    assert len(cut.encode()) <= MAX_SLUG_BYTES and unicodedata.category(cut[-1])[0] in "LM"
    assert not unicodedata.category(slugify("नमस्ते" * 20, max_bytes=13)[0]).startswith("M")


def test_control_characters_and_lone_surrogates_are_stripped_from_the_xml() -> None:
    name = "Run\x00\x01\x08\x0b\x0c\x1f\ufffe\uffff\ud800 done\r\nnext\tline"
    samples = _samples(time_s=[0], lat=[1.0], lng=[2.0])
    gpx, tcx = gpx_document(_activity(name), samples), tcx_document(_activity(name), samples)
    assert_valid(gpx, gpx_schema())
    assert etree.fromstring(gpx).findtext(".//{*}trk/{*}name") == "Run done\r\nnext\tline"
    assert etree.fromstring(tcx).findtext(".//{*}Notes") == "Run done\r\nnext\tline"


def test_an_original_keeps_its_extension() -> None:
    assert original_suffix("activities/12345.fit.gz") == ".original.fit.gz"
    assert original_suffix("activities/12345.GPX") == ".original.gpx"
    assert original_suffix("activities/12345.tcx.gz") == ".original.tcx.gz"
    assert original_suffix("activities/12345.fit") == ".original.fit"
    assert original_suffix("activities/weird") == ".original"
    path = relative_path(7, date(2023, 12, 31), "Last run", "Run", ".gpx")
    assert path.as_posix() == "2023/2023-12-31_7_last-run.gpx"


def _real_files() -> list[Path]:
    if not REAL_FILES.is_dir():
        return []
    return sorted(p for kind in ("fit", "gpx", "tcx") for p in (REAL_FILES / kind).iterdir()
                  if p.suffix in (".fit", ".gpx", ".tcx") and p.name not in UNREADABLE)


@pytest.mark.skipif(not REAL_FILES.is_dir(), reason="needs ../shared/strava/files")
@pytest.mark.parametrize("path", _real_files(), ids=lambda p: p.name)
def test_real_device_files_become_valid_gpx_and_tcx_with_the_same_points(path: Path) -> None:
    """Decoded as an archive's original would be (also gzipped, as Strava stores them), written, validated
    against the schemas and read back: every positioned sample in the GPX, every timed one in the TCX."""
    data = path.read_bytes()
    for name, payload in ((path.name, data), (f"{path.name}.gz", gzip.compress(data))):
        recording = decode_recording(payload, name)
        samples = complete_streams(recording.samples).with_row_index("sample_index")
        start = recording.start_utc or datetime(2020, 1, 1, tzinfo=UTC)
        first = samples.get_column("timestamp").drop_nulls()
        start = first[0] if first.len() else start  # time_s counts from the first timed sample
        activity = _activity(f"{path.stem} 🚴", sport_type="Ride", start_date=start)
        gpx, tcx = gpx_document(activity, samples), tcx_document(activity, samples)
        positioned = samples.filter(pl.col("lat").is_not_null() & pl.col("lng").is_not_null()).height
        timed = samples.filter(pl.col("time_s").is_not_null()).height
        assert (gpx is not None) == (positioned > 0) and (tcx is not None) == (timed > 0)
        if gpx is not None:
            assert assert_gpx_round_trip(gpx, activity, samples) == positioned
        if tcx is not None:
            assert assert_tcx_round_trip(tcx, activity, samples) == timed
        # The file's own times: our whole-second offsets from its first time are within a second of them.
        if gpx is not None and first.len():
            read = [p.time for p in gpxpy.parse(gpx.decode()).tracks[0].segments[0].points if p.time]
            own = samples.filter(pl.col("lat").is_not_null() & pl.col("lng").is_not_null()
                                 & pl.col("timestamp").is_not_null()).get_column("timestamp").to_list()
            assert len(read) == len(own)
            assert max(abs((a - b).total_seconds()) for a, b in zip(read, own, strict=True)) < 1.0


def test_real_files_cover_every_format() -> None:
    if not REAL_FILES.is_dir():
        pytest.skip("needs ../shared/strava/files")
    assert {p.suffix for p in _real_files()} == {".fit", ".gpx", ".tcx"}
