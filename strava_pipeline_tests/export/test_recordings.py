"""decode_recording on real device files (../shared/strava/files) and on hostile ones built here.

FIT samples are checked against the records CSVs (every record message, dumped by Garmin's SDK tool) and
row counts against an independent count: a minimal FIT message walker for FIT, a regex and a plain
ElementTree parse (trusted files only) for GPX and TCX.
"""

from __future__ import annotations

import csv
import gzip
import pickle
import re
import struct
import time
import xml.etree.ElementTree as ET
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strava_pipeline.export import recordings
from strava_pipeline.export.recordings import RECORDING_SCHEMA, Recording, RecordingError, decode_recording

FILES = Path(__file__).resolve().parents[2].parent / "shared" / "strava" / "files"
needs_files = pytest.mark.skipif(not FILES.is_dir(), reason=f"the real device files are not at {FILES}")

#: Valid FIT files (the Strava Android app's file is broken past byte 7,471 for every decoder).
VALID_FIT = (
    "garmin-fenix-5-run.fit", "garmin-edge-820-bike.fit", "2019-02-17-062644-ELEMNT-297E-195-0.fit",
    "developer-types-sample.fit", "sample-activity-indoor-trainer.fit",
)
GPX = ("korita-zbevnica.gpx", "cerknicko-jezero.gpx", "cerknicko-without-times.gpx",
       "gpx_with_garmin_extension.gpx", "unicode_with_bom.gpx")
TCX = ("sup_activity_1.tcx", "cross-country-skiing_activity_1.tcx")
SEMICIRCLE = 180 / 2**31


def read(relative: str) -> bytes:
    return (FILES / relative).read_bytes()


def decode(relative: str, data: bytes | None = None, **kwargs: str) -> Recording:
    return decode_recording(read(relative) if data is None else data, f"activities/{Path(relative).name}", **kwargs)


def fit_record_count(data: bytes) -> int:
    """Record (global 20) data messages, counted by walking FIT message headers (chained files too)."""
    count = pos = 0
    while pos < len(data):
        header_size, data_size = data[pos], struct.unpack_from("<I", data, pos + 4)[0]
        assert data[pos + 8:pos + 12] == b".FIT"
        p, end, defs = pos + header_size, pos + header_size + data_size, {}
        while p < end:
            header = data[p]
            p += 1
            if header & 0x80:  # compressed timestamp header: local type in bits 5-6
                number, size = defs[(header >> 5) & 0x3]
            elif header & 0x40:  # definition message
                big = data[p + 1] == 1
                number = struct.unpack_from(">H" if big else "<H", data, p + 2)[0]
                fields = data[p + 4]
                p += 5
                size = sum(data[p + 3 * i + 1] for i in range(fields))
                p += 3 * fields
                if header & 0x20:  # developer fields
                    dev_fields = data[p]
                    p += 1
                    size += sum(data[p + 3 * i + 1] for i in range(dev_fields))
                    p += 3 * dev_fields
                defs[header & 0x0F] = (number, size)
                continue
            else:
                number, size = defs[header & 0x0F]
            count += number == 20
            p += size
        pos = end + 2
    return count


def fit_crc(data: bytes, crc: int = 0) -> int:
    """FIT's CRC-16, as the FIT SDK computes it."""
    table = (0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
             0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400)
    for byte in data:
        crc = ((crc >> 4) & 0x0FFF) ^ table[crc & 0xF] ^ table[byte & 0xF]
        crc = ((crc >> 4) & 0x0FFF) ^ table[crc & 0xF] ^ table[byte >> 4]
    return crc


# --- FIT -------------------------------------------------------------------------------------------------

