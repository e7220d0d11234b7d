"""DetailedActivity extras (laps, splits, best efforts, full polyline) derived from the streams.

They are computed from the very samples the streams endpoint serves, so a pipeline that
cross-checks laps against streams sees consistent indices and distances.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import timedelta
from itertools import pairwise
from typing import Any

import polyline

from strava_pipeline.simulator.dataset import Activity, iso_z

MILE = 1609.34
BEST_EFFORTS = (
    ("400m", 400), ("1/2 mile", 804.67), ("1k", 1000), ("1 mile", MILE), ("2 mile", 2 * MILE),
    ("5k", 5000), ("10k", 10000), ("15k", 15000), ("10 mile", 10 * MILE), ("20k", 20000),
    ("Half-Marathon", 21097.5), ("30k", 30000), ("Marathon", 42195),
)


def _segment(streams: dict[str, list[Any]], lo: int, hi: int) -> dict[str, Any]:
    """Totals over samples lo..hi inclusive."""
    t, d, mv = streams["time"], streams["distance"], streams["moving"]
    elapsed = t[hi] - t[lo]
    moving = sum(t[i] - t[i - 1] for i in range(lo + 1, hi + 1) if mv[i])
    dist = round(d[hi] - d[lo], 1)
    out: dict[str, Any] = {"elapsed_time": elapsed, "moving_time": moving, "distance": dist}
    out["average_speed"] = round(dist / moving, 2) if moving else 0.0
    vel = streams["velocity_smooth"][lo : hi + 1]
    out["max_speed"] = round(max(vel), 3) if vel else 0.0
    alt = streams.get("altitude")
    if alt:
        seg = alt[lo : hi + 1]
        out["elevation_difference"] = round(seg[-1] - seg[0], 1)
        out["total_elevation_gain"] = round(
            sum(max(0.0, b - a) for a, b in pairwise(seg)), 1
        )
    else:
        out["elevation_difference"] = 0.0
        out["total_elevation_gain"] = 0.0
    hr = streams.get("heartrate")
    if hr:
        idx = [i for i in range(lo, hi + 1) if mv[i]] or list(range(lo, hi + 1))
        out["average_heartrate"] = round(sum(hr[i] for i in idx) / len(idx), 1)
        out["max_heartrate"] = float(max(hr[lo : hi + 1]))
    cad = streams.get("cadence")
    if cad:
        idx = [i for i in range(lo, hi + 1) if mv[i]] or list(range(lo, hi + 1))
        out["average_cadence"] = round(sum(cad[i] for i in idx) / len(idx), 1)
    watts = streams.get("watts")
    if watts:
        out["average_watts"] = round(sum(watts[lo : hi + 1]) / (hi - lo + 1), 1)
    return out


def _cut(streams: dict[str, list[Any]], every: float) -> list[tuple[int, int]]:
    """Index ranges that each cover `every` metres (the last one shorter)."""
    d = streams["distance"]
    ranges, lo, mark = [], 0, every
    for i, v in enumerate(d):
        if v >= mark and i > lo:
            ranges.append((lo, i))
            lo, mark = i, mark + every
    if lo < len(d) - 1:
        ranges.append((lo, len(d) - 1))
    return ranges or [(0, len(d) - 1)]


def derive(act: Activity, streams: dict[str, list[Any]]) -> dict[str, Any]:
    """Laps, splits, best efforts and the full-resolution polyline for one activity."""
    n = len(streams["time"])
    prof = act.profile
    if act.distance > 0 and prof.type == "Run":
        lap_ranges = _cut(streams, 1000)
    elif act.distance > 0 and prof.type == "Ride" and not act.trainer:
        lap_ranges = _cut(streams, 5000)
    else:
        lap_ranges = [(0, n - 1)]
    laps = []
    for k, (lo, hi) in enumerate(lap_ranges, start=1):
        seg = _segment(streams, lo, hi)
        seg.pop("elevation_difference")
        seg.update({"lap_index": k, "split": k, "start_index": lo, "end_index": hi,
                    "start_offset": streams["time"][lo], "device_watts": act.device_watts})
        if prof.type == "Run":
            seg["pace_zone"] = 2
        laps.append(seg)
    out: dict[str, Any] = {"laps": laps}
    if prof.foot and act.distance > 0:
        for key, every in (("splits_metric", 1000.0), ("splits_standard", MILE)):
            splits = []
            for k, (lo, hi) in enumerate(_cut(streams, every), start=1):
                seg = _segment(streams, lo, hi)
                grade_adj = seg["average_speed"] * (1 + max(0.0, seg["elevation_difference"]) / 1000)
                split = {
                    "distance": seg["distance"], "elapsed_time": seg["elapsed_time"],
                    "elevation_difference": seg["elevation_difference"], "moving_time": seg["moving_time"],
                    "split": k, "average_speed": seg["average_speed"],
                    "average_grade_adjusted_speed": round(grade_adj, 2), "pace_zone": 2,
                }
                if "average_heartrate" in seg:
                    split["average_heartrate"] = seg["average_heartrate"]
                splits.append(split)
            out[key] = splits
    if prof.type == "Run" and act.distance > 0:
        out["best_efforts"] = _best_efforts(streams)
    if "latlng" in streams:
        step = max(1, n // 1500)
        out["polyline"] = polyline.encode([*streams["latlng"][::step], streams["latlng"][-1]], 5)
    return out


def _best_efforts(streams: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Fastest window of each standard distance (two pointers over the distance stream)."""
    t, d = streams["time"], streams["distance"]
    efforts = []
    for name, length in BEST_EFFORTS:
        if d[-1] < length:
            break
        best: tuple[int, int, int] | None = None
        lo = 0
        for hi in range(len(d)):
            while lo < hi and d[hi] - d[lo + 1] >= length:
                lo += 1
            if d[hi] - d[lo] >= length:
                span = t[hi] - t[lo]
                if best is None or span < best[0]:
                    best = (span, lo, hi)
        if best is not None:
            efforts.append({"name": name, "distance": length, "elapsed_time": best[0],
                            "start_index": best[1], "end_index": best[2]})
    return efforts


