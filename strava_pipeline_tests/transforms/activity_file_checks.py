"""What every written GPX/TCX file must satisfy: its XML schema, and a read-back equal to the samples.

Shared by the unit tests (``test_activity_files.py``) and the end-to-end ones (``e2e/files/``). The schemas
are the published XSDs kept in ``schemas/`` (see the README there); validation is lxml's XMLSchema (libxml2).
A GPX file is read back with gpxpy (what FitTrackee and most Python tools use), a TCX file with lxml.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import gpxpy
import polars as pl
from lxml import etree

from strava_pipeline.transforms.activity_files import (
    ACTIVITY_EXTENSION_NAMESPACE,
    GPX_NAMESPACE,
    POWER_NAMESPACE,
    TCX_NAMESPACE,
    TRACKPOINT_EXTENSION_NAMESPACE,
)

SCHEMAS = Path(__file__).resolve().parent / "schemas"
_GPXTPX = f"{{{TRACKPOINT_EXTENSION_NAMESPACE}}}"
_TC = f"{{{TCX_NAMESPACE}}}"
_AX = f"{{{ACTIVITY_EXTENSION_NAMESPACE}}}"


@cache
def _schema(*imports: tuple[str, str]) -> etree.XMLSchema:
    """One schema importing each (namespace, XSD file): extension content is then validated too, not skipped."""
    body = "".join(f'<xsd:import namespace="{ns}" schemaLocation="{(SCHEMAS / name).as_uri()}"/>'
                   for ns, name in imports)
    return etree.XMLSchema(etree.fromstring(
        f'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</xsd:schema>'.encode()))


def gpx_schema() -> etree.XMLSchema:
    return _schema((GPX_NAMESPACE, "gpx.xsd"), (TRACKPOINT_EXTENSION_NAMESPACE, "TrackPointExtensionv1.xsd"))


def tcx_schema() -> etree.XMLSchema:
    return _schema((TCX_NAMESPACE, "TrainingCenterDatabasev2.xsd"),
                   (ACTIVITY_EXTENSION_NAMESPACE, "ActivityExtensionv2.xsd"))


def assert_valid(document: bytes, schema: etree.XMLSchema) -> etree._Element:
    """Parse (no DTD, no network) and validate; the root. Fails naming libxml2's first errors."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    assert schema.validate(root), "\n".join(str(e) for e in list(schema.error_log)[:5])
    return root


def _ordered(samples: pl.DataFrame) -> pl.DataFrame:
    return samples.sort("sample_index") if "sample_index" in samples.columns else samples


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _time(start: datetime, offset: Any) -> datetime | None:
    return None if offset is None else start.astimezone(UTC) + timedelta(seconds=int(offset))


def _close(a: float | None, b: float | None, tolerance: float = 1e-9) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tolerance)


def _hr(value: Any) -> int | None:
    return int(value) if value is not None and 1 <= int(value) <= 255 else None


def expected_gpx_points(activity: Mapping[str, Any], samples: pl.DataFrame) -> list[dict[str, Any]]:
    """The samples a GPX file must hold, in order: those with a valid position."""
    points = []
    for row in _ordered(samples).iter_rows(named=True):
        lat, lon = _finite(row.get("lat")), _finite(row.get("lng"))
        if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
            continue
        points.append({"lat": lat, "lon": -180.0 if lon == 180.0 else lon, "ele": _finite(row.get("altitude_m")),
                       "time": _time(activity["start_date"], row.get("time_s")), "hr": _hr(row.get("heartrate_bpm")),
                       "watts": row.get("watts")})
    return points


def assert_gpx_round_trip(document: bytes, activity: Mapping[str, Any], samples: pl.DataFrame) -> int:
    """Valid GPX 1.1 whose points, read back by gpxpy, are the positioned samples: count, order, times,
    lat/lon, elevation, heart rate and power. Returns the number of points."""
    assert_valid(document, gpx_schema())
    gpx = gpxpy.parse(document.decode("utf-8"))
    assert len(gpx.tracks) == 1 and len(gpx.tracks[0].segments) == 1
    read = gpx.tracks[0].segments[0].points
    expected = expected_gpx_points(activity, samples)
    assert len(read) == len(expected)
    for i, (point, want) in enumerate(zip(read, expected, strict=True)):
        got_time = point.time.astimezone(UTC) if point.time is not None else None
        extensions = {e.tag: e for e in point.extensions}
        tpx = extensions.get(f"{_GPXTPX}TrackPointExtension")
        hr = tpx.findtext(f"{_GPXTPX}hr") if tpx is not None else None
        power = extensions.get(f"{{{POWER_NAMESPACE}}}power")
        assert (_close(point.latitude, want["lat"]) and _close(point.longitude, want["lon"])
                and _close(point.elevation, want["ele"]) and got_time == want["time"]
                and (int(hr) if hr is not None else None) == want["hr"]
                and (int(power.text) if power is not None else None) == (
                    want["watts"] if want["watts"] is not None and want["watts"] >= 0 else None)), (
            f"point {i}: read {point.latitude}, {point.longitude}, {point.elevation}, {got_time}, hr {hr}; "
            f"expected {want}")
    if activity.get("name"):
        assert gpx.tracks[0].name is not None
    return len(read)


def assert_tcx_round_trip(document: bytes, activity: Mapping[str, Any], samples: pl.DataFrame) -> int:
    """Valid TCX v2 with one activity and lap whose trackpoints are the samples with a time: count, order,
    times, positions, altitude, heart rate and watts. Returns the number of trackpoints."""
    root = assert_valid(document, tcx_schema())
    laps = root.findall(f".//{_TC}Lap")
    assert len(root.findall(f".//{_TC}Activity")) == 1 and len(laps) == 1
    read = laps[0].findall(f".//{_TC}Trackpoint")
    expected = [r for r in _ordered(samples).iter_rows(named=True) if r.get("time_s") is not None]
    assert len(read) == len(expected)
    for i, (point, want) in enumerate(zip(read, expected, strict=True)):
        time = datetime.fromisoformat(point.findtext(f"{_TC}Time").replace("Z", "+00:00"))
        lat, lon = point.findtext(f".//{_TC}LatitudeDegrees"), point.findtext(f".//{_TC}LongitudeDegrees")
        want_lat, want_lon = _finite(want.get("lat")), _finite(want.get("lng"))
        positioned = want_lat is not None and want_lon is not None and abs(want_lat) <= 90 and abs(want_lon) <= 180
        hr = point.findtext(f"{_TC}HeartRateBpm/{_TC}Value")
        watts = point.findtext(f".//{_AX}Watts")
        altitude = point.findtext(f"{_TC}AltitudeMeters")
        assert time == _time(activity["start_date"], want["time_s"]), f"trackpoint {i}: time {time}"
        assert (lat is not None) == positioned, f"trackpoint {i}: position {lat}, {lon} for {want_lat}, {want_lon}"
        if positioned:
            assert _close(float(lat), want_lat) and _close(float(lon), -180.0 if want_lon == 180 else want_lon)
        assert _close(float(altitude) if altitude else None, _finite(want.get("altitude_m"))), f"trackpoint {i}"
        assert (int(hr) if hr else None) == _hr(want.get("heartrate_bpm")), f"trackpoint {i}: hr {hr}"
        want_watts = want.get("watts")
        assert (int(watts) if watts else None) == (want_watts if want_watts is not None and want_watts >= 0 else None)
    return len(read)
