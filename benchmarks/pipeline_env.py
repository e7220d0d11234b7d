"""The environment a benchmark gives the pipeline so that it talks to a simulator, in a temp dir."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from strava_pipeline.simulator import StravaSimulator


def pipeline_env(sim: StravaSimulator, tmp: str | Path, history_start: date, database_url: str) -> dict[str, str]:
    """Credentials and base URL of ``sim``, token and data files under ``tmp``, the given database."""
    return {
        "STRAVA_BASE_URL": sim.base_url, "STRAVA_CLIENT_ID": str(sim.client_id),
        "STRAVA_CLIENT_SECRET": sim.client_secret, "STRAVA_REFRESH_TOKEN": sim.authorize()["refresh_token"],
        "STRAVA_TOKEN_FILE": str(Path(tmp) / "tokens.json"), "STRAVA_HISTORY_START": history_start.isoformat(),
        "STRAVA_PIPELINE_DATA_DIR": str(Path(tmp) / "data"), "STRAVA_PIPELINE_DATABASE_URL": database_url,
    }