def _effort_id(act: Activity, salt: str) -> int:
    return 10**10 + int(hashlib.sha1(f"{act.id}:{salt}".encode()).hexdigest()[:12], 16) % (9 * 10**10)


def _pr_rank(act: Activity, salt: str) -> int | None:
    """1-3 for roughly half the efforts (a personal record or close to it), else null."""
    rank = _effort_id(act, "pr" + salt) % 6
    return rank if 1 <= rank <= 3 else None


def laps(act: Activity, derived: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Lap[] as /activities/{id}/laps serves them."""
    out = []
    for lap in derived["laps"]:
        start = act.start_utc + timedelta(seconds=lap["start_offset"])
        local_offset = timedelta(seconds=summary["utc_offset"])
        body = {
            "id": _effort_id(act, f"lap{lap['lap_index']}"),
            "resource_state": 2,
            "name": f"Lap {lap['lap_index']}",
            "activity": {"id": act.id, "visibility": summary["visibility"], "resource_state": 1},
            "athlete": {"id": act.athlete_id, "resource_state": 1},
            "elapsed_time": lap["elapsed_time"],
            "moving_time": lap["moving_time"],
            "start_date": iso_z(start),
            "start_date_local": iso_z((start + local_offset).replace(tzinfo=None)),
        }
        body.update({k: v for k, v in lap.items() if k not in ("start_offset",) and k not in body})
        out.append(body)
    return out


def detailed(act: Activity, derived: dict[str, Any] | None, summary: dict[str, Any],
             gear: dict[str, Any] | None) -> dict[str, Any]:
    """DetailedActivity (resource_state 3) built on the summary."""
    out = copy.deepcopy(summary)
    out["resource_state"] = 3
    out["map"]["resource_state"] = 3
    out["map"]["polyline"] = (derived or {}).get("polyline", "" if not act.manual else None) or ""
    out["description"] = act.description
    out["calories"] = act.calories
    out["perceived_exertion"] = 1 + act.id % 10 if act.manual else None  # manual entries ask for RPE
    out["prefer_perceived_exertion"] = False
    out["segment_efforts"] = []
    if derived is not None:
        if "splits_metric" in derived:
            out["splits_metric"] = derived["splits_metric"]
            out["splits_standard"] = derived["splits_standard"]
        out["laps"] = laps(act, derived, summary)
        if "best_efforts" in derived:
            efforts = []
            for e in derived["best_efforts"]:
                start = act.start_utc + timedelta(seconds=0)
                efforts.append({
                    "id": _effort_id(act, e["name"]), "resource_state": 2, "name": e["name"],
                    "activity": {"id": act.id, "visibility": summary["visibility"], "resource_state": 1},
                    "athlete": {"id": act.athlete_id, "resource_state": 1},
                    "elapsed_time": e["elapsed_time"], "moving_time": e["elapsed_time"],
                    "start_date": iso_z(start), "start_date_local": summary["start_date_local"],
                    "distance": e["distance"], "pr_rank": _pr_rank(act, e["name"]),
                    "achievements": [{"type_id": 3, "type": "pr", "rank": _pr_rank(act, e["name"])}]
                    if _pr_rank(act, e["name"]) else [],
                    "start_index": e["start_index"], "end_index": e["end_index"],
                })
            out["best_efforts"] = efforts
    else:
        out["laps"] = []
        if act.profile.type == "Run":
            out["best_efforts"] = []
    out["private_note"] = None
    out["gear"] = gear
    if act.photos:
        out["photos"] = {
            "primary": {
                "unique_id": f"{act.id:x}-photo",
                "urls": {"600": f"https://example.invalid/photos/{act.id}-600.jpg",
                         "100": f"https://example.invalid/photos/{act.id}-100.jpg"},
                "source": 1, "media_type": 1,
            },
            "use_primary_photo": True, "count": act.photos,
        }
    else:
        out["photos"] = {"primary": None, "count": 0}
    out["stats_visibility"] = [{"type": t, "visibility": "everyone"}
                               for t in ("heart_rate", "pace", "power", "speed", "calories")]
    out["hide_from_home"] = False
    out["device_name"] = act.device_name
    out["embed_token"] = hashlib.sha1(f"embed:{act.id}".encode()).hexdigest()
    if act.profile.type == "Run":
        speed = summary["average_speed"] if not act.manual else 0.0
        out["similar_activities"] = {
            "effort_count": 3, "average_speed": speed, "min_average_speed": round(speed * 0.9, 3),
            "mid_average_speed": speed, "max_average_speed": round(speed * 1.1, 3), "pr_rank": _pr_rank(act, "similar"),
            "frequency_milestone": None,
            "trend": {"speeds": [round(speed * 0.95, 3), speed, round(speed * 1.05, 3)],
                      "current_activity_index": 1, "min_speed": round(speed * 0.95, 3),
                      "mid_speed": speed, "max_speed": round(speed * 1.05, 3), "direction": 0},
            "resource_state": 2,
        }
    zones = ["heartrate"] if summary.get("has_heartrate") else []
    if act.profile.type == "Run":
        zones.append("pace")
    if act.device_watts:
        zones.append("power")
    out["available_zones"] = zones
    return out
