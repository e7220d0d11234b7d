"""GPX 1.1 and TCX v2 activity files for the export archive.

Written as text by hand (a few f-strings per sample) because an XML tree of thousands of trackpoints
costs far more than the samples are worth; every name goes through `text()`, so names with emoji,
`<`, `&` or control characters still make well-formed XML. Numbers are written with `repr`, the
shortest text that reads back as the very float the streams endpoint serves.
"""

from __future__ import annotations

import re
import time
from typing import Any
from xml.sax.saxutils import escape

from strava_pipeline.simulator.export_fit import FileMeta

#: Stream types each format can carry (GPX has no distance or speed; TCX no temperature).
GPX_STREAMS = ("time", "latlng", "altitude", "heartrate", "cadence", "watts", "temp")
TCX_STREAMS = ("time", "latlng", "altitude", "distance", "velocity_smooth", "heartrate", "cadence", "watts")

#: Strava's TCX files start with about ten spaces before the XML declaration (see EXPORT-FACTS.md).
TCX_LEAD = " " * 10

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_GPX_TYPES = {"Run": "running", "TrailRun": "running", "VirtualRun": "running", "Ride": "cycling",
              "MountainBikeRide": "cycling", "GravelRide": "cycling", "EBikeRide": "cycling",
              "VirtualRide": "cycling", "Hike": "hiking", "Walk": "walking", "Swim": "swimming"}
_TCX_SPORTS = {"Run": "Running", "TrailRun": "Running", "VirtualRun": "Running", "Ride": "Biking",
               "MountainBikeRide": "Biking", "GravelRide": "Biking", "EBikeRide": "Biking", "VirtualRide": "Biking"}


def text(value: str) -> str:
    """Character data for XML: escaped, minus the characters XML 1.0 forbids."""
    return escape(_NOT_XML.sub("", value))


def iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _times(meta: FileMeta, streams: dict[str, list[Any]]) -> list[str]:
    start = meta.start_epoch
    return [iso(start + t) for t in streams["time"]]


def gpx_bytes(meta: FileMeta, streams: dict[str, list[Any]]) -> bytes:
    """GPX 1.1 as Strava writes it: one trkpt per sample, Garmin TrackPointExtension v1 for hr/cad/atemp,
    and a bare `power` element (Strava's own GPX export does the same)."""
    latlng = streams["latlng"]
    alt = streams.get("altitude")
    hr, cad, temp, watts = (streams.get(k) for k in ("heartrate", "cadence", "temp", "watts"))
    stamps = _times(meta, streams)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx creator="StravaGPX" version="1.1" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd '
        'http://www.garmin.com/xmlschemas/GpxExtensions/v3 http://www.garmin.com/xmlschemas/GpxExtensionsv3.xsd '
        'http://www.garmin.com/xmlschemas/TrackPointExtension/v1 '
        'http://www.garmin.com/xmlschemas/TrackPointExtensionv1.xsd" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1" '
        'xmlns:gpxx="http://www.garmin.com/xmlschemas/GpxExtensions/v3">\n',
        f" <metadata>\n  <time>{iso(meta.start_epoch)}</time>\n </metadata>\n",
        f" <trk>\n  <name>{text(meta.name)}</name>\n  <type>{_GPX_TYPES.get(meta.sport_type, 'workout')}</type>\n"
        "  <trkseg>\n",
    ]
    has_tpx = hr is not None or cad is not None or temp is not None
    for i, (lat, lng) in enumerate(latlng):
        point = [f'   <trkpt lat="{lat!r}" lon="{lng!r}">\n']
        if alt is not None:
            point.append(f"    <ele>{alt[i]!r}</ele>\n")
        point.append(f"    <time>{stamps[i]}</time>\n")
        if has_tpx or watts is not None:
            point.append("    <extensions>\n")
            if watts is not None:
                point.append(f"     <power>{watts[i]}</power>\n")
            if has_tpx:
                point.append("     <gpxtpx:TrackPointExtension>\n")
                if temp is not None:
                    point.append(f"      <gpxtpx:atemp>{temp[i]}</gpxtpx:atemp>\n")
                if hr is not None:
                    point.append(f"      <gpxtpx:hr>{hr[i]}</gpxtpx:hr>\n")
                if cad is not None:
                    point.append(f"      <gpxtpx:cad>{cad[i]}</gpxtpx:cad>\n")
                point.append("     </gpxtpx:TrackPointExtension>\n")
            point.append("    </extensions>\n")
        point.append("   </trkpt>\n")
        out.append("".join(point))
    out.append("  </trkseg>\n </trk>\n</gpx>\n")
    return "".join(out).encode("utf-8")


