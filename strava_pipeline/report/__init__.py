"""The training report: derived tables in, one self-contained offline HTML page out.

Pure rendering (no Dagster): the ``training_report`` asset reads the tables and writes the page; this
package only turns frames into HTML, from the Jinja2 template, CSS and script under ``templates/``.
"""

from strava_pipeline.report.charts import decode_polyline, format_duration, route_svg
from strava_pipeline.report.render import recent_route_activities, render_training_report, report_as_of

__all__ = [
    "decode_polyline",
    "format_duration",
    "recent_route_activities",
    "render_training_report",
    "report_as_of",
    "route_svg",
]
