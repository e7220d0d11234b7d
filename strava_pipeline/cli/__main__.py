"""``python -m strava_pipeline.cli``: the same as the ``strava-pipeline`` command."""

import sys

from strava_pipeline.cli import main

sys.exit(main())
