"""Configuration from the environment (and an optional ``.env`` file).

One place lists every setting the product reads, with its default, so the README table, the CLI and
the Dagster definitions agree. Secrets are read here only to be handed to the Strava client; they are
never printed (see ``Settings.describe``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv

DEFAULT_BASE_URL = "https://www.strava.com"
#: Strava opened in 2009; starting there means a default backfill can never miss an activity.
DEFAULT_HISTORY_START = date(2009, 1, 1)


def load_env_file() -> None:
    """Load ``.env`` from the working directory without overriding variables already set."""
    load_dotenv(Path.cwd() / ".env", override=False)


class SettingsError(ValueError):
    """A variable whose value the product cannot use: the message names it, what is wrong and the fix."""


def _positive(name: str, default: int | float, kind: type[int] | type[float] = int) -> int | float:
    """``name`` as a positive number (``default`` when unset or empty)."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {what}: give {what} above 0, or unset it for the default "
                            f"{default}") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name}={raw!r} must be above 0: give {what} above 0, or unset it for the default "
                            f"{default}")
    return value


def _history_start() -> date:
    raw = (os.environ.get("STRAVA_HISTORY_START") or "").strip()
    try:
        return date.fromisoformat(raw) if raw else DEFAULT_HISTORY_START
    except ValueError:
        raise SettingsError(f"STRAVA_HISTORY_START={raw!r} is not a date: give YYYY-MM-DD, or unset it for "
                            f"{DEFAULT_HISTORY_START}") from None


def _timezone() -> str:
    raw = (os.environ.get("STRAVA_PIPELINE_TIMEZONE") or "").strip() or "UTC"
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"STRAVA_PIPELINE_TIMEZONE={raw!r} is not a time zone: give an IANA name such as "
                            "Europe/Berlin, or unset it for UTC") from None
    return raw


def _base_url() -> str:
    """STRAVA_BASE_URL without a trailing slash, and without the ``/api/v3`` some users copy from Strava's
    API docs (the client appends it; kept, it would be doubled)."""
    url = (os.environ.get("STRAVA_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")
    return url.removesuffix("/api/v3").rstrip("/") or DEFAULT_BASE_URL


@dataclass(frozen=True)
class Settings:
    """Every environment setting of the product, resolved to typed values."""

    client_id: str | None
    client_secret: str | None
    refresh_token: str | None
    base_url: str
    data_dir: Path
    token_file: Path
    history_start: date
    database_url: str | None
    timezone: str
    rate_window_seconds: int
    sync_lookback_days: int
    sensor_interval_seconds: int
    request_timeout_seconds: float
    #: An export archive, or a folder the user drops archives into (STRAVA_EXPORT_PATH); None: not configured.
    export_path: Path | None = None
    #: Largest API response body accepted, in MiB (STRAVA_MAX_RESPONSE_MB): bounds the client's memory per request.
    max_response_mb: int = 256
    #: STRAVA_SPORT_TYPES as written, split at commas (e.g. ("Run", "TrailRun")); empty: every sport. Only
    #: these sports get streams, metrics and activity files (summaries are always kept); the names are
    #: checked against Strava's sport types by ``transforms.sport_filter.parse_sport_types``.
    sport_types: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings; relative paths are resolved against the working directory."""
        load_env_file()
        data_dir = Path(os.environ.get("STRAVA_PIPELINE_DATA_DIR") or "data").expanduser().resolve()
        token_file = os.environ.get("STRAVA_TOKEN_FILE")
        token_path = Path(token_file).expanduser().resolve() if token_file else data_dir / "tokens.json"
        return cls(
            client_id=os.environ.get("STRAVA_CLIENT_ID") or None,
            client_secret=os.environ.get("STRAVA_CLIENT_SECRET") or None,
            refresh_token=os.environ.get("STRAVA_REFRESH_TOKEN") or None,
            base_url=_base_url(),
            data_dir=data_dir,
            token_file=token_path,
            history_start=_history_start(),
            database_url=os.environ.get("STRAVA_PIPELINE_DATABASE_URL") or None,
            timezone=_timezone(),
            rate_window_seconds=int(_positive("STRAVA_RATE_WINDOW_SECONDS", 900)),
            sync_lookback_days=int(_positive("STRAVA_SYNC_LOOKBACK_DAYS", 3)),
            sensor_interval_seconds=int(_positive("STRAVA_SENSOR_INTERVAL_SECONDS", 1800)),
            request_timeout_seconds=float(_positive("STRAVA_REQUEST_TIMEOUT_SECONDS", 60, float)),
            export_path=Path(export).expanduser().resolve() if (export := os.environ.get("STRAVA_EXPORT_PATH"))
            else None,
            max_response_mb=int(_positive("STRAVA_MAX_RESPONSE_MB", 256)),
            sport_types=tuple(name.strip() for name in (os.environ.get("STRAVA_SPORT_TYPES") or "").split(",")
                              if name.strip()),
        )

    @property
    def parquet_dir(self) -> Path:
        """Root of the Parquet files: one directory per asset."""
        return self.data_dir / "parquet"

    @property
    def rate_limit_state_file(self) -> Path:
        """Rate-limit usage shared by every process that talks to Strava for this data dir."""
        return self.data_dir / "strava_rate_limits.json"