@needs_files
@pytest.mark.parametrize("decoder", ["auto", "fitdecode"])
@pytest.mark.parametrize("stem", ["garmin-fenix-5-run", "garmin-edge-820-bike"])
def test_fit_samples_equal_the_records_csv(stem: str, decoder: str) -> None:
    with (FILES / "fit" / f"{stem}-records.csv").open(newline="") as handle:
        truth = list(csv.DictReader(handle))
    samples = decode(f"fit/{stem}.fit", fit_decoder=decoder).samples
    assert samples.height == len(truth)
    for i, (row, expected) in enumerate(zip(samples.iter_rows(named=True), truth, strict=True)):
        when = datetime.strptime(expected["timestamp"].replace("PDT", "-0700"), "%a %b %d %H:%M:%S %z %Y")
        assert row["timestamp"] == when.astimezone(UTC), i
        assert row["heartrate_bpm"] == int(expected["heart_rate"]), i
        assert row["cadence_rpm"] == float(expected["cadence"]), i
        assert row["velocity_mps"] == pytest.approx(float(expected["speed"]), rel=1e-12), i
        assert row["distance_m"] == pytest.approx(float(expected["distance"]), rel=1e-12), i
        assert row["lat"] == pytest.approx(int(expected["position_lat"]) * SEMICIRCLE, rel=1e-12), i
        assert row["lng"] == pytest.approx(int(expected["position_long"]) * SEMICIRCLE, rel=1e-12), i
        assert row["altitude_m"] == pytest.approx(float(expected["altitude"]), rel=1e-12, abs=1e-12), i
        assert row["temp_c"] == int(expected["temperature"]), i


