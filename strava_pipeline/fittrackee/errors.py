"""Exceptions of the FitTrackee client.

Like the Strava client's: every message is written for the person running the pipeline, says what to do
next, and never holds a secret (client secret, access or refresh token). Callers branch on the class.
"""

from __future__ import annotations

__all__ = [
    "RECONNECT_HINT",
    "FitTrackeeAuthError",
    "FitTrackeeConfigError",
    "FitTrackeeError",
    "FitTrackeeHTTPError",
    "FitTrackeeInterrupted",
    "FitTrackeeRateLimitError",
]

RECONNECT_HINT = "run `strava-pipeline auth fittrackee` to connect (or reconnect) your FitTrackee account"


class FitTrackeeError(Exception):
    """Base class of every error this package raises on purpose."""


class FitTrackeeConfigError(FitTrackeeError):
    """A FITTRACKEE_* setting is missing or malformed: the message names it."""


class FitTrackeeAuthError(FitTrackeeError):
    """No usable authorisation (no tokens, refresh token revoked or expired, scope missing): a human must
    reconnect."""


class FitTrackeeHTTPError(FitTrackeeError):
    """FitTrackee refused a request (after retries, where retrying could help)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FitTrackeeRateLimitError(FitTrackeeHTTPError):
    """FitTrackee kept answering 429 longer than we are willing to wait."""


class FitTrackeeInterrupted(KeyboardInterrupt):
    """The process is shutting down (SIGINT/SIGTERM): a rate-limit wait was cut short, no request started.

    A ``KeyboardInterrupt`` so that no ``except Exception`` retries or swallows it.
    """
