"""Configuration from the environment (and an optional ``.env`` file).

One place lists every setting the product reads, with its default, so the README table, the CLI and
the Dagster definitions agree. Secrets are read here only to be handed to the Strava client; they are
never printed (see ``Settings.describe``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dotenv import load_dotenv

DEFAULT_BASE_URL = "https://www.strava.com"
#: Strava opened in 2009; starting there means a default backfill can never miss an activity.
DEFAULT_HISTORY_START = date(2009, 1, 1)


def load_env_file() -> None:
    """Load ``.env`` from the working directory without overriding variables already set."""
    load_dotenv(Path.cwd() / ".env", override=False)


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

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings; relative paths are resolved against the working directory."""
        load_env_file()
        data_dir = Path(os.environ.get("STRAVA_PIPELINE_DATA_DIR") or "data").expanduser().resolve()
        token_file = os.environ.get("STRAVA_TOKEN_FILE")
        token_path = Path(token_file).expanduser().resolve() if token_file else data_dir / "tokens.json"
        start = os.environ.get("STRAVA_HISTORY_START")
        return cls(
            client_id=os.environ.get("STRAVA_CLIENT_ID") or None,
            client_secret=os.environ.get("STRAVA_CLIENT_SECRET") or None,
            refresh_token=os.environ.get("STRAVA_REFRESH_TOKEN") or None,
            base_url=(os.environ.get("STRAVA_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            data_dir=data_dir,
            token_file=token_path,
            history_start=date.fromisoformat(start) if start else DEFAULT_HISTORY_START,
            database_url=os.environ.get("STRAVA_PIPELINE_DATABASE_URL") or None,
            timezone=os.environ.get("STRAVA_PIPELINE_TIMEZONE") or "UTC",
            rate_window_seconds=int(os.environ.get("STRAVA_RATE_WINDOW_SECONDS") or 900),
            sync_lookback_days=int(os.environ.get("STRAVA_SYNC_LOOKBACK_DAYS") or 3),
            sensor_interval_seconds=int(os.environ.get("STRAVA_SENSOR_INTERVAL_SECONDS") or 1800),
            request_timeout_seconds=float(os.environ.get("STRAVA_REQUEST_TIMEOUT_SECONDS") or 60),
            export_path=Path(export).expanduser().resolve() if (export := os.environ.get("STRAVA_EXPORT_PATH"))
            else None,
            max_response_mb=int(os.environ.get("STRAVA_MAX_RESPONSE_MB") or 256),
        )

    @property
    def parquet_dir(self) -> Path:
        """Root of the Parquet files: one directory per asset."""
        return self.data_dir / "parquet"

    @property
    def rate_limit_state_file(self) -> Path:
        """Rate-limit usage shared by every process that talks to Strava for this data dir."""
        return self.data_dir / "strava_rate_limits.json"
