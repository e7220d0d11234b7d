"""The training report renders in headless Chromium, offline, with its charts and no console errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from strava_pipeline.report import render_training_report

CONSOLE = re.compile(r":CONSOLE[:(]")  # Chromium logs every console message (and uncaught error) so


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line) or "Uncaught" in line]


def _assert_offline(page: str) -> None:
    """No external resource of any kind: the only URL is the SVG namespace the script names."""
    assert re.findall(r"(?:src|href)\s*=", page) == []
    assert "https://" not in page and "url(" not in page and "@import" not in page
    assert set(re.findall(r"http://[^\"' ]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_console_error_detection_is_not_vacuous(run_chromium, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); missingFunction();</script></body></html>")
    lines = _console_lines(run_chromium(bad.as_uri(), "--dump-dom").stderr)
    assert any("boom" in line for line in lines) and any("Uncaught ReferenceError" in line for line in lines)


def test_report_renders_charts_without_console_errors(backfilled, run_chromium, tmp_path: Path) -> None:
    p, _ = backfilled()
    path = p.settings.data_dir / "reports" / "training_report.html"
    page = path.read_text(encoding="utf-8")
    _assert_offline(page)

    result = run_chromium(path.as_uri(), "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console_lines(result.stderr) == []
    dom = result.stdout
    assert 'data-charts-ready="true"' in dom
    weekly = re.search(r'<svg id="weekly-chart".*?</svg>', dom, re.S)
    fitness = re.search(r'<svg id="fitness-chart".*?</svg>', dom, re.S)
    assert weekly and fitness, "the inline script drew both charts"
    assert len(re.findall(r'<rect class="bar"', weekly.group(0))) > 0
    for series in ("fitness-ctl", "fitness-atl", "fitness-tsb"):
        assert re.search(rf'<path id="{series}" class="series" d="M[\d.]+,[\d.]+L', fitness.group(0))
    routes = p.query("SELECT count(*) FROM strava.activities WHERE start_lat IS NOT NULL AND NOT manual "
                     "AND NOT coalesce(trainer, false)")[0][0]
    assert dom.count('<svg class="route"') == min(6, routes) > 0
    assert len(re.findall(r'<path d="M', dom)) >= min(6, routes)
    assert '<table id="best-efforts">' in dom

    shot = tmp_path / "training_report.png"
    result = run_chromium(path.as_uri(), f"--screenshot={shot}", "--window-size=1200,2200", "--hide-scrollbars")
    assert _console_lines(result.stderr) == []
    assert shot.is_file() and shot.stat().st_size > 20_000  # a blank page is a few kB


def test_empty_history_renders_without_errors(run_chromium, tmp_path: Path) -> None:
    """A fresh install (no activities yet) still gets a valid page whose script does not throw."""
    empty = pl.DataFrame()
    page = render_training_report(
        athlete=empty, activities=pl.DataFrame(schema={"activity_id": pl.Int64, "activity_date": pl.Date}),
        metrics=empty, daily_load=empty, weekly=empty, route_points=empty,
        generated_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    _assert_offline(page)
    path = tmp_path / "empty.html"
    path.write_text(page, encoding="utf-8")
    result = run_chromium(path.as_uri(), "--dump-dom")
    assert _console_lines(result.stderr) == []
    assert 'data-charts-ready="true"' in result.stdout