@needs_files
@pytest.mark.parametrize("name", VALID_FIT)
def test_fit_one_row_per_record_message_and_both_decoders_agree(name: str) -> None:
    data = read(f"fit/{name}")
    auto, reference = decode(f"fit/{name}"), decode(f"fit/{name}", fit_decoder="fitdecode")
    assert auto.samples.height == fit_record_count(data)
    assert auto.samples.schema == pl.Schema(RECORDING_SCHEMA)
    assert_frame_equal(auto.samples, reference.samples, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
    for field in ("format", "start_utc", "local_start", "local_timestamp_utc", "sport"):
        assert getattr(auto, field) == getattr(reference, field), field
    assert reference.decoder.startswith("fitdecode ")


@needs_files
def test_fit_decoder_choice() -> None:
    assert decode("fit/2019-02-17-062644-ELEMNT-297E-195-0.fit").decoder.startswith("fitfast ")
    # Header CRC 0x0000 (allowed, written by older devices): fitfast refuses the file, fitdecode reads it.
    assert read("fit/sample-activity-indoor-trainer.fit")[12:14] == b"\x00\x00"
    assert decode("fit/sample-activity-indoor-trainer.fit").decoder.startswith("fitdecode ")
    with pytest.raises(RecordingError, match="fitfast cannot decode"):
        decode("fit/sample-activity-indoor-trainer.fit", fit_decoder="fitfast")
    with pytest.raises(ValueError, match="unknown FIT decoder"):
        decode("fit/garmin-fenix-5-run.fit", fit_decoder="fitparse")


@needs_files
def test_fit_enhanced_speed_is_not_truncated() -> None:
    """fitfast expands speed 1.011 to enhanced_speed 1.010 in 90 records of this file; we read 1,011 mm/s."""
    auto = decode("fit/2019-02-17-062644-ELEMNT-297E-195-0.fit").samples
    assert auto["velocity_mps"][198] == 1.011


@needs_files
def test_fit_developer_field_named_like_a_native_one_does_not_shadow_it() -> None:
    data = bytearray(read("fit/developer-types-sample.fit"))
    at = data.index(b"Form Power\x00")
    data[at:at + 10] = b"power".ljust(10, b"\x00")  # a Connect IQ field now called "power"
    body_end = data[0] + struct.unpack_from("<I", data, 4)[0]
    data[body_end:body_end + 2] = struct.pack("<H", fit_crc(data[:body_end]))
    renamed = decode("fit/developer-types-sample.fit", bytes(data))
    original = decode("fit/developer-types-sample.fit")
    assert renamed.decoder.startswith("fitdecode ")
    assert_frame_equal(renamed.samples, original.samples)
    shadowed = decode("fit/developer-types-sample.fit", bytes(data), fit_decoder="fitfast").samples
    assert not shadowed["watts"].equals(original.samples["watts"])  # what the guard avoids


@needs_files
def test_fit_metadata() -> None:
    run = decode("fit/garmin-fenix-5-run.fit")
    assert run.format == "fit"
    assert run.sport == "running"
    assert run.start_utc == datetime(2017, 6, 11, 14, 34, 9, tzinfo=UTC)
    assert run.local_start == datetime(2017, 6, 11, 7, 35, 24)  # the activity message's local clock
    assert run.local_timestamp_utc == datetime(2017, 6, 11, 14, 35, 24, tzinfo=UTC)  # ... read in UTC: -7 h
    assert decode("fit/2019-02-17-062644-ELEMNT-297E-195-0.fit").sport == "cycling"


@needs_files
def test_fit_smart_recording_is_kept_as_recorded() -> None:
    samples = decode("fit/garmin-edge-820-bike.fit").samples
    seconds = [(t - samples["timestamp"][0]).total_seconds() for t in samples["timestamp"]]
    assert samples["time_s"].to_list() == seconds
    assert samples["time_s"][:4].to_list() == [0, 5, 7, 8]  # every 1-5 s, not resampled to 1 Hz


@needs_files
def test_fit_without_gps() -> None:
    samples = decode("fit/sample-activity-indoor-trainer.fit").samples
    assert samples["lat"].null_count() == samples.height == samples["lng"].null_count()
    assert samples["watts"].null_count() < samples.height  # a trainer: power, no position or speed


@needs_files
@pytest.mark.parametrize("name", sorted(p.name for p in (FILES / "fit" / "invalid").glob("*.fit")) or ["none"])
def test_invalid_fit_raises_naming_the_file(name: str) -> None:
    with pytest.raises(RecordingError) as caught:
        decode(f"fit/invalid/{name}")
    assert str(caught.value).startswith(f"activities/{name}: ")
    assert caught.value.name == f"activities/{name}"


@needs_files
def test_invalid_fit_messages() -> None:
    with pytest.raises(RecordingError, match=r"\.fit: FIT file truncated at byte 768$"):
        decode("fit/invalid/activity-unexpected-eof.fit")
    with pytest.raises(RecordingError, match="not a valid FIT file"):
        decode("fit/invalid/activity-settings-corruptheader.fit")
    with pytest.raises(RecordingError, match="corrupt at byte 7471"):
        decode("fit/strava-android-app-201.10-b1218918.fit")  # Strava's own app, crashed mid-file
    with pytest.raises(RecordingError, match="not a valid FIT file"):
        decode_recording(b"<?xml this is no FIT", "activities/1.fit")


@needs_files
def test_fit_flipped_bit_is_caught() -> None:
    for at, problem in ((5000, "CRC"), (2000, "corrupt at byte")):  # in a record; in a definition
        data = bytearray(read("fit/garmin-fenix-5-run.fit"))
        data[at] ^= 0x01
        with pytest.raises(RecordingError, match=problem), pytest.warns(UserWarning) if at == 2000 else nullcontext():
            decode("fit/garmin-fenix-5-run.fit", bytes(data))


# --- GPX and TCX -----------------------------------------------------------------------------------------

def plain_points(data: bytes, point: str) -> list[dict[str, str]]:
    """Each point's attributes and leaf texts by local name, from a plain ElementTree parse (trusted files)."""
    root = ET.fromstring(data.lstrip())
    out = []
    for element in root.iter():
        if element.tag.rpartition("}")[2] == point:
            values = dict(element.attrib)
            for leaf in element.iter():
                if len(leaf) == 0 and leaf.text and leaf.text.strip():
                    values.setdefault(leaf.tag.rpartition("}")[2], leaf.text.strip())
            out.append(values)
    return out


def iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


@needs_files
@pytest.mark.parametrize("name", GPX)
def test_gpx_one_row_per_trkpt_with_its_values(name: str) -> None:
    data = read(f"gpx/{name}")
    recording = decode(f"gpx/{name}")
    assert recording.format == "gpx"
    assert recording.decoder.startswith("lxml ")
    assert recording.samples.height == len(re.findall(rb"<(?:\w+:)?trkpt[\s/>]", data))
    points = plain_points(data, "trkpt")
    assert recording.samples.height == len(points)
    for row, point in zip(recording.samples.iter_rows(named=True), points, strict=True):
        assert row["lat"] == float(point["lat"]) and row["lng"] == float(point["lon"])
        assert row["altitude_m"] == (float(point["ele"]) if "ele" in point else None)
        assert row["timestamp"] == iso(point.get("time"))


@needs_files
@pytest.mark.parametrize("name", TCX)
def test_tcx_one_row_per_trackpoint_with_its_values(name: str) -> None:
    data = read(f"tcx/{name}")
    recording = decode(f"tcx/{name}")
    assert recording.format == "tcx"
    assert recording.samples.height == len(re.findall(rb"<(?:\w+:)?Trackpoint[\s>]", data))
    points = plain_points(data, "Trackpoint")
    assert recording.samples.height == len(points)
    for row, point in zip(recording.samples.iter_rows(named=True), points, strict=True):
        assert row["timestamp"] == iso(point.get("Time"))
        assert row["lat"] == (float(point["LatitudeDegrees"]) if "LatitudeDegrees" in point else None)
        assert row["lng"] == (float(point["LongitudeDegrees"]) if "LongitudeDegrees" in point else None)
        assert row["altitude_m"] == (float(point["AltitudeMeters"]) if "AltitudeMeters" in point else None)
        assert row["distance_m"] == (float(point["DistanceMeters"]) if "DistanceMeters" in point else None)
        assert row["heartrate_bpm"] == (int(point["Value"]) if "Value" in point else None)
        assert row["velocity_mps"] == (float(point["Speed"]) if "Speed" in point else None)


@needs_files
def test_tcx_metadata_and_first_point() -> None:
    recording = decode("tcx/sup_activity_1.tcx")
    assert recording.sport == "Other"
    assert recording.start_utc == datetime(2022, 7, 16, 16, 8, 25, tzinfo=UTC)
    assert recording.local_start is None
    first = recording.samples.row(0, named=True)
    assert first["time_s"] == 0
    assert first["distance_m"] == 0.75
    assert first["heartrate_bpm"] == 96
    assert first["velocity_mps"] == 0.2680000066757202
    assert recording.samples["time_s"][1] == 12  # 16:08:37: kept as recorded


def test_tcx_extensions_watts_and_run_cadence() -> None:
    tcx = b"""<?xml version="1.0" encoding="UTF-8"?>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
  xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2"><Activities><Activity Sport="Biking">
  <Id>2024-05-01T08:00:00Z</Id><Lap StartTime="2024-05-01T08:00:00Z"><Track>
  <Trackpoint><Time>2024-05-01T08:00:00Z</Time><Cadence>88</Cadence>
    <Extensions><ns3:TPX><ns3:Speed>8.5</ns3:Speed><ns3:Watts>231</ns3:Watts></ns3:TPX></Extensions></Trackpoint>
  <Trackpoint><Time>2024-05-01T08:00:01.500Z</Time>
    <Extensions><ns3:TPX><ns3:RunCadence>84</ns3:RunCadence></ns3:TPX></Extensions></Trackpoint>
  <Trackpoint></Trackpoint>
</Track></Lap></Activity></Activities></TrainingCenterDatabase>"""
    recording = decode_recording(tcx, "activities/9.tcx")
    rows = recording.samples.rows(named=True)
    assert recording.sport == "Biking"
    assert [r["watts"] for r in rows] == [231, None, None]
    assert [r["cadence_rpm"] for r in rows] == [88.0, 84.0, None]
    assert [r["velocity_mps"] for r in rows] == [8.5, None, None]
    assert [r["time_s"] for r in rows] == [0, 2, None]  # 1.5 s rounds to 2
    assert rows[1]["timestamp"] == datetime(2024, 5, 1, 8, 0, 1, 500000, tzinfo=UTC)


def gpx_track(points: str, version: str = "1.1") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="{version}" creator="t" '
            f'xmlns="http://www.topografix.com/GPX/{version.replace(".", "/")}" '
            'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1" '
            'xmlns:gpxpx="http://www.garmin.com/xmlschemas/PowerExtension/v1">'
            f"<trk><type>running</type><trkseg>{points}</trkseg></trk></gpx>").encode()