def tcx_bytes(meta: FileMeta, streams: dict[str, list[Any]]) -> bytes:
    """TCX v2 with one Trackpoint per sample (ActivityExtension v2 `TPX` for speed and watts), led by
    ten spaces like Strava's TCX files."""
    latlng = streams.get("latlng")
    alt, dist, speed = streams.get("altitude"), streams["distance"], streams.get("velocity_smooth")
    hr, cad, watts = streams.get("heartrate"), streams.get("cadence"), streams.get("watts")
    stamps = _times(meta, streams)
    start = iso(meta.start_epoch)
    lap = [f'   <Lap StartTime="{start}">\n',
           f"    <TotalTimeSeconds>{float(meta.moving)!r}</TotalTimeSeconds>\n",
           f"    <DistanceMeters>{float(dist[-1])!r}</DistanceMeters>\n"]
    if speed:
        lap.append(f"    <MaximumSpeed>{max(speed)!r}</MaximumSpeed>\n")
    lap.append(f"    <Calories>{round(meta.calories or 0)}</Calories>\n")
    if hr and meta.average_heartrate is not None:
        lap.append(f"    <AverageHeartRateBpm>\n     <Value>{round(meta.average_heartrate)}</Value>\n"
                   "    </AverageHeartRateBpm>\n")
        lap.append(f"    <MaximumHeartRateBpm>\n     <Value>{max(hr)}</Value>\n    </MaximumHeartRateBpm>\n")
    lap.append("    <Intensity>Active</Intensity>\n    <TriggerMethod>Manual</TriggerMethod>\n    <Track>\n")
    out = [
        f'{TCX_LEAD}<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TrainingCenterDatabase xsi:schemaLocation="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2 '
        'http://www.garmin.com/xmlschemas/TrainingCenterDatabasev2.xsd" '
        'xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2" '
        'xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n',
        f' <Activities>\n  <Activity Sport="{_TCX_SPORTS.get(meta.sport_type, "Other")}">\n   <Id>{start}</Id>\n',
        "".join(lap),
    ]
    for i, stamp in enumerate(stamps):
        point = [f"     <Trackpoint>\n      <Time>{stamp}</Time>\n"]
        if latlng is not None:
            lat, lng = latlng[i]
            point.append(f"      <Position>\n       <LatitudeDegrees>{lat!r}</LatitudeDegrees>\n"
                         f"       <LongitudeDegrees>{lng!r}</LongitudeDegrees>\n      </Position>\n")
        if alt is not None:
            point.append(f"      <AltitudeMeters>{alt[i]!r}</AltitudeMeters>\n")
        point.append(f"      <DistanceMeters>{dist[i]!r}</DistanceMeters>\n")
        if hr is not None:
            point.append(f"      <HeartRateBpm>\n       <Value>{hr[i]}</Value>\n      </HeartRateBpm>\n")
        if cad is not None:
            point.append(f"      <Cadence>{cad[i]}</Cadence>\n")
        if speed is not None or watts is not None:
            point.append("      <Extensions>\n       <ns3:TPX>\n")
            if speed is not None:
                point.append(f"        <ns3:Speed>{speed[i]!r}</ns3:Speed>\n")
            if watts is not None:
                point.append(f"        <ns3:Watts>{watts[i]}</ns3:Watts>\n")
            point.append("       </ns3:TPX>\n      </Extensions>\n")
        point.append("     </Trackpoint>\n")
        out.append("".join(point))
    out.append(f"    </Track>\n   </Lap>\n   <Notes>{text(meta.name)}</Notes>\n")
    creator = text(meta.device_name or "Strava")
    out.append(f'   <Creator xsi:type="Device_t">\n    <Name>{creator}</Name>\n    <UnitId>{meta.serial}</UnitId>\n'
               "    <ProductID>1</ProductID>\n    <Version>\n     <VersionMajor>12</VersionMajor>\n"
               "     <VersionMinor>3</VersionMinor>\n     <BuildMajor>0</BuildMajor>\n"
               "     <BuildMinor>0</BuildMinor>\n    </Version>\n   </Creator>\n")
    out.append("  </Activity>\n </Activities>\n</TrainingCenterDatabase>\n")
    return "".join(out).encode("utf-8")
