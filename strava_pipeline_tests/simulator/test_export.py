"""The simulator's Strava bulk-export archive: layout, activities.csv, and files that hold exactly the API's streams.

Each file is decoded the way an importer would (FIT with fitdecode, GPX/TCX with an XML parser after
stripping the leading whitespace Strava's TCX files have) and compared sample by sample with what the
simulator serves from `/activities/{id}/streams` over HTTP.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import fitdecode
import pytest
import requests

from strava_pipeline.simulator import ManualClock, SimulatorConfig, StravaSimulator
from strava_pipeline.simulator.export import (
    FORMATS,
    GERMAN_TYPES,
    HEADER_2018,
    HEADER_2025,
    ExportManifest,
    german_header,
)
from strava_pipeline.simulator.export_fit import crc16, encode_records, record_codec
from strava_pipeline.simulator.streams import DOCUMENTED
from strava_pipeline_tests.simulator.conftest import FULL_SCOPE, T0, Api

REPO = Path(__file__).resolve().parents[2]
DUPLICATED = {"Elapsed Time", "Distance", "Max Heart Rate", "Relative Effort", "Commute"}
GPX_NS = {"g": "http://www.topografix.com/GPX/1/1", "tpx": "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"}
TCX_NS = {"t": "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2",
          "x": "http://www.garmin.com/xmlschemas/ActivityExtension/v2"}
ESCAPE_ME = 'Tom & Jerry <3> "quoted" \U0001f3c3'


def _config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = dict(seed=7, start_date=date(2025, 1, 1), end_date=date(2025, 12, 31), activities=80,
                                clock=ManualClock(T0 + 12 * 3600 + 5), read_limit=(10_000, 100_000),
                                overall_limit=(20_000, 200_000))
    base.update(overrides)
    return SimulatorConfig(**base)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StravaSimulator, Api, ExportManifest]]:
    """One running simulator (the conftest athlete, plus an activity whose name needs escaping) and its archive."""
    with StravaSimulator(_config()) as sim:
        sim.add_activity("2025-06-01T07:00:00", "Run", name=ESCAPE_ME)
        api = Api(sim, sim.authorize(FULL_SCOPE)["access_token"])
        manifest = sim.write_export(tmp_path_factory.mktemp("export"), missing_files=1)
        yield sim, api, manifest


def _csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _member(manifest: ExportManifest, name: str) -> bytes:
    with zipfile.ZipFile(manifest.path) as z:
        return z.read(name)


def _rows(manifest: ExportManifest) -> tuple[list[str], list[dict[tuple[str, int], str]]]:
    """Header and rows keyed by (column name, occurrence), as an importer must read them."""
    table = _csv(_member(manifest, "activities.csv"))
    header, out = table[0], []
    for row in table[1:]:
        seen: Counter[str] = Counter()
        keyed = {}
        for name, value in zip(header, row, strict=True):
            seen[name] += 1
            keyed[(name, seen[name])] = value
        out.append(keyed)
    return header, out


def _api_streams(api: Api, activity_id: int) -> dict[str, list[Any]]:
    r = api.get(f"/activities/{activity_id}/streams", keys=",".join(DOCUMENTED), key_by_type="true")
    assert r.status_code == 200
    return {k: v["data"] for k, v in r.json().items()}


def _epoch(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


# --- decoders ------------------------------------------------------------------------------------------------

def _fit(raw: bytes) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    records: list[dict[str, Any]] = []
    other: dict[str, list[dict[str, Any]]] = {}
    with fitdecode.FitReader(io.BytesIO(raw), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage):
                values = {f.name: f.value for f in frame.fields if f.value is not None}
                (records if frame.name == "record" else other.setdefault(frame.name, [])).append(values)
    return records, other


def _samples_fit(raw: bytes, start: int) -> dict[str, list[Any]]:
    records, _ = _fit(raw)
    out: dict[str, list[Any]] = {"time": [int(r["timestamp"].timestamp()) - start for r in records]}
    if "position_lat" in records[0]:
        out["latlng"] = [[r["position_lat"] * 180 / 2**31, r["position_long"] * 180 / 2**31] for r in records]
    for stream, fields in (("altitude", ("enhanced_altitude", "altitude")), ("distance", ("distance",)),
                           ("velocity_smooth", ("enhanced_speed", "speed")), ("heartrate", ("heart_rate",)),
                           ("cadence", ("cadence",)), ("watts", ("power",)), ("temp", ("temperature",))):
        if fields[0] in records[0]:
            out[stream] = [r[fields[0]] for r in records]
            for extra in fields[1:]:  # the plain field too, with the same value
                assert [r[extra] for r in records] == out[stream]
    return out


def _xml(raw: bytes) -> ET.Element:
    return ET.fromstring(raw.lstrip())  # Strava's TCX files start with spaces before <?xml


def _samples_gpx(raw: bytes, start: int) -> dict[str, list[Any]]:
    points = _xml(raw).findall("g:trk/g:trkseg/g:trkpt", GPX_NS)
    out: dict[str, list[Any]] = {
        "time": [_epoch(p.findtext("g:time", namespaces=GPX_NS) or "") - start for p in points],
        "latlng": [[float(p.get("lat", "")), float(p.get("lon", ""))] for p in points],
    }
    tpx = "g:extensions/tpx:TrackPointExtension/tpx:"
    for stream, path, cast in (("altitude", "g:ele", float), ("heartrate", tpx + "hr", int),
                               ("cadence", tpx + "cad", int), ("temp", tpx + "atemp", int),
                               ("watts", "g:extensions/g:power", int)):
        values = [p.findtext(path, namespaces=GPX_NS) for p in points]
        if values[0] is not None:
            out[stream] = [cast(v) for v in values]
    return out


def _samples_tcx(raw: bytes, start: int) -> dict[str, list[Any]]:
    points = _xml(raw).findall(".//t:Trackpoint", TCX_NS)
    out: dict[str, list[Any]] = {"time": [_epoch(p.findtext("t:Time", namespaces=TCX_NS) or "") - start
                                          for p in points]}
    if points[0].find("t:Position", TCX_NS) is not None:
        out["latlng"] = [[float(p.findtext("t:Position/t:LatitudeDegrees", namespaces=TCX_NS) or ""),
                          float(p.findtext("t:Position/t:LongitudeDegrees", namespaces=TCX_NS) or "")] for p in points]
    for stream, path, cast in (("altitude", "t:AltitudeMeters", float), ("distance", "t:DistanceMeters", float),
                               ("heartrate", "t:HeartRateBpm/t:Value", int), ("cadence", "t:Cadence", int),
                               ("velocity_smooth", "t:Extensions/x:TPX/x:Speed", float),
                               ("watts", "t:Extensions/x:TPX/x:Watts", int)):
        values = [p.findtext(path, namespaces=TCX_NS) for p in points]
        if values[0] is not None:
            out[stream] = [cast(v) for v in values]
    return out


#: How far a decoded value may be from the served one: the format's resolution (FIT stores altitude in
#: 1/5 m, distance in cm, speed in mm/s, positions in semicircles); text formats hold the exact value.
FIT_TOLERANCE = {"latlng": 1e-6, "altitude": 0.1 + 1e-9, "distance": 0.005 + 1e-9, "velocity_smooth": 0.0005 + 1e-9}


def _assert_same(decoded: dict[str, list[Any]], served: dict[str, list[Any]], streams: tuple[str, ...],
                 tolerance: dict[str, float]) -> None:
    assert set(decoded) == set(streams)
    for stream in streams:
        got, want = decoded[stream], served[stream]
        assert len(got) == len(want), stream
        tol = tolerance.get(stream, 0.0)
        if stream == "latlng":
            got, want = [v for p in got for v in p], [v for p in want for v in p]
        if tol:
            worst = max(abs(a - b) for a, b in zip(got, want, strict=True))
            assert worst <= tol, (stream, worst)
        else:
            assert got == want, stream


def _decode(manifest: ExportManifest, name: str, start: int) -> dict[str, list[Any]]:
    raw = _member(manifest, name)
    fmt = manifest.files[name].format or ""
    if fmt.endswith(".gz"):
        raw = gzip.decompress(raw)
    return {"fit": _samples_fit, "gpx": _samples_gpx, "tcx": _samples_tcx}[fmt.split(".")[0]](raw, start)


# --- the archive -----------------------------------------------------------------------------------------------

def test_archive_layout_and_files(exported: tuple[StravaSimulator, Api, ExportManifest]) -> None:
    sim, _, manifest = exported
    assert manifest.path.name == f"export_{sim.athlete_id}.zip"
    with zipfile.ZipFile(manifest.path) as z:
        names = z.namelist()
        assert z.testzip() is None
    for name in names:  # nothing outside the archive root
        assert not name.startswith(("/", "\\")) and "\\" not in name and ":" not in name
        assert ".." not in PurePosixPath(name).parts
    assert {"activities.csv", "profile.csv", "bikes.csv", "shoes.csv"} <= set(names)

    summaries = {s["id"]: s for s in sim.activities()}
    assert [a.activity_id for a in manifest.activities] == sorted(summaries, key=lambda i: (_epoch(
        summaries[i]["start_date"]), i))  # oldest first, one row each
    members = {n for n in names if n.startswith("activities/")}
    assert members == set(manifest.files)
    assert len(manifest.missing) == 1 and manifest.missing[0].filename not in names
    for entry in manifest.activities:
        s = summaries[entry.activity_id]
        if s["manual"]:
            assert entry.filename == "" and entry.format is None and not entry.in_archive
            continue
        assert entry.filename == f"activities/{s['upload_id']}.{entry.format}"  # the upload id, not the activity id
        assert entry.upload_id == s["upload_id"] != entry.activity_id
        assert entry.in_archive == ("missing" not in entry.broken)
    assert {a.format for a in manifest.files.values()} == set(FORMATS)  # every format, even in a small archive
    assert Counter(a.format for a in manifest.files.values()).most_common(1)[0][0] == "fit.gz"
    for name, entry in manifest.files.items():
        if entry.format == "tcx":
            assert re.match(rb" {10}<\?xml ", _member(manifest, name))
        elif entry.format == "tcx.gz":
            assert re.match(rb" {10}<\?xml ", gzip.decompress(_member(manifest, name)))


def test_activities_csv_matches_the_summaries(exported: tuple[StravaSimulator, Api, ExportManifest]) -> None:
    sim, _, manifest = exported
    header, rows = _rows(manifest)
    assert tuple(header) == HEADER_2025
    assert {n for n, c in Counter(header).items() if c == 2} == DUPLICATED
    gear = {g.id: g.name for g in sim.app.dataset.athlete.gear}
    summaries = {s["id"]: s for s in sim.activities()}
    assert len(rows) == len(summaries) == len({int(r[("Activity ID", 1)]) for r in rows})
    for row in rows:
        s = summaries[int(row[("Activity ID", 1)])]
        entry = manifest.activity(s["id"])
        started = datetime.strptime(row[("Activity Date", 1)], "%b %d, %Y, %I:%M:%S %p").replace(tzinfo=UTC)
        assert int(started.timestamp()) == _epoch(s["start_date"])  # UTC, not local
        assert row[("Activity Name", 1)] == s["name"]
        assert row[("Filename", 1)] == entry.filename
        assert row[("Activity Gear", 1)] == (gear[s["gear_id"]] if s["gear_id"] else "")
        assert int(row[("Elapsed Time", 1)]) == s["elapsed_time"] == float(row[("Elapsed Time", 2)])
        assert float(row[("Moving Time", 1)]) == s["moving_time"]
        assert row[("Distance", 1)] == f"{s['distance'] / 1000:.2f}"  # km, as displayed
        assert float(row[("Distance", 2)]) == pytest.approx(s["distance"], rel=1e-6)  # metres (single precision)
        assert row[("Commute", 1)] == ("true" if s["commute"] else "false")
        assert float(row[("Commute", 2)]) == float(s["commute"])
        if s.get("average_heartrate"):
            assert float(row[("Average Heart Rate", 1)]) == s["average_heartrate"]
            assert float(row[("Max Heart Rate", 2)]) == s["max_heartrate"]
    types = {r[("Activity Type", 1)] for r in rows}
    assert {"Run", "Weight Training", "Virtual Ride", "Trail Run"} <= types
    assert any("\n" in r[("Activity Private Note", 1)] for r in rows)  # quoted line breaks survive the CSV
    assert any(r[("Activity Name", 1)] == ESCAPE_ME for r in rows)
    bikes, shoes = _csv(_member(manifest, "bikes.csv")), _csv(_member(manifest, "shoes.csv"))
    assert {r[("Activity Gear", 1)] for r in rows} - {""} <= {r[0] for r in bikes[1:] + shoes[1:]}
    profile = _csv(_member(manifest, "profile.csv"))
    assert profile[1][0] == str(sim.athlete_id)


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_hold_exactly_the_served_streams(exported: tuple[StravaSimulator, Api, ExportManifest],
                                               fmt: str) -> None:
    sim, api, manifest = exported
    summaries = {s["id"]: s for s in sim.activities()}
    names = [n for n, a in manifest.files.items() if a.format == fmt][:3]
    assert names
    for name in names:
        entry = manifest.files[name]
        served = _api_streams(api, entry.activity_id)
        start = _epoch(summaries[entry.activity_id]["start_date"])
        decoded = _decode(manifest, name, start)
        assert entry.samples == len(served["time"])
        assert "time" in entry.streams and not {"moving", "grade_smooth", "watts_calc"} & set(entry.streams)
        _assert_same(decoded, served, entry.streams, FIT_TOLERANCE if fmt.startswith("fit") else {})


def test_fit_messages(exported: tuple[StravaSimulator, Api, ExportManifest]) -> None:
    sim, _, manifest = exported
    summaries = {s["id"]: s for s in sim.activities()}
    name, entry = next((n, a) for n, a in manifest.files.items() if a.format == "fit.gz"
                       and "latlng" in a.streams and "altitude" in a.streams)
    s = summaries[entry.activity_id]
    records, other = _fit(gzip.decompress(_member(manifest, name)))
    assert {"file_id", "lap", "session", "activity", "event"} <= set(other)
    assert other["file_id"][0]["type"] == "activity"
    activity = other["activity"][0]
    assert activity["local_timestamp"].replace(tzinfo=None) == datetime.strptime(s["start_date_local"],
                                                                                 "%Y-%m-%dT%H:%M:%SZ")
    assert int(activity["timestamp"].timestamp()) == _epoch(s["start_date"])
    session = other["session"][0]
    assert session["total_elapsed_time"] == s["elapsed_time"] and session["total_timer_time"] == s["moving_time"]
    assert session["total_distance"] == pytest.approx(s["distance"], abs=0.05)
    assert {"enhanced_speed", "speed", "enhanced_altitude", "altitude", "position_lat"} <= set(records[0])


def test_manual_and_missing_files_are_recorded(exported: tuple[StravaSimulator, Api, ExportManifest]) -> None:
    sim, api, manifest = exported
    manual = [a for a in manifest.activities if a.manual]
    assert manual and all(a.filename == "" for a in manual)
    assert {a.activity_id for a in manual} == {s["id"] for s in sim.activities() if s["manual"]}
    gone = manifest.missing[0]
    assert gone.filename and gone.samples == len(_api_streams(api, gone.activity_id)["time"])
    assert gone.activity_id not in manifest.ids_with_files
    summary = manifest.summary()
    assert summary["missing"] == [{"activity_id": gone.activity_id, "filename": gone.filename}]
    assert summary["files"] == len(manifest.files) == len(manifest.ids_with_files)
    json.dumps(summary)


def test_names_are_escaped_in_xml(exported: tuple[StravaSimulator, Api, ExportManifest], tmp_path: Path) -> None:
    sim, _, _ = exported
    special = next(s["id"] for s in sim.activities() if s["name"] == ESCAPE_ME)
    manifest = sim.write_export(tmp_path, file_formats={special: "gpx"})
    gpx = _xml(_member(manifest, manifest.activity(special).filename))
    assert gpx.findtext("g:trk/g:name", namespaces=GPX_NS) == ESCAPE_ME
    manifest = sim.write_export(tmp_path / "tcx", file_formats={special: "tcx.gz"}, formats="fit")
    tcx = _xml(gzip.decompress(_member(manifest, manifest.activity(special).filename)))
    assert tcx.findtext(".//t:Notes", namespaces=TCX_NS) == ESCAPE_ME
    assert {a.format for a in manifest.files.values()} == {"fit", "tcx.gz"}


# --- options ---------------------------------------------------------------------------------------------------

def test_german_archive(exported: tuple[StravaSimulator, Api, ExportManifest], tmp_path: Path) -> None:
    sim, _, _ = exported
    manifest = sim.write_export(tmp_path, language="de", formats="fit.gz")
    header, rows = _rows(manifest)
    assert tuple(header) == german_header(HEADER_2025)
    assert header[:4] == ["Aktivitäts-ID", "Aktivitätsdatum", "Name der Aktivität", "Aktivitätsart"]
    assert Counter(header)["Distanz"] == 2 and Counter(header)["Verstrichene Zeit"] == 2
    summaries = {s["id"]: s for s in sim.activities()}
    for row in rows:
        s = summaries[int(row[("Aktivitäts-ID", 1)])]
        started = datetime.strptime(row[("Aktivitätsdatum", 1)], "%d.%m.%Y, %H:%M:%S").replace(tzinfo=UTC)
        assert int(started.timestamp()) == _epoch(s["start_date"])
        assert re.fullmatch(r"\d+,\d\d", row[("Distanz", 1)])
        assert float(row[("Distanz", 2)].replace(",", ".")) == pytest.approx(s["distance"], rel=1e-6)
        assert "." not in row[("Distanz", 2)] + row[("Durchschnittliche Geschwindigkeit", 1)]
        assert row[("Aktivitätsart", 1)] == GERMAN_TYPES[s["sport_type"]]
        assert row[("Name der Aktivität", 1)] == s["name"]
    assert {"Lauf", "Krafttraining"} <= {r[("Aktivitätsart", 1)] for r in rows}


def test_pre_2019_header(exported: tuple[StravaSimulator, Api, ExportManifest], tmp_path: Path) -> None:
    sim, _, _ = exported
    manifest = sim.write_export(tmp_path, layout="2018", formats="gpx.gz")
    table = _csv(_member(manifest, "activities.csv"))
    assert tuple(table[0]) == HEADER_2018
    summaries = {s["id"]: s for s in sim.activities()}
    for row in table[1:]:
        s = summaries[int(row[0])]
        started = datetime.strptime(row[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert int(started.timestamp()) == _epoch(s["start_date"])
        assert float(row[6]) == s["distance"]
    formats = {a.format for a in manifest.files.values()}
    assert formats == {"gpx.gz", "tcx.gz"}  # GPX needs positions: indoor activities fall back to TCX
    assert all(a.format == "gpx.gz" for a in manifest.files.values() if "latlng" in a.streams)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    digests = []
    for workers in (1, 2):
        sim = StravaSimulator(_config(activities=24, seed=3))
        manifest = sim.write_export(tmp_path / str(workers), workers=workers, missing_files=1, truncated_files=1)
        digests.append(hashlib.sha256(manifest.path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    other = StravaSimulator(_config(activities=24, seed=4)).write_export(tmp_path / "other")
    assert hashlib.sha256(other.path.read_bytes()).hexdigest() != digests[0]


def test_unpacked_folder_and_truncated_file(tmp_path: Path) -> None:
    sim = StravaSimulator(_config(activities=20))
    manifest = sim.write_export(tmp_path, unpacked=True, truncated_files=1, formats="fit")
    assert manifest.path == tmp_path / f"export_{sim.athlete_id}" and manifest.path.is_dir()
    assert (manifest.path / "activities.csv").is_file()
    for name in manifest.files:
        assert (manifest.path / name).is_file()
    broken = manifest.truncated[0]
    with pytest.raises(fitdecode.FitError):
        _fit((manifest.path / broken.filename).read_bytes())
    healthy = next(n for n, a in manifest.files.items() if not a.broken)
    assert _fit((manifest.path / healthy).read_bytes())[0]


def test_bad_options_are_refused(tmp_path: Path) -> None:
    sim = StravaSimulator(_config(activities=5))
    for options in ({"language": "fr"}, {"layout": "2018", "language": "de"}, {"formats": "kml"},
                    {"missing_files": [123]}, {"file_formats": {123: "fit"}}):
        with pytest.raises(ValueError):
            sim.write_export(tmp_path, **options)


# --- FIT encoding details -----------------------------------------------------------------------------------------

def test_fast_record_packing_equals_fit_tool_encoding() -> None:
    """Records are packed with a struct derived from fit-tool's definition: byte for byte its own encoding."""
    from fit_tool.definition_message import DefinitionMessage
    from fit_tool.profile.messages.record_message import RecordMessage

    streams = {"time": [0, 1, 7, 3599], "latlng": [[34.07367, -118.24], [-33.9, 151.2], [0.0, 0.0], [89.9, -179.9]],
               "altitude": [100.5, -12.3, 0.0, 4421.9], "distance": [0.0, 4.1, 0.29, 42195.7],
               "velocity_smooth": [0.0, 2.345, 12.999, 3.001], "heartrate": [60, 140, 199, 72],
               "cadence": [0, 85, 110, 254], "watts": [0, 250, 830, 1], "temp": [-5, 0, 31, 12]}
    start = 1_750_000_000
    codec = record_codec(tuple(streams))
    packed = encode_records(codec, streams, start)
    for i, raw in enumerate(packed):
        msg = RecordMessage(local_id=3)
        msg.timestamp = (start + streams["time"][i]) * 1000
        msg.position_lat, msg.position_long = streams["latlng"][i]
        msg.enhanced_altitude = msg.altitude = streams["altitude"][i]
        msg.distance = streams["distance"][i]
        msg.enhanced_speed = msg.speed = streams["velocity_smooth"][i]
        msg.heart_rate, msg.cadence = streams["heartrate"][i], streams["cadence"][i]
        msg.power, msg.temperature = streams["watts"][i], streams["temp"][i]
        msg.set_definition_message(DefinitionMessage.from_data_message(msg))
        assert raw == bytes([3]) + msg.to_bytes(), i


