"""A Strava API simulator: OAuth, rate limits, faults and a synthetic athlete, over real HTTP.

No dagster here: the simulator is a dependency of the pipeline's tests, not part of the pipeline.
See `faults.py` for the fault SPEC grammar, `routes.py` for the endpoint rules and `export.py` for
the bulk-export archive (loaded on first use: it needs fit-tool, the server does not).
"""

from typing import Any

from strava_pipeline.simulator.clock import ManualClock
from strava_pipeline.simulator.config import SimulatorConfig
from strava_pipeline.simulator.routes import RequestLogEntry
from strava_pipeline.simulator.sim import StravaSimulator

__all__ = ["ExportManifest", "ExportedActivity", "ManualClock", "RequestLogEntry", "SimulatorConfig",
           "StravaSimulator", "write_export"]

_EXPORT_NAMES = ("ExportManifest", "ExportedActivity", "write_export")


def __getattr__(name: str) -> Any:
    if name in _EXPORT_NAMES:
        from strava_pipeline.simulator import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
