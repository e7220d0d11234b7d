"""Access to the real recorded Strava responses in ``../shared/strava/recordings`` (never copied here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SHARED_STRAVA = Path(__file__).resolve().parents[1].parent / "shared" / "strava"
RECORDINGS = SHARED_STRAVA / "recordings"


def cassette_bodies(relative: str) -> list[tuple[str, int, str]]:
    """``(uri, status, body text)`` of every interaction in a Ruby VCR or Python vcrpy cassette."""
    document = yaml.safe_load((RECORDINGS / relative).read_text(encoding="utf-8"))
    interactions = document.get("http_interactions") or document.get("interactions") or []
    out = []
    for item in interactions:
        response = item["response"]
        status = response["status"]["code"]
        body = response["body"].get("string", "")
        out.append((item["request"]["uri"], int(status), body))
    return out


def recorded_json(relative: str, index: int = 0) -> Any:
    """The JSON body of one interaction of a cassette, or of a plain JSON recording."""
    if relative.endswith(".json") or relative.endswith(".body"):
        return json.loads((RECORDINGS / relative).read_text(encoding="utf-8"))
    return json.loads(cassette_bodies(relative)[index][2])


def all_recorded_activities() -> list[dict[str, Any]]:
    """The 1,132 real activities of ``all_athlete_activities.yml``, in listing order."""
    activities: list[dict[str, Any]] = []
    for _, status, body in cassette_bodies("strava-ruby-client/client/all_athlete_activities.yml"):
        assert status == 200
        activities.extend(json.loads(body))
    return activities
