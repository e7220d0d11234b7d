"""Test helpers: GPX files made with gpxpy (the reader FitTrackee uses), and a user connected to a FitTrackee
through the product's own OAuth2 code (authorisation URL, consent, code exchange)."""

from __future__ import annotations

import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import gpxpy
import gpxpy.gpx

from strava_pipeline.fittrackee import SCOPE, FitTrackeeClient, FitTrackeeTokenStore, pkce_pair
from strava_pipeline_tests.fittrackee.instance import FitTrackeeInstance

REDIRECT_URI = "http://127.0.0.1:8722/callback"


def write_gpx(path: Path, start: datetime, *, seconds: int = 1800, step_s: int = 5, speed_mps: float = 3.0,
              lat: float = 45.0, lon: float = 6.0, name: str = "track", heading_deg: float = 30.0) -> tuple[float, int]:
    """A GPX track moving at ``speed_mps``; returns (its 3D length in metres per gpxpy, its duration in s)."""
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack(name=name)
    segment = gpxpy.gpx.GPXTrackSegment()
    gpx.tracks.append(track)
    track.segments.append(segment)
    metres_per_deg = 111_320.0
    for i in range(0, seconds + 1, step_s):
        travelled = speed_mps * i
        dlat = travelled * math.cos(math.radians(heading_deg)) / metres_per_deg
        dlon = travelled * math.sin(math.radians(heading_deg)) / (metres_per_deg * math.cos(math.radians(lat)))
        segment.points.append(gpxpy.gpx.GPXTrackPoint(lat + dlat, lon + dlon, elevation=500.0 + (i % 60) / 10,
                                                      time=start + timedelta(seconds=i)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(gpx.to_xml(), encoding="utf-8")
    return float(gpx.length_3d()), seconds


@dataclass
class Connected:
    """A FitTrackee user with an OAuth2 app and tokens in a token store."""

    instance: FitTrackeeInstance
    username: str
    jwt: str
    client_id: str
    client_secret: str
    token_file: Path

    def client(self, **kwargs: object) -> FitTrackeeClient:
        store = FitTrackeeTokenStore(self.token_file, instance_url=self.instance.url, client_id=self.client_id)
        return FitTrackeeClient(self.instance.url, self.client_id, self.client_secret, store, **kwargs)  # type: ignore[arg-type]

    @property
    def env(self) -> dict[str, str]:
        return {"FITTRACKEE_URL": self.instance.url, "FITTRACKEE_CLIENT_ID": self.client_id,
                "FITTRACKEE_CLIENT_SECRET": self.client_secret}


def new_user(instance: FitTrackeeInstance, *, timezone: str = "Europe/Paris") -> tuple[str, str]:
    """A fresh active account: (username, JWT)."""
    username = f"u{uuid.uuid4().hex[:10]}"
    instance.create_user(username, timezone=timezone)
    return username, instance.login(username)


def connect(instance: FitTrackeeInstance, token_file: Path, *, timezone: str = "Europe/Paris") -> Connected:
    """Create a user and an app, then authorise it the way a user would (through the consent page's API)."""
    username, jwt = new_user(instance, timezone=timezone)
    app = instance.create_app(jwt, redirect_uri=REDIRECT_URI, scope=SCOPE)
    connected = Connected(instance, username, jwt, app["client_id"], app["client_secret"], token_file)
    with connected.client() as client:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        redirect = instance.consent(jwt, client.authorization_url(redirect_uri=REDIRECT_URI, state=state,
                                                                  code_challenge=challenge))
        query = parse_qs(urlsplit(redirect).query)
        assert query["state"] == [state]
        client.exchange_code(query["code"][0], redirect_uri=REDIRECT_URI, code_verifier=verifier)
    return connected
