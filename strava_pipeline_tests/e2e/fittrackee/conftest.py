"""The FitTrackee fixtures (a real instance on loopback)."""

from strava_pipeline_tests.fittrackee.fixtures import (
    fittrackee,
    fittrackee_env,
    fittrackee_redis,
    fittrackee_tiles,
    make_fittrackee,
)

__all__ = ["fittrackee", "fittrackee_env", "fittrackee_redis", "fittrackee_tiles", "make_fittrackee"]
