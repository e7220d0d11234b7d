"""FitTrackee (https://docs.fittrackee.org), a self-hosted workout tracker, as a sink of the mirror.

No Dagster here: :mod:`.client` speaks FitTrackee's API (OAuth2 with PKCE, workouts, its rate limit),
:mod:`.sync` decides and performs the uploads, updates and deletions idempotently, :mod:`.sports` maps Strava
sport types, :mod:`.tokens` keeps the tokens in the pipeline's 0600 token store.
"""

from .client import SCOPE, FitTrackeeClient, pkce_pair
from .config import FitTrackeeSettings
from .errors import (
    FitTrackeeAuthError,
    FitTrackeeConfigError,
    FitTrackeeError,
    FitTrackeeHTTPError,
    FitTrackeeInterrupted,
    FitTrackeeRateLimitError,
)
from .rate_limit import FitTrackeeRateLimiter
from .sports import FALLBACK_SPORT, STRAVA_TO_FITTRACKEE, resolve_sport
from .sync import Activity, SyncReport, WorkoutTable, run_sync, strava_url
from .tokens import FitTrackeeTokens, FitTrackeeTokenStore

__all__ = [
    "FALLBACK_SPORT",
    "SCOPE",
    "STRAVA_TO_FITTRACKEE",
    "Activity",
    "FitTrackeeAuthError",
    "FitTrackeeClient",
    "FitTrackeeConfigError",
    "FitTrackeeError",
    "FitTrackeeHTTPError",
    "FitTrackeeInterrupted",
    "FitTrackeeRateLimitError",
    "FitTrackeeRateLimiter",
    "FitTrackeeSettings",
    "FitTrackeeTokenStore",
    "FitTrackeeTokens",
    "SyncReport",
    "WorkoutTable",
    "pkce_pair",
    "resolve_sport",
    "run_sync",
    "strava_url",
]