def test_crc_equals_fit_tool_crc() -> None:
    from fit_tool.utils.crc import crc16 as reference

    data = hashlib.sha256(b"fit").digest() * 40 + b"\x01"
    for chunk in (b"", b"\x00", data[:1], data[:2], data[:999], data):
        assert crc16(chunk) == reference(chunk)
    assert crc16(data[500:], crc16(data[:500])) == reference(data)


# --- CLI and admin endpoint ----------------------------------------------------------------------------------------

def test_admin_endpoint_writes_the_archive(tmp_path: Path) -> None:
    with StravaSimulator(_config(activities=12)) as sim:
        r = requests.post(sim.base_url + "/_simulator/export", json={"path": str(tmp_path), "language": "de",
                                                                     "missing_files": 1}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["path"] == str(tmp_path / f"export_{sim.athlete_id}.zip") and Path(body["path"]).is_file()
        assert body["activities"] == len(sim.activity_ids()) and body["language"] == "de"
        assert len(body["missing"]) == 1 and body["files"] == sum(body["formats"].values())
        bad = requests.post(sim.base_url + "/_simulator/export", json={"path": str(tmp_path), "layout": "1999"},
                            timeout=10)
        assert bad.status_code == 400


def test_cli_writes_the_archive_and_exits(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "strava_pipeline.simulator.cli", "--export", str(tmp_path), "--activities", "15",
         "--seed", "5", "--start-date", "2025-03-01", "--export-missing-file", "--export-language", "de"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    written = re.search(r"^Wrote (\S+)", out.stdout, re.M)
    assert written and Path(written[1]).is_file() and Path(written[1]).parent == tmp_path
    assert re.search(r"activities:\s+15 rows", out.stdout) and "missing file:" in out.stdout
    with zipfile.ZipFile(written[1]) as z:
        assert _csv(z.read("activities.csv"))[0][0] == "Aktivitäts-ID"