@needs_files
def test_gpx_garmin_extension_hr_from_the_real_file_as_a_track() -> None:
    data = read("gpx/gpx_with_garmin_extension.gpx")
    assert decode("gpx/gpx_with_garmin_extension.gpx", data).samples.height == 0  # a waypoint is no sample
    as_track = re.sub(rb"<wpt(.*?)</wpt>", rb"<trk><trkseg><trkpt\1</trkpt></trkseg></trk>", data, flags=re.S)
    row = decode("gpx/gpx_with_garmin_extension.gpx", as_track).samples.row(0, named=True)
    assert (row["lat"], row["lng"], row["altitude_m"], row["heartrate_bpm"]) == (37.778259, -122.391386, 3.4, 171)
    assert row["timestamp"] == datetime(2016, 6, 17, 23, 41, 3, tzinfo=UTC)


def test_gpx_extensions_hr_cad_atemp_power() -> None:
    data = gpx_track(
        '<trkpt lat="46.0" lon="14.0"><ele>300.5</ele><time>2024-05-01T08:00:00Z</time><extensions>'
        "<power>250</power><gpxtpx:TrackPointExtension><gpxtpx:atemp>21.4</gpxtpx:atemp>"
        "<gpxtpx:hr>140</gpxtpx:hr><gpxtpx:cad>85</gpxtpx:cad></gpxtpx:TrackPointExtension></extensions></trkpt>"
        '<trkpt lat="46.001" lon="14.001"><time>2024-05-01T10:00:03+02:00</time><extensions>'
        "<gpxpx:PowerExtension><gpxpx:PowerInWatts>260</gpxpx:PowerInWatts></gpxpx:PowerExtension>"
        "</extensions></trkpt>")
    recording = decode_recording(data, "activities/2.gpx")
    rows = recording.samples.rows(named=True)
    assert recording.sport == "running"
    assert rows[0] | {"timestamp": None} == {
        "timestamp": None, "time_s": 0, "lat": 46.0, "lng": 14.0, "altitude_m": 300.5, "distance_m": None,
        "velocity_mps": None, "heartrate_bpm": 140, "cadence_rpm": 85.0, "watts": 250, "temp_c": 21,
        "moving": None, "grade_pct": None}
    assert rows[1]["watts"] == 260 and rows[1]["time_s"] == 3  # +02:00 read as the same instant in UTC
    assert recording.start_utc == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_gpx_1_0() -> None:
    data = gpx_track('<trkpt lat="1.5" lon="2.5"><ele>3</ele><time>2010-10-04T05:13:19Z</time>'
                     "<speed>4.2</speed></trkpt>", version="1.0")
    row = decode_recording(data, "activities/3.gpx").samples.row(0, named=True)
    assert (row["lat"], row["lng"], row["altitude_m"], row["velocity_mps"]) == (1.5, 2.5, 3.0, 4.2)


