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
from collections.abc import Collection, Mapping
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

__all__ = ["ACTIVITY_EXTENSION_NAMESPACE", "TCX_NAMESPACE", "lap_figures", "tcx_lines", "tcx_sport", "tcx_text"]

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
    """One ``Trackpoint`` line from a row of ``point_texts`` (cadence as run or bike cadence)."""
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


def tcx_lines(points: pl.DataFrame, running: Collection[int]) -> dict[int, bytes]:
    """Activity id -> its track points' lines, from ``point_texts``; ``running``: the ids whose sport is
    ``Running`` (their cadence is run cadence). An activity without a timed sample is absent."""
    timed = points.filter(pl.col("time").is_not_null())
    runs = pl.col("activity_id").is_in(list(running))
    return {**lines_by_activity(timed.filter(runs), _trackpoint(True)),
            **lines_by_activity(timed.filter(~runs), _trackpoint(False))}


def lap_figures(points: pl.DataFrame) -> dict[int, dict[str, Any]]:
    """Activity id -> the figures of its lap that come from samples, from ``point_texts``: ``span_s`` (first
    to last offset), ``distance_m`` (largest), and the largest speed and the mean and largest heart rate,
    cadence and power of the timed samples (None where there is none)."""
    timed = pl.col("time").is_not_null()
    whole = {column: pl.col(column).filter(timed).cast(pl.Int64) for column in ("hr", "cad", "watts")}
    frame = points.group_by("activity_id").agg(
        span_s=pl.col("offset_s").max() - pl.col("offset_s").min(),
        distance_m=pl.col("distance_m").max(),
        speed_max=pl.col("speed").filter(timed).cast(pl.Float64).max(),
        **{f"{column}_mean": values.mean() for column, values in whole.items()},
        **{f"{column}_max": values.max() for column, values in whole.items()},
    )
    return {row.pop("activity_id"): row for row in frame.iter_rows(named=True)}


def _number(value: float) -> str:
    """A lap total as an xsd:double without exponent, to the microunit."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def _lap(activity: Mapping[str, Any], figures: Mapping[str, Any], running: bool) -> tuple[str, str]:
    """The lap's elements before its ``Track`` and its ``Extensions`` after it."""
    total = _finite(activity.get("elapsed_time_s")) or figures["span_s"] or 0.0
    distance = _finite(activity.get("distance_m"))
    if distance is None:
        distance = figures["distance_m"]
    calories = _finite(activity.get("calories_kcal"))
    head = [f"<TotalTimeSeconds>{_number(max(total, 0.0))}</TotalTimeSeconds>",
            f"<DistanceMeters>{_number(distance or 0.0)}</DistanceMeters>"]
    if figures["speed_max"] is not None:
        head.append(f"<MaximumSpeed>{_number(figures['speed_max'])}</MaximumSpeed>")
    head.append(f"<Calories>{min(max(round(calories or 0), 0), 65535)}</Calories>")
    for element, figure in (("AverageHeartRateBpm", "hr_mean"), ("MaximumHeartRateBpm", "hr_max")):
        if (bpm := _rounded(figures[figure])) is not None:
            head.append(f"<{element}><Value>{bpm}</Value></{element}>")
    head.append("<Intensity>Active</Intensity>")
    cadence = _rounded(figures["cad_mean"])
    if cadence is not None and not running:
        head.append(f"<Cadence>{cadence}</Cadence>")
    head.append("<TriggerMethod>Manual</TriggerMethod>")
    lx = []
    average_speed = _finite(activity.get("average_speed_mps"))
    if average_speed is not None:
        lx.append(f"<ns3:AvgSpeed>{_number(average_speed)}</ns3:AvgSpeed>")
    if running and cadence is not None:
        lx.append(f"<ns3:AvgRunCadence>{cadence}</ns3:AvgRunCadence><ns3:MaxRunCadence>{figures['cad_max']}"
                  "</ns3:MaxRunCadence>")
    if (watts := _rounded(figures["watts_mean"])) is not None:
        lx.append(f"<ns3:AvgWatts>{watts}</ns3:AvgWatts><ns3:MaxWatts>{figures['watts_max']}</ns3:MaxWatts>")
    tail = f"<Extensions><ns3:LX>{''.join(lx)}</ns3:LX></Extensions>" if lx else ""
    return "".join(head), tail


def tcx_text(activity: Mapping[str, Any], lines: bytes, figures: Mapping[str, Any]) -> bytes:
    """The TCX v2 document of one activity (one lap), UTF-8, around its ``tcx_lines`` and ``lap_figures``.

    ``activity``: a row of ``activities`` (at least ``activity_id`` and ``start_date``, a UTC datetime; the
    summary figures when known).
    """
    sport = tcx_sport(activity.get("sport_type"))
    head, tail = _lap(activity, figures, sport == "Running")
    name = activity.get("name")
    notes = f"<Notes>{xml_text(name)}</Notes>" if name else ""
    begin = utc_text(activity["start_date"])
    return join_document(
        f'{_HEADER}<Activities><Activity Sport="{sport}"><Id>{begin}</Id>\n<Lap StartTime="{begin}">{head}<Track>\n',
        lines,
        f"</Track>{tail}</Lap>{notes}</Activity></Activities>\n</TrainingCenterDatabase>\n",
    )
