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
    joined_lines,
    optional,
    point_texts,
    utc_text,
    xml_text,
)

__all__ = ["GPX_NAMESPACE", "POWER_NAMESPACE", "TRACKPOINT_EXTENSION_NAMESPACE", "gpx_document"]

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


def _trackpoint() -> pl.Expr:
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


def gpx_document(activity: Mapping[str, Any], samples: pl.DataFrame, *, points: pl.DataFrame | None = None
                 ) -> bytes | None:
    """The GPX 1.1 document of one activity, UTF-8; None when no sample has a position (an indoor session).

    ``activity``: a row of ``activities`` (at least ``activity_id`` and ``start_date``, a UTC datetime;
    ``name`` and ``sport_type`` when known). ``samples``: that activity's ``activity_streams`` rows (any
    subset of its columns; ``sample_index`` orders them). ``points``: their ``point_texts``, when already made.
    """
    if points is None:
        points = point_texts(samples, activity["start_date"])
    points = points.filter(pl.col("lat").is_not_null())
    if points.is_empty():
        return None
    name, sport = activity.get("name"), activity.get("sport_type")
    start = utc_text(activity["start_date"])
    activity_id = int(activity["activity_id"])
    named = f"<name>{xml_text(name)}</name>" if name else ""
    head = (
        f"{_HEADER}<metadata>{named}"
        f'<link href="https://www.strava.com/activities/{activity_id}"><text>Strava activity {activity_id}</text>'
        f"</link><time>{start}</time></metadata>\n"
        f"<trk>{named}{f'<type>{xml_text(sport)}</type>' if sport else ''}<trkseg>\n"
    )
    return (head + joined_lines(points, _trackpoint()) + "</trkseg></trk>\n</gpx>\n").encode("utf-8")
