"""An activity's samples as a GPX 1.1 track.

One ``trkpt`` per sample with a position (GPX requires ``lat``/``lon``), in sample order, with ``ele`` and
``time`` (the activity's UTC start plus the sample's offset). Heart rate, cadence and air temperature go
in Garmin's TrackPointExtension v1 (``gpxtpx:hr``, ``gpxtpx:cad``, ``gpxtpx:atemp``: what Garmin, Strava,
gpxpy-based tools and FitTrackee read). Power goes in a ``power`` element beside it, the name readers look
for; GPX 1.1 only allows extension elements of *another* namespace than its own, so it is written in
``POWER_NAMESPACE`` (FitTrackee reads any ``...}power``; a bare ``<power>`` as Strava writes it fails
schema validation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from strava_pipeline.transforms.activity_files._xml import (
    group,
    join_document,
    lines_by_activity,
    optional,
    utc_text,
    xml_text,
)

__all__ = ["GPX_NAMESPACE", "POWER_NAMESPACE", "TRACKPOINT_EXTENSION_NAMESPACE", "gpx_lines", "gpx_text"]

GPX_NAMESPACE = "http://www.topografix.com/GPX/1/1"
TRACKPOINT_EXTENSION_NAMESPACE = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
#: The namespace of the per-point ``power`` element (watts); see the module docstring for why not GPX's own.
POWER_NAMESPACE = "urn:strava-pipeline:gpx:power:1"
CREATOR = "strava_pipeline"

_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<gpx xmlns="{GPX_NAMESPACE}" xmlns:gpxtpx="{TRACKPOINT_EXTENSION_NAMESPACE}" xmlns:pwr="{POWER_NAMESPACE}" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    f'xsi:schemaLocation="{GPX_NAMESPACE} http://www.topografix.com/GPX/1/1/gpx.xsd '
    f'{TRACKPOINT_EXTENSION_NAMESPACE} http://www.garmin.com/xmlschemas/TrackPointExtensionv1.xsd" '
    f'version="1.1" creator="{CREATOR}">\n'
)
GPX_TAIL = "</trkseg></trk>\n</gpx>\n"


def trackpoint() -> pl.Expr:
    """One ``trkpt`` line from a row of ``point_texts``."""
    tpx = group("<gpxtpx:TrackPointExtension>", [optional("temp", "<gpxtpx:atemp>", "</gpxtpx:atemp>"),
                                                 optional("hr", "<gpxtpx:hr>", "</gpxtpx:hr>"),
                                                 optional("cad", "<gpxtpx:cad>", "</gpxtpx:cad>")],
                "</gpxtpx:TrackPointExtension>", ["temp", "hr", "cad"])
    extensions = group("<extensions>", [optional("watts", "<pwr:power>", "</pwr:power>"), tpx], "</extensions>",
                       ["temp", "hr", "cad", "watts"])
    return pl.concat_str(
        pl.lit('<trkpt lat="'), pl.col("lat"), pl.lit('" lon="'), pl.col("lon"), pl.lit('">'),
        optional("ele", "<ele>", "</ele>"), optional("time", "<time>", "</time>"), extensions, pl.lit("</trkpt>"),
        ignore_nulls=True,
    )


def gpx_head(activity: Mapping[str, Any]) -> str:
    """The document up to its first track point: metadata (name, link to Strava, start) and the track."""
    name, sport = activity.get("name"), activity.get("sport_type")
    start = utc_text(activity["start_date"])
    activity_id = int(activity["activity_id"])
    named = f"<name>{xml_text(name)}</name>" if name else ""
    return (
        f"{_HEADER}<metadata>{named}"
        f'<link href="https://www.strava.com/activities/{activity_id}"><text>Strava activity {activity_id}</text>'
        f"</link><time>{start}</time></metadata>\n"
        f"<trk>{named}{f'<type>{xml_text(sport)}</type>' if sport else ''}<trkseg>\n"
    )


def gpx_lines(points: pl.DataFrame) -> dict[int, bytes]:
    """Activity id -> its track points' lines, from ``point_texts``; an activity without a position is absent."""
    return lines_by_activity(points.filter(pl.col("lat").is_not_null()), trackpoint())


def gpx_text(activity: Mapping[str, Any], lines: bytes) -> bytes:
    """The GPX 1.1 document of one activity, UTF-8, around its ``gpx_lines``."""
    return join_document(gpx_head(activity), lines, GPX_TAIL)
