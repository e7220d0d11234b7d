"""Whether the Strava API can be used at all, so automation skips quietly instead of failing every tick.

Two reasons it cannot: no credentials are configured (an archive-only mirror), or Strava answered
403 "Inactive" (since June 2026 the API needs the app owner's paid subscription). The second is
remembered for a day in ``<data dir>/strava_api_inactive.json`` (written when it is seen, removed when a
request succeeds again), so the daily schedule does not launch a run that can only fail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strava_pipeline.settings import Settings
from strava_pipeline.storage.files import write_atomic

__all__ = ["INACTIVE_RECHECK", "api_unavailable_reason", "clear_inactive", "record_inactive"]

MARKER = "strava_api_inactive.json"
#: How long a 403 Inactive is believed before the API is tried again (a subscription may have started).
INACTIVE_RECHECK = timedelta(days=1)
NO_CREDENTIALS = (
    "no Strava API credentials (STRAVA_CLIENT_ID, STRAVA_CLIENT_SECRET): the mirror is filled from export "
    "archives only (strava-pipeline import, or STRAVA_EXPORT_PATH)"
)


def record_inactive(data_dir: Path, now: datetime | None = None) -> None:
    """Remember that Strava refused the application as inactive."""
    now = now or datetime.now(UTC)
    write_atomic(Path(data_dir) / MARKER, json.dumps({"seen_at": now.isoformat()}))


def clear_inactive(data_dir: Path) -> None:
    """The API answered again: forget the refusal."""
    (Path(data_dir) / MARKER).unlink(missing_ok=True)


def api_unavailable_reason(settings: Settings, now: datetime | None = None) -> str | None:
    """Why the API cannot be used right now, or None when it can (as far as we know)."""
    if not (settings.client_id and settings.client_secret):
        return NO_CREDENTIALS
    marker = settings.data_dir / MARKER
    try:
        seen = datetime.fromisoformat(json.loads(marker.read_text(encoding="utf-8"))["seen_at"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    retry = seen + INACTIVE_RECHECK
    if (now or datetime.now(UTC)) >= retry:
        return None
    return (f"Strava answered 403 Inactive at {seen:%Y-%m-%d %H:%M} UTC (the API application needs its owner's "
            f"paid subscription); the API is tried again after {retry:%Y-%m-%d %H:%M} UTC. Import the free "
            "archive with `strava-pipeline import`")
