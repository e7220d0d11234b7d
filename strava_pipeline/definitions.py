"""The code location ``workspace.yaml`` and ``dagster dev -m strava_pipeline.definitions`` load.

A leaf: importing it reads the environment (and ``.env``) and builds the definitions, so nothing else
imports it; code that needs definitions calls ``strava_pipeline.defs.build_definitions`` with its settings.
"""

from strava_pipeline.defs import build_definitions, keep_created_files_private, lighten_dagster_bookkeeping
from strava_pipeline.settings import Settings

keep_created_files_private()  # the webserver, daemon and run processes write the athlete's data too
lighten_dagster_bookkeeping()  # run processes record thousands of per-day check results
defs = build_definitions(Settings.from_env())
