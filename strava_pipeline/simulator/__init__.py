"""A Strava API simulator: OAuth, rate limits, faults and a synthetic athlete, over real HTTP.

No dagster here: the simulator is a dependency of the pipeline's tests, not part of the pipeline.
See `faults.py` for the fault SPEC grammar and `routes.py` for the endpoint rules.
"""

from strava_pipeline.simulator.clock import ManualClock
from strava_pipeline.simulator.config import SimulatorConfig
from strava_pipeline.simulator.routes import RequestLogEntry
from strava_pipeline.simulator.sim import StravaSimulator

__all__ = ["ManualClock", "RequestLogEntry", "SimulatorConfig", "StravaSimulator"]
