"""Route shapes as hand-written inline SVG, and the report's value formatting.

Drawn here rather than with a plotting library so the page stays small and self-contained: a route is a
single ``<path>`` and needs no bundle inlined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polyline

#: Points per route shape: enough for the outline, small enough for a light page.
ROUTE_POINTS = 400


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour); an em dash for missing values."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def decode_polyline(text: str | None) -> list[tuple[float, float]]:
    """Strava's ``summary_polyline`` to (lat, lng) pairs; [] when absent or malformed (a report never fails
    because one activity's map is broken)."""
    if not text:
        return []
    try:
        return polyline.decode(text, 5)
    except (IndexError, ValueError):
        return []


def route_svg(points: Sequence[tuple[float, float]], size: int = 220, pad: int = 10) -> str:
    """An inline SVG of a route's shape (equirectangular, north up, aspect ratio kept).

    Built only from numbers and constants, never from activity data, so the template may mark it safe.
    """
    if len(points) < 2:
        return f'<svg class="route" viewBox="0 0 {size} {size}" role="img"><text x="50%" y="50%" ' \
               'text-anchor="middle" class="muted">no GPS</text></svg>'
    step = max(1, len(points) // ROUTE_POINTS)
    pts = list(points[::step])
    if pts[-1] != points[-1]:
        pts.append(points[-1])
    lat0 = sum(p[0] for p in pts) / len(pts)
    kx = math.cos(math.radians(lat0))
    xs = [p[1] * kx for p in pts]
    ys = [-p[0] for p in pts]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    scale = (size - 2 * pad) / max(width, height, 1e-9)
    ox = pad + ((size - 2 * pad) - width * scale) / 2 - min(xs) * scale
    oy = pad + ((size - 2 * pad) - height * scale) / 2 - min(ys) * scale
    coords = [(x * scale + ox, y * scale + oy) for x, y in zip(xs, ys, strict=True)]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(coords))
    sx, sy = coords[0]
    ex, ey = coords[-1]
    return (
        f'<svg class="route" viewBox="0 0 {size} {size}" role="img">'
        f'<path d="{path}" fill="none" stroke="#fc4c02" stroke-width="2.2" stroke-linejoin="round" '
        f'stroke-linecap="round"/>'
        f'<circle cx="{sx:.1f}" cy="{sy:.1f}" r="4" fill="#2ca02c"><title>start</title></circle>'
        f'<circle cx="{ex:.1f}" cy="{ey:.1f}" r="4" fill="#333"><title>finish</title></circle></svg>'
    )