@needs_files
def test_gpx_without_times() -> None:
    data = read("gpx/cerknicko-without-times.gpx")
    partly = decode("gpx/cerknicko-without-times.gpx", data).samples
    points = plain_points(data, "trkpt")
    assert [t is None for t in partly["time_s"]] == ["time" not in p for p in points]
    stripped = re.sub(rb"(<trkpt[^>]*>(?:(?!</trkpt>).)*?)<time>[^<]*</time>", rb"\1", data, flags=re.S)
    timeless = decode("gpx/cerknicko-without-times.gpx", stripped)
    assert timeless.samples.height == partly.height == 296
    assert timeless.samples["time_s"].null_count() == 296
    assert timeless.samples["timestamp"].null_count() == 296
    assert timeless.start_utc is None


@needs_files
def test_gpx_with_byte_order_mark() -> None:
    data = read("gpx/unicode_with_bom.gpx")
    assert data.startswith(b"\xef\xbb\xbf")
    assert decode("gpx/unicode_with_bom.gpx", data).samples.height == 0
    as_track = re.sub(rb"<wpt(.*?)</wpt>", rb"<trk><trkseg><trkpt\1</trkpt></trkseg></trk>", data, flags=re.S)
    row = decode("gpx/unicode_with_bom.gpx", as_track).samples.row(0, named=True)
    assert (row["lat"], row["lng"], row["altitude_m"]) == (43.309634, 3.515386, -14.6)
    assert row["timestamp"] == datetime(2016, 5, 27, 10, 8, 47, 800000, tzinfo=UTC)


