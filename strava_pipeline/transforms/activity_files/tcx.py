"""An activity's samples as a Garmin Training Center (TCX v2) activity.

One ``Trackpoint`` per sample with a time (TCX requires one), in sample order: position, altitude,
distance, heart rate and (bike) cadence in TCX's own elements; speed, run cadence and power in Garmin's
ActivityExtension v2 (``TPX``: ``Speed``, ``RunCadence``, ``Watts``), as Garmin devices write them. No
lap of the recording is stored (neither Strava's streams nor our tables keep laps), so the activity is one
lap: its totals are Strava's summary figures where they exist (elapsed time, distance, calories, average
speed) and the samples' otherwise; heart-rate, cadence and power figures come from the samples. The
activity's name goes in the activity's ``Notes`` (TCX has no name field).
"""

from __future__ import annotations

import math
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

__all__ = ["ACTIVITY_EXTENSION_NAMESPACE", "TCX_NAMESPACE", "tcx_document", "tcx_sport"]

TCX_NAMESPACE = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
ACTIVITY_EXTENSION_NAMESPACE = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"

_RUNNING = {"Run", "TrailRun", "VirtualRun"}
_BIKING = {"Ride", "MountainBikeRide", "GravelRide", "EBikeRide", "EMountainBikeRide", "VirtualRide", "Velomobile",
           "Handcycle"}

_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<TrainingCenterDatabase xmlns="{TCX_NAMESPACE}" xmlns:ns3="{ACTIVITY_EXTENSION_NAMESPACE}" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    f'xsi:schemaLocation="{TCX_NAMESPACE} http://www.garmin.com/xmlschemas/TrainingCenterDatabasev2.xsd '
    f'{ACTIVITY_EXTENSION_NAMESPACE} http://www.garmin.com/xmlschemas/ActivityExtensionv2.xsd">\n'
)


def tcx_sport(sport_type: str | None) -> str:
    """TCX's three sports (``Running``, ``Biking``, ``Other``) for a Strava sport type."""
    if sport_type in _RUNNING:
        return "Running"
    if sport_type in _BIKING:
        return "Biking"
    return "Other"


def _trackpoint(running: bool) -> pl.Expr:
    tpx = group("<Extensions><ns3:TPX>", [optional("speed", "<ns3:Speed>", "</ns3:Speed>"),
                                          *([optional("cad", "<ns3:RunCadence>", "</ns3:RunCadence>")] if running
                                            else []),
                                          optional("watts", "<ns3:Watts>", "</ns3:Watts>")],
                "</ns3:TPX></Extensions>", ["speed", "cad", "watts"] if running else ["speed", "watts"])
    return pl.concat_str(
        pl.lit("<Trackpoint><Time>"), pl.col("time"), pl.lit("</Time>"),
        pl.concat_str(pl.lit("<Position><LatitudeDegrees>"), pl.col("lat"),
                      pl.lit("</LatitudeDegrees><LongitudeDegrees>"), pl.col("lon"),
                      pl.lit("</LongitudeDegrees></Position>")),
        optional("ele", "<AltitudeMeters>", "</AltitudeMeters>"),
        optional("distance", "<DistanceMeters>", "</DistanceMeters>"),
        optional("hr", "<HeartRateBpm><Value>", "</Value></HeartRateBpm>"),
        *([] if running else [optional("cad", "<Cadence>", "</Cadence>")]),
        tpx,
        pl.lit("</Trackpoint>"),
        ignore_nulls=True,
    )


def _number(value: float) -> str:
    """A lap total as an xsd:double without exponent, to the microunit."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _values(samples: pl.DataFrame, column: str) -> pl.Series:
    """The column's finite values (empty when the frame lacks it)."""
    if column not in samples.columns:
        return pl.Series(column, [], dtype=pl.Float64)
    values = samples.get_column(column).cast(pl.Float64).drop_nulls()
    return values.filter(values.is_finite())


def _whole(values: pl.Series, how: str) -> int | None:
    """The mean or max of integer texts (valid values only), rounded; None without any."""
    numbers = values.drop_nulls().cast(pl.Int64)
    if numbers.is_empty():
        return None
    return round(numbers.mean() if how == "mean" else numbers.max())  # type: ignore[arg-type]


