"""Strava's exact error bodies and the athlete/gear/stats/zones JSON renderers.

Error bodies are byte-for-byte the ones seen in real recordings (see API-FACTS.md), because
pipelines branch on them: e.g. a refresh rejected with `RefreshToken.refresh_token invalid` must
trigger re-authorisation, not a retry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from strava_pipeline.simulator.dataset import Activity, Athlete, Gear


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def fault(message: str, resource: str | None = None, field: str = "", code: str = "invalid") -> bytes:
    errors = [] if resource is None else [{"resource": resource, "field": field, "code": code}]
    return dumps({"message": message, "errors": errors})


INVALID_TOKEN = fault("Authorization Error", "Athlete", "access_token")
RATE_LIMITED = fault("Rate Limit Exceeded", "Application", "rate limit", "exceeded")
RESOURCE_NOT_FOUND = fault("Resource Not Found")
SERVER_ERROR = dumps({"message": "error"})
#: What every call answers since June 2026 when the API application's owner holds no paid subscription.
APP_INACTIVE = fault("Forbidden", "Application", "Status", "Inactive")
MALFORMED = b"<html><head><title>502 Bad Gateway</title></head><body>upstream reset</body></html>"


def missing_scope(field: str) -> bytes:
    return fault("Authorization Error", "AccessToken", field, "missing")


def not_found(resource: str, field: str = "id") -> bytes:
    return fault("Record Not Found", resource, field)


def bad_request(resource: str, field: str) -> bytes:
    return fault("Bad Request", resource, field)


def summary_athlete(a: Athlete) -> dict[str, Any]:
    """SummaryAthlete (resource_state 2), as in the code-exchange token response."""
    pic = f"https://dgalywyr863hv.cloudfront.net/pictures/athletes/{a.id}/1/2"
    return {
        "id": a.id, "username": a.username, "resource_state": 2, "firstname": a.firstname,
        "lastname": a.lastname, "bio": "Synthetic athlete 🤖 served by strava_pipeline's simulator.",
        "city": a.city, "state": a.state, "country": a.country, "sex": a.sex, "premium": True,
        "summit": True, "created_at": a.created_at, "updated_at": "2025-09-27T12:57:32Z",
        "badge_type_id": 1, "weight": a.weight, "profile_medium": f"{pic}/medium.jpg",
        "profile": f"{pic}/large.jpg", "friend": None, "follower": None,
    }


def summary_gear(g: Gear, distance: float) -> dict[str, Any]:
    return {
        "id": g.id, "primary": g.primary, "name": g.name, "nickname": g.name.split()[0],
        "resource_state": 2, "retired": g.retired, "distance": round(distance),
        "converted_distance": round(distance / 1000, 1),
    }


def detailed_gear(g: Gear, distance: float) -> dict[str, Any]:
    out = summary_gear(g, distance)
    out["resource_state"] = 3
    out["brand_name"] = g.brand
    out["model_name"] = g.model
    out["description"] = f"{g.name} ({'bike' if g.id.startswith('b') else 'shoes'})"
    if g.id.startswith("b"):
        out["frame_type"] = g.frame_type
        out["weight"] = g.weight
    else:
        out["notification_distance"] = 0
    return out


def detailed_athlete(a: Athlete, gear_distance: dict[str, float]) -> dict[str, Any]:
    out = summary_athlete(a)
    out["resource_state"] = 3
    out.update({
        "blocked": False, "can_follow": True, "follower_count": 12, "friend_count": 34,
        "mutual_friend_count": 0, "athlete_type": 1, "date_preference": "%m/%d/%Y",
        "measurement_preference": "meters", "clubs": [], "postable_clubs_count": 0, "ftp": a.ftp,
        "bikes": [summary_gear(g, gear_distance.get(g.id, 0.0)) for g in a.gear if g.id.startswith("b")],
        "shoes": [summary_gear(g, gear_distance.get(g.id, 0.0)) for g in a.gear if g.id.startswith("g")],
    })
    return out


def zones(a: Athlete) -> dict[str, Any]:
    """Heart-rate zones from max HR (Strava's default 5 zones) and power zones from FTP."""
    m = a.max_hr
    cuts = [round(m * f) for f in (0.59, 0.78, 0.87, 0.97)]
    hr = [{"min": 0, "max": cuts[0]}] + [{"min": lo, "max": hi} for lo, hi in pairwise(cuts)]
    hr.append({"min": cuts[-1], "max": -1})
    p = a.ftp
    pcuts = [round(p * f) for f in (0.55, 0.75, 0.90, 1.05, 1.20, 1.50)]
    power = [{"min": 0, "max": pcuts[0]}]
    power += [{"min": lo + 1, "max": hi} for lo, hi in pairwise(pcuts)]
    power.append({"min": pcuts[-1] + 1, "max": -1})
    return {"heart_rate": {"custom_zones": False, "zones": hr}, "power": {"zones": power}}


def stats(acts: list[Activity], now: float) -> dict[str, Any]:
    """ActivityStats over Everyone-visible activities: recent (4 weeks), year to date, all time."""
    now_dt = datetime.fromtimestamp(now, UTC)
    recent_from = now_dt - timedelta(days=28)
    year_from = datetime(now_dt.year, 1, 1, tzinfo=UTC)
    groups = {"ride": ("Ride", "VirtualRide", "EBikeRide"), "run": ("Run", "VirtualRun"), "swim": ("Swim",)}
    out: dict[str, Any] = {}
    biggest_ride = biggest_climb = 0.0
    visible = []
    for act in acts:
        s = act.summary()
        if s.get("visibility") != "everyone":
            continue
        visible.append((act, s))
        if s["type"] in groups["ride"]:
            biggest_ride = max(biggest_ride, s["distance"])
        biggest_climb = max(biggest_climb, s.get("total_elevation_gain") or 0.0)
    for period, since in (("recent", recent_from), ("ytd", year_from), ("all", None)):
        for group, types in groups.items():
            total = {"count": 0, "distance": 0.0, "moving_time": 0, "elapsed_time": 0, "elevation_gain": 0.0}
            achievements = 0
            for act, s in visible:
                if s["type"] not in types or (since is not None and act.start_utc < since):
                    continue
                total["count"] += 1
                total["distance"] += s["distance"]
                total["moving_time"] += s["moving_time"]
                total["elapsed_time"] += s["elapsed_time"]
                total["elevation_gain"] += s.get("total_elevation_gain") or 0.0
                achievements += s["achievement_count"]
            total["distance"] = round(total["distance"], 1)
            total["elevation_gain"] = round(total["elevation_gain"], 1)
            if period == "recent":
                total["achievement_count"] = achievements
            out[f"{period}_{group}_totals"] = total
    out["biggest_ride_distance"] = biggest_ride
    out["biggest_climb_elevation_gain"] = round(biggest_climb, 1)
    return out
