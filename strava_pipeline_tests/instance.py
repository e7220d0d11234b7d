"""A Dagster home for tests that start Dagster processes of their own (``dagster dev``, the CLI)."""

from pathlib import Path

from strava_pipeline.cli.runtime import instance_config


def dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME holding the instance configuration the package ships (what the CLI uses)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(instance_config(), encoding="utf-8")
    return path