def test_xml_number_that_is_not_a_number_is_named() -> None:
    data = gpx_track('<trkpt lat="1" lon="2"><ele>3</ele></trkpt><trkpt lat="1" lon="2"><ele>high</ele></trkpt>')
    with pytest.raises(RecordingError, match=r"activities/4\.gpx: trkpt 2 has altitude_m 'high', not a number"):
        decode_recording(data, "activities/4.gpx")
    with pytest.raises(RecordingError, match="trkpt 1 has time 'yesterday'"):
        decode_recording(gpx_track('<trkpt lat="1" lon="2"><time>yesterday</time></trkpt>'), "activities/4.gpx")


def test_wrong_document_for_the_name() -> None:
    with pytest.raises(RecordingError, match="not a GPX document"):
        decode_recording(b"<TrainingCenterDatabase/>", "activities/5.gpx")
    with pytest.raises(RecordingError, match="not a TCX document"):
        decode_recording(b"<gpx/>", "activities/5.tcx")


# --- Strava's variants: gzip, leading whitespace, upper-case names ----------------------------------------

@needs_files
@pytest.mark.parametrize("relative", [f"fit/{n}" for n in VALID_FIT[:3]] + [f"gpx/{n}" for n in GPX[:2]]
                         + [f"tcx/{n}" for n in TCX])
def test_gzipped_files_decode_to_the_same_samples(relative: str) -> None:
    data = read(relative)
    plain = decode(relative, data)
    for name in (f"activities/1{Path(relative).suffix}.gz", f"activities/1{Path(relative).suffix.upper()}.GZ"):
        zipped = decode_recording(gzip.compress(data), name)
        assert_frame_equal(zipped.samples, plain.samples)
        assert (zipped.format, zipped.start_utc, zipped.sport) == (plain.format, plain.start_utc, plain.sport)


@needs_files
@pytest.mark.parametrize("name", TCX)
def test_tcx_with_stravas_leading_spaces(name: str) -> None:
    data = read(f"tcx/{name}")
    plain = decode(f"tcx/{name}", data)
    padded = b" " * 10 + data
    assert_frame_equal(decode(f"tcx/{name}", padded).samples, plain.samples)
    assert_frame_equal(decode_recording(gzip.compress(padded), "activities/7.tcx.gz").samples, plain.samples)
    assert_frame_equal(decode_recording(b"\xef\xbb\xbf\r\n  " + data, "activities/7.tcx").samples, plain.samples)


def test_unknown_format_is_refused() -> None:
    for name in ("activities/1.kml", "activities/1.gz", "activities/1", "activities/1.fit.zip"):
        with pytest.raises(RecordingError, match=re.escape(name) + ": not a recording"):
            decode_recording(b"", name)


# --- broken and hostile input ---------------------------------------------------------------------------

def elapsed(call: object) -> tuple[float, RecordingError]:
    start = time.perf_counter()
    with pytest.raises(RecordingError) as caught:
        call()  # type: ignore[operator]
    return time.perf_counter() - start, caught.value


def test_broken_gzip_is_refused_quickly() -> None:
    data = gzip.compress(gpx_track('<trkpt lat="1" lon="2"/>' * 2000))
    cases = {
        "not a gzip file": b"PK\x03\x04 a zip, not a gzip",
        "gzip stream truncated": data[: len(data) // 2],
        "corrupt gzip data": data[:20] + bytes(b ^ 0x55 for b in data[20:60]) + data[60:],
        "trailing garbage": data + b"junk",
    }
    for problem, broken in cases.items():
        seconds, error = elapsed(lambda broken=broken: decode_recording(broken, "activities/6.gpx.gz"))
        assert str(error).startswith("activities/6.gpx.gz: " + problem), str(error)
        assert seconds < 1.0
    document = gpx_track('<trkpt lat="1" lon="2"/>' * 2000)
    members = gzip.compress(document[:1000]) + gzip.compress(document[1000:])  # as some writers stream
    assert decode_recording(members, "activities/6.gpx.gz").samples.height == 2000


def test_gzip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recordings, "MAX_DECOMPRESSED_BYTES", 10_000)
    with pytest.raises(RecordingError, match="decompresses to more than"):
        decode_recording(gzip.compress(b" " * 20_000 + gpx_track("")), "activities/6.gpx.gz")


