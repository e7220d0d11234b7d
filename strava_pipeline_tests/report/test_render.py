"""Rendering without a browser: escaping of activity data, the chart data block, and the helpers."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import polars as pl

from strava_pipeline.report import decode_polyline, format_duration, render_training_report, route_svg


def _page_with_names(name: str, sport: str, firstname: str = "") -> str:
    activities = pl.DataFrame({
        "activity_id": [1], "activity_date": [date(2024, 1, 2)], "name": [name],
        "sport_type": [sport], "start_date_local": [datetime(2024, 1, 2, 8)], "start_lat": [48.0],
        "manual": [False], "trainer": [False], "distance_m": [1000.0], "moving_time_s": [300],
        "summary_polyline": ["_p~iF~ps|U_ulLnnqC_mqNvxq`@"],
    })
    weekly = pl.DataFrame({"week_start": [date(2024, 1, 1)], "sport_type": [sport],
                           "moving_time_s": [300.0], "distance_m": [1000.0], "load": [10.0]})
    athlete = pl.DataFrame({"firstname": [firstname], "lastname": [""]})
    return render_training_report(
        athlete=athlete, activities=activities, metrics=pl.DataFrame(), daily_load=pl.DataFrame(),
        weekly=weekly, route_points=pl.DataFrame(), generated_at=datetime(2024, 1, 3, tzinfo=UTC),
    )


def test_names_cannot_break_out_of_the_page() -> None:
    page = _page_with_names("</script><b>x</b>", "Run</script>", firstname="<i>Ann</i>")
    assert page.count("</script>") == 2  # the data block and the inline script, nothing injected
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in page
    assert "<title>Training report — &lt;i&gt;Ann&lt;/i&gt;</title>" in page
    assert page.count('<svg class="route"') == 1  # the route SVG is inlined as markup, not escaped


def test_chart_data_is_json_that_cannot_close_its_script() -> None:
    page = _page_with_names("a", "Run</script><!-- 'x' & y")
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert block and "<" not in block.group(1) and "'" not in block.group(1)
    data = json.loads(block.group(1))
    assert [s["name"] for s in data["weekly"]["sports"]] == ["Run</script><!-- 'x' & y"]
    assert data["weekly"]["sports"][0]["hours"][-1] == 0.08


def test_helpers() -> None:
    assert decode_polyline("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert decode_polyline("_p~iF~ps|U_") == [] and decode_polyline(None) == []
    assert format_duration(59.6) == "1:00" and format_duration(3725) == "1:02:05" and format_duration(None) == "—"
    shape = route_svg([(48.0, 2.0), (48.1, 2.2), (48.05, 2.3)])
    assert shape.count("<circle") == 2 and 'd="M' in shape
    assert "no GPS" in route_svg([(48.0, 2.0)])
