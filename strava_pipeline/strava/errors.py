"""Exceptions raised by the Strava client.

Every message is written for the person running the pipeline: it says what happened and what to do, and it
never contains a secret (client secret, access or refresh token).  Callers branch on the class, not on text.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "StravaAppInactiveError",
    "StravaAuthError",
    "StravaError",
    "StravaHTTPError",
    "StravaNotFoundError",
    "StravaPayloadError",
    "StravaRateLimitError",
    "StravaScopeError",
    "StravaTransientError",
]

RECONNECT_HINT = "run `strava-pipeline auth` to reconnect"


class StravaError(Exception):
    """Base class of every error this package raises on purpose."""


class StravaAuthError(StravaError):
    """The athlete's authorisation is unusable (no tokens, refresh token revoked, access token rejected).

    Retrying will not help; a human has to reconnect the account.
    """


class StravaAppInactiveError(StravaError):
    """Strava answered 403 ``Application`` / ``Status`` / ``Inactive``: the API application is switched off.

    Since June 2026 Strava's Standard API tier requires the application's owner to hold a paid Strava
    subscription; without one every call is refused. Nothing the pipeline retries can change that, but
    the free bulk-export archive holds the whole history.
    """


INACTIVE_HINT = (
    "since June 2026 Strava's API needs the owner of the API application (STRAVA_CLIENT_ID) to hold a paid "
    "Strava subscription. Without one, import the free archive instead: in Strava, Settings > My Account > "
    "Download or Delete Your Account > Request your archive, then run `strava-pipeline import export_<id>.zip`"
)


def is_app_inactive(fault: object) -> bool:
    """Whether a fault body is Strava's "application inactive" refusal (its ``message`` text varies)."""
    errors = fault.get("errors") if isinstance(fault, dict) else None
    for err in errors or []:
        if isinstance(err, dict) and str(err.get("resource", "")).lower() == "application" and str(
            err.get("code", "")
        ).lower() == "inactive":
            return True
    return False


class StravaScopeError(StravaAuthError):
    """The token works but lacks a permission (scope) the endpoint needs.

    ``scope`` is the scope Strava says is missing (e.g. ``activity:read``); ``granted`` what we know was
    granted.
    """

    def __init__(self, message: str, *, scope: str, granted: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope
        self.granted = granted


class StravaPayloadError(StravaError):
    """A response body was not the JSON we expected (truncated, malformed, wrong shape).

    ``offset`` is the byte/char offset where decoding failed, when known.
    """

    def __init__(self, message: str, *, url: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.offset = offset


class StravaRateLimitError(StravaError):
    """The API budget is exhausted and we may not (or will not) wait for it.

    ``resets_at`` is the UTC time the blocking window resets, when known.
    """

    def __init__(self, message: str, *, resets_at: datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class StravaHTTPError(StravaError):
    """An HTTP status we do not handle specially (other 4xx).  ``status`` and ``url`` (token-free) are
    kept."""

    def __init__(self, message: str, *, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class StravaNotFoundError(StravaHTTPError):
    """404 on a resource that should exist (e.g. an activity deleted since it was listed)."""


class StravaTransientError(StravaError):
    """Server errors / network failures persisted after the bounded retries; trying again later may work."""