def test_malformed_xml_names_the_line() -> None:
    data = b'<?xml version="1.0"?>\n<gpx version="1.1">\n<trk><trkseg><trkpt lat="1" lon="2"></trk>\n</gpx>\n'
    seconds, error = elapsed(lambda: decode_recording(data, "activities/8.gpx"))
    assert str(error).startswith("activities/8.gpx: malformed XML at line 3: Opening and ending tag mismatch")
    assert seconds < 1.0
    for broken in (b"", b"<gpx>&undefined;</gpx>", b"not xml at all"):
        with pytest.raises(RecordingError, match="malformed XML at line 1"):
            decode_recording(broken, "activities/8.tcx")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE gpx [
 <!ENTITY lol "lol">
""" + b"".join(
    b' <!ENTITY lol%d "%s">\n' % (i, b"".join(b"&lol%s;" % (b"" if i == 1 else b"%d" % (i - 1)) for _ in range(10)))
    for i in range(1, 10)
) + b"""]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>&lol9;</name><trkseg>
<trkpt lat="1" lon="2"><ele>&lol9;</ele></trkpt></trkseg></trk></gpx>
"""


@pytest.mark.parametrize("variant", ["plain", "gzip", "utf-16", "utf-32", "external"])
def test_entity_declarations_are_refused_quickly(variant: str) -> None:
    data, name = BILLION_LAUGHS, "activities/9.gpx"
    if variant == "gzip":
        data, name = gzip.compress(data), "activities/9.gpx.gz"
    elif variant in ("utf-16", "utf-32"):
        declaration = f'<?xml version="1.0" encoding="{variant.upper()}"?>'
        data = BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', declaration).encode(variant)
    elif variant == "external":
        data = (b'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<gpx><trk><trkseg><trkpt lat="1" lon="2"><ele>&x;</ele></trkpt></trkseg></trk></gpx>')
    seconds, error = elapsed(lambda: decode_recording(data, name))
    assert seconds < 1.0
    assert str(error).startswith(f"{name}: ")
    if variant != "utf-32":
        assert str(error) == f"{name}: XML entity declarations are refused"
    else:  # the byte scan cannot see it: libxml2's amplification limit (or our DTD check) refuses it
        assert "entity" in str(error).lower()
    assert "lollol" not in str(error)


def test_entity_declared_in_an_encoding_the_scan_cannot_read_is_refused_after_parsing() -> None:
    data = '<?xml version="1.0" encoding="UTF-32"?><!DOCTYPE gpx [<!ENTITY a "x">]><gpx/>'.encode("utf-32")
    with pytest.raises(RecordingError, match=r"^activities/9\.gpx: XML entity declarations are refused$"):
        decode_recording(data, "activities/9.gpx")


def test_recording_error_is_a_value_error_and_pickles() -> None:
    error = RecordingError("activities/1.fit", "FIT file truncated at byte 768")
    assert isinstance(error, ValueError)
    assert str(error) == "activities/1.fit: FIT file truncated at byte 768"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.name, copy.problem, str(copy)) == (error.name, error.problem, str(error))


def test_empty_recording_has_the_schema() -> None:
    recording = decode_recording(gpx_track(""), "activities/10.gpx")
    assert recording.samples.height == 0
    assert recording.samples.schema == pl.Schema(RECORDING_SCHEMA)
    assert recording.start_utc is None


def test_time_s_counts_from_the_first_timed_sample() -> None:
    data = gpx_track('<trkpt lat="1" lon="2"/>'
                     '<trkpt lat="1" lon="2"><time>2024-05-01T08:00:10Z</time></trkpt>'
                     '<trkpt lat="1" lon="2"><time>2024-05-01T08:00:09Z</time></trkpt>')
    recording = decode_recording(data, "activities/11.gpx")
    assert recording.samples["time_s"].to_list() == [None, 0, -1]  # a clock stepping back is kept as recorded
    assert recording.start_utc == datetime(2024, 5, 1, 8, 0, 10, tzinfo=UTC)
    assert recording.start_utc + timedelta(seconds=-1) == recording.samples["timestamp"][2]