def _lap(activity: Mapping[str, Any], points: pl.DataFrame, samples: pl.DataFrame, running: bool) -> tuple[str, str]:
    """The lap's elements before its ``Track`` and its ``Extensions`` after it."""
    offsets = _values(samples, "time_s")
    span = float(offsets.max() - offsets.min()) if offsets.len() else 0.0  # type: ignore[operator]
    total = _finite(activity.get("elapsed_time_s")) or span
    distance = _finite(activity.get("distance_m"))
    if distance is None:
        distances = _values(samples, "distance_m")
        distance = _finite(distances.max()) if distances.len() else None
    speeds = points.get_column("speed").drop_nulls().cast(pl.Float64)
    calories = _finite(activity.get("calories_kcal"))
    head = [f"<TotalTimeSeconds>{_number(max(total, 0.0))}</TotalTimeSeconds>",
            f"<DistanceMeters>{_number(distance or 0.0)}</DistanceMeters>"]
    if speeds.len():
        head.append(f"<MaximumSpeed>{_number(float(speeds.max()))}</MaximumSpeed>")  # type: ignore[arg-type]
    head.append(f"<Calories>{min(max(round(calories or 0), 0), 65535)}</Calories>")
    for element, how in (("AverageHeartRateBpm", "mean"), ("MaximumHeartRateBpm", "max")):
        if (bpm := _whole(points.get_column("hr"), how)) is not None:
            head.append(f"<{element}><Value>{bpm}</Value></{element}>")
    head.append("<Intensity>Active</Intensity>")
    cadence = _whole(points.get_column("cad"), "mean")
    if cadence is not None and not running:
        head.append(f"<Cadence>{cadence}</Cadence>")
    head.append("<TriggerMethod>Manual</TriggerMethod>")
    lx = []
    average_speed = _finite(activity.get("average_speed_mps"))
    if average_speed is not None:
        lx.append(f"<ns3:AvgSpeed>{_number(average_speed)}</ns3:AvgSpeed>")
    if running and cadence is not None:
        lx.append(f"<ns3:AvgRunCadence>{cadence}</ns3:AvgRunCadence>"
                  f"<ns3:MaxRunCadence>{_whole(points.get_column('cad'), 'max')}</ns3:MaxRunCadence>")
    if (watts := _whole(points.get_column("watts"), "mean")) is not None:
        lx.append(f"<ns3:AvgWatts>{watts}</ns3:AvgWatts><ns3:MaxWatts>{_whole(points.get_column('watts'), 'max')}"
                  "</ns3:MaxWatts>")
    tail = f"<Extensions><ns3:LX>{''.join(lx)}</ns3:LX></Extensions>" if lx else ""
    return "".join(head), tail


def tcx_document(activity: Mapping[str, Any], samples: pl.DataFrame, *, points: pl.DataFrame | None = None
                 ) -> bytes | None:
    """The TCX v2 document of one activity (one lap), UTF-8; None when no sample has a time.

    ``activity``: a row of ``activities`` (at least ``activity_id`` and ``start_date``, a UTC datetime; the
    summary figures when known). ``samples``: that activity's ``activity_streams`` rows. ``points``: their
    ``point_texts``, when already made.
    """
    start = activity["start_date"]
    if points is None:
        points = point_texts(samples, start)
    timed = points.filter(pl.col("time").is_not_null())
    if timed.is_empty():
        return None
    running = tcx_sport(activity.get("sport_type")) == "Running"
    head, tail = _lap(activity, timed, samples, running)
    name = activity.get("name")
    notes = f"<Notes>{xml_text(name)}</Notes>" if name else ""
    begin = utc_text(start)
    return (
        f'{_HEADER}<Activities><Activity Sport="{tcx_sport(activity.get("sport_type"))}"><Id>{begin}</Id>\n'
        f'<Lap StartTime="{begin}">{head}<Track>\n'
        + joined_lines(timed, _trackpoint(running))
        + f"</Track>{tail}</Lap>{notes}</Activity></Activities>\n</TrainingCenterDatabase>\n"
    ).encode("utf-8")
