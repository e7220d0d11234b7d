"""The training report: one self-contained HTML page rendered from the derived tables (frames in, string out).

The page works offline and from ``file://``: no map tiles, fonts, CDN scripts or any other external
resource. Route shapes and tables are rendered here as inline SVG/HTML; the two time-series charts
(weekly volume, fitness/fatigue/form) are drawn by a small inline script from JSON embedded in the page,
which keeps the file small and gives hover read-outs. When the script has drawn both charts it sets
``data-charts-ready="true"`` on ``<body>``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from strava_pipeline.transforms import polyline

#: Sport types counted as running (best efforts) and cycling (power bests).
RUN_SPORTS = ("Run", "TrailRun", "VirtualRun")
RIDE_SPORTS = ("Ride", "MountainBikeRide", "GravelRide", "EBikeRide", "EMountainBikeRide", "VirtualRide")

BEST_EFFORTS: tuple[tuple[str, str, float], ...] = (
    ("best_400m_s", "400 m", 400.0),
    ("best_1km_s", "1 km", 1000.0),
    ("best_1mile_s", "1 mile", 1609.344),
    ("best_5km_s", "5 km", 5000.0),
    ("best_10km_s", "10 km", 10000.0),
    ("best_half_marathon_s", "Half marathon", 21097.5),
    ("best_marathon_s", "Marathon", 42195.0),
)
POWER_BESTS: tuple[tuple[str, str], ...] = (
    ("power_5s_w", "5 s"), ("power_1min_w", "1 min"), ("power_5min_w", "5 min"),
    ("power_20min_w", "20 min"), ("power_60min_w", "60 min"),
)
PALETTE = (
    "#fc4c02", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
    "#d62728", "#aec7e8", "#ffbb78",
)

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
        return polyline.decode(text)
    except (IndexError, ValueError):
        return []


def recent_route_activities(activities: pl.DataFrame, count: int = 6) -> pl.DataFrame:
    """The ``count`` most recent activities recorded outdoors with GPS (newest first)."""
    if activities.is_empty():
        return activities
    outdoor = activities.filter(
        pl.col("start_lat").is_not_null()
        & ~pl.col("manual").fill_null(False)
        & ~pl.col("trainer").fill_null(False)
    )
    return outdoor.sort("start_date_local", descending=True).head(count)


def route_svg(points: Sequence[tuple[float, float]], size: int = 220, pad: int = 10) -> str:
    """An inline SVG of a route's shape (equirectangular, north up, aspect ratio kept)."""
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
    sx, sy = xs[0] * scale + ox, ys[0] * scale + oy
    ex, ey = xs[-1] * scale + ox, ys[-1] * scale + oy
    return (
        f'<svg class="route" viewBox="0 0 {size} {size}" role="img">'
        f'<path d="{path}" fill="none" stroke="#fc4c02" stroke-width="2.2" stroke-linejoin="round" '
        f'stroke-linecap="round"/>'
        f'<circle cx="{sx:.1f}" cy="{sy:.1f}" r="4" fill="#2ca02c"><title>start</title></circle>'
        f'<circle cx="{ex:.1f}" cy="{ey:.1f}" r="4" fill="#333"><title>finish</title></circle></svg>'
    )


def _sport_order(weekly: pl.DataFrame) -> list[str]:
    if weekly.is_empty():
        return []
    totals = weekly.group_by("sport_type").agg(pl.col("moving_time_s").sum()).sort(
        "moving_time_s", "sport_type", descending=[True, False]
    )
    return [s if s is not None else "Other" for s in totals.get_column("sport_type").to_list()]


def _weekly_data(weekly: pl.DataFrame, last_week: date, weeks: int) -> dict[str, Any]:
    """Per-week values per sport for the last ``weeks`` ISO weeks (empty weeks included, none before the
    first week with an activity)."""
    first_week = last_week - timedelta(weeks=weeks - 1)
    earliest = weekly.get_column("week_start").min() if not weekly.is_empty() else None
    if earliest is not None and first_week < earliest <= last_week:  # type: ignore[operator]
        first_week = earliest  # type: ignore[assignment]
        weeks = (last_week - first_week).days // 7 + 1
    window = weekly.filter(pl.col("week_start") >= first_week) if not weekly.is_empty() else weekly
    sports = _sport_order(window)
    week_starts = [first_week + timedelta(weeks=i) for i in range(weeks)]
    index = {w: i for i, w in enumerate(week_starts)}
    series = {s: {"hours": [0.0] * weeks, "km": [0.0] * weeks, "load": [0.0] * weeks} for s in sports}
    for row in window.iter_rows(named=True):
        i = index.get(row["week_start"])
        if i is None:
            continue
        values = series[row["sport_type"] or "Other"]
        values["hours"][i] += round((row["moving_time_s"] or 0) / 3600, 2)
        values["km"][i] += round((row["distance_m"] or 0) / 1000, 1)
        values["load"][i] += round(row["load"] or 0, 1)
    return {
        "weeks": [w.isoformat() for w in week_starts],
        "sports": [{"name": s, "color": PALETTE[i % len(PALETTE)], **series[s]} for i, s in enumerate(sports)],
    }


def _fitness_data(daily: pl.DataFrame, as_of: date, days: int) -> dict[str, Any]:
    window = daily.filter(pl.col("date") <= as_of) if not daily.is_empty() else daily
    if window.is_empty():
        return {"dates": [], "ctl": [], "atl": [], "tsb": [], "load": []}
    tail = window.sort("date").tail(days)
    return {
        "dates": [d.isoformat() for d in tail.get_column("date").to_list()],
        **{c: [round(v, 1) for v in tail.get_column(c).to_list()] for c in ("ctl", "atl", "tsb", "load")},
    }


def _best_efforts_table(metrics: pl.DataFrame, activities: pl.DataFrame) -> str:
    runs = metrics.filter(pl.col("sport_type").is_in(RUN_SPORTS)) if not metrics.is_empty() else metrics
    names = {} if activities.is_empty() else dict(activities.select("activity_id", "name").iter_rows())
    rows = []
    for column, label, metres in BEST_EFFORTS:
        best = runs.filter(pl.col(column).is_not_null()).sort(column).head(1) if not runs.is_empty() else runs
        if best.is_empty():
            continue
        r = best.row(0, named=True)
        pace = r[column] / (metres / 1000)
        rows.append(
            f"<tr><td>{label}</td><td class=num>{format_duration(r[column])}</td>"
            f"<td class=num>{format_duration(pace)} /km</td><td>{r['activity_date']}</td>"
            f"<td>{html.escape(str(names.get(r['activity_id']) or ''))}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No runs with distance streams yet.</p>'
    head = "<tr><th>Distance</th><th>Time</th><th>Pace</th><th>Date</th><th>Activity</th></tr>"
    return f'<table id="best-efforts"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _power_table(metrics: pl.DataFrame) -> str:
    rides = metrics.filter(pl.col("sport_type").is_in(RIDE_SPORTS)) if not metrics.is_empty() else metrics
    cells = []
    for column, label in POWER_BESTS:
        value = rides.get_column(column).max() if not rides.is_empty() else None
        if value is not None:
            cells.append(f"<tr><td>{label}</td><td class=num>{round(value)} W</td></tr>")
    if not cells:
        return '<p class="muted">No rides with a power meter yet.</p>'
    return f'<table id="power-bests"><thead><tr><th>Duration</th><th>Best power</th></tr></thead>' \
           f'<tbody>{"".join(cells)}</tbody></table>'


def _routes_html(recent: pl.DataFrame, points: pl.DataFrame) -> str:
    if recent.is_empty():
        return '<p class="muted">No outdoor activities with GPS yet.</p>'
    by_id: dict[int, list[tuple[float, float]]] = {}
    if not points.is_empty():
        for (activity_id,), part in points.filter(pl.col("lat").is_not_null() & pl.col("lng").is_not_null()) \
                .sort("activity_id", "sample_index").partition_by("activity_id", as_dict=True).items():
            lats, lngs = part.get_column("lat").to_list(), part.get_column("lng").to_list()
            by_id[activity_id] = list(zip(lats, lngs, strict=True))
    cards = []
    for r in recent.iter_rows(named=True):
        track = by_id.get(r["activity_id"]) or decode_polyline(r.get("summary_polyline"))
        km = (r.get("distance_m") or 0) / 1000
        cards.append(
            f'<figure class="card">{route_svg(track)}<figcaption><b>{html.escape(str(r.get("name") or ""))}</b>'
            f'<br><span class="muted">{r["activity_date"]} · {html.escape(str(r.get("sport_type") or ""))} · '
            f"{km:.1f} km</span></figcaption></figure>"
        )
    return f'<div class="routes" id="routes">{"".join(cards)}</div>'


def _tiles(activities: pl.DataFrame, daily: pl.DataFrame, as_of: date) -> str:
    def tile(label: str, value: str) -> str:
        return f'<div class="tile"><div class="muted">{label}</div><div class="big">{value}</div></div>'

    recent = activities.filter(pl.col("activity_date").is_between(as_of - timedelta(days=27), as_of)) \
        if not activities.is_empty() else activities
    hours = (recent.get_column("moving_time_s").sum() or 0) / 3600 if not recent.is_empty() else 0.0
    km = (recent.get_column("distance_m").sum() or 0) / 1000 if not recent.is_empty() else 0.0
    upto = daily.filter(pl.col("date") <= as_of) if not daily.is_empty() else daily
    last = upto.sort("date").tail(1).row(0, named=True) if not upto.is_empty() else None
    return "".join([
        tile("Activities, 4 weeks", str(recent.height)),
        tile("Distance, 4 weeks", f"{km:,.0f} km"),
        tile("Moving time, 4 weeks", f"{hours:,.1f} h"),
        tile("Fitness (CTL)", f"{last['ctl']:.0f}" if last else "—"),
        tile("Fatigue (ATL)", f"{last['atl']:.0f}" if last else "—"),
        tile("Form (TSB)", f"{last['tsb']:+.0f}" if last else "—"),
    ])


#: A history whose last activity is older than this is shown up to that activity, not up to today.
STALE_AFTER_DAYS = 56


def report_as_of(activities: pl.DataFrame, today: date) -> date:
    """The day the report's windows end: today, unless training stopped long ago (then the last activity)."""
    last = activities.get_column("activity_date").max() if not activities.is_empty() else None
    if last is None or (today - last).days <= STALE_AFTER_DAYS:  # type: ignore[operator]
        return today
    return last  # type: ignore[return-value]


def _json_for_script(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can close it)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026")


def render_training_report(
    *,
    athlete: pl.DataFrame,
    activities: pl.DataFrame,
    metrics: pl.DataFrame,
    daily_load: pl.DataFrame,
    weekly: pl.DataFrame,
    route_points: pl.DataFrame,
    generated_at: datetime,
    today: date | None = None,
    weeks: int = 52,
    fitness_days: int = 365,
    routes: int = 6,
) -> str:
    """The whole report page.

    Inputs are the typed/derived tables: ``activities`` (typed summaries), ``metrics``
    (``activity_metrics``), ``daily_load`` (``daily_training_load``), ``weekly`` (``weekly_summary``)
    and ``route_points`` (``activity_streams`` rows, at least ``activity_id, sample_index, lat, lng``, of
    the activities :func:`recent_route_activities` picks; a route without points falls back to its
    ``summary_polyline``).
    """
    today = today or generated_at.date()
    as_of = report_as_of(activities, today)
    last_week = as_of - timedelta(days=as_of.weekday())
    who = ""
    if not athlete.is_empty():
        row = athlete.row(0, named=True)
        who = " ".join(str(row.get(k) or "") for k in ("firstname", "lastname")).strip()
    data = {"weekly": _weekly_data(weekly, last_week, weeks), "fitness": _fitness_data(daily_load, as_of, fitness_days)}
    recent = recent_route_activities(activities, routes)
    title = f"Training report{' — ' + who if who else ''}"
    return _PAGE.format(
        title=html.escape(title),
        generated=html.escape(generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()),
        n_activities=activities.height,
        as_of=as_of.isoformat(),
        tiles=_tiles(activities, daily_load, as_of),
        best_efforts=_best_efforts_table(metrics, activities),
        power=_power_table(metrics),
        routes=_routes_html(recent, route_points),
        weeks=weeks,
        data=_json_for_script(data),
        script=_SCRIPT,
        style=_STYLE,
    )


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{background:#fc4c02;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
main{max-width:1100px;margin:0 auto;padding:18px 24px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0 0 18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:16px;margin:0 0 10px}.muted{color:#777}.num{text-align:right;font-variant-numeric:tabular-nums}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}.tile{background:#fff;border-radius:8px;
padding:10px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}.big{font-size:22px;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}
.cols{display:grid;grid-template-columns:2fr 1fr;gap:18px}
.routes{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}.card{margin:0;text-align:center}
svg.route{width:100%;max-width:220px;background:#fafafa;border:1px solid #eee;border-radius:6px}
svg.chart{width:100%;height:auto;display:block}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
.toggle button{border:1px solid #ccc;background:#fff;padding:2px 10px;border-radius:4px;cursor:pointer}
.toggle button.on{background:#fc4c02;color:#fff;border-color:#fc4c02}
.readout{min-height:1.4em;color:#444;font-variant-numeric:tabular-nums}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body data-charts-ready="false">
<header><h1>{title}</h1><div>Generated {generated} · {n_activities} activities · figures up to {as_of}</div>
</header>
<main>
<div class="tiles">{tiles}</div><br>
<section><h2>Weekly volume, up to {weeks} weeks to {as_of}</h2>
<div class="toggle" id="weekly-toggle"><button data-metric="hours" class="on">hours</button>
<button data-metric="km">km</button> <button data-metric="load">load</button></div>
<div id="weekly-chart-box"><noscript>The charts need JavaScript (inline, no network).</noscript></div>
<div class="legend" id="weekly-legend"></div><div class="readout" id="weekly-readout"></div></section>
<section><h2>Fitness, fatigue and form, the year to {as_of}</h2>
<div id="fitness-chart-box"></div>
<div class="legend"><span><i style="background:#1f77b4"></i>fitness (CTL, 42 d)</span>
<span><i style="background:#d62728"></i>fatigue (ATL, 7 d)</span>
<span><i style="background:#2ca02c"></i>form (TSB)</span><span><i style="background:#ccc"></i>daily load</span></div>
<div class="readout" id="fitness-readout"></div></section>
<div class="cols"><section><h2>Best efforts (runs)</h2>{best_efforts}</section>
<section><h2>Power bests (rides)</h2>{power}</section></div>
<section><h2>Recent routes</h2>{routes}</section>
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body></html>
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function text(parent, x, y, s, anchor) {
    var t = el("text", {x: x, y: y, "font-size": 11, fill: "#666", "text-anchor": anchor || "start"}, parent);
    t.textContent = s;
    return t;
  }
  function niceMax(v) {
    if (!(v > 0)) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function label(v, range) {
    return range >= 20 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
  }
  var W = 1000, H = 280, L = 48, R = 12, T = 16, B = 28;

  function weekly(metric) {
    var box = document.getElementById("weekly-chart-box");
    box.textContent = "";
    var d = DATA.weekly, n = d.weeks.length;
    var svg = el("svg", {id: "weekly-chart", "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img"}, box);
    var totals = d.weeks.map(function (_, i) {
      return d.sports.reduce(function (s, sp) { return s + sp[metric][i]; }, 0);
    });
    var ymax = niceMax(Math.max.apply(null, totals.concat([0])));
    var y = function (v) { return T + (H - T - B) * (1 - v / ymax); };
    for (var g = 0; g <= 5; g++) {  // niceMax is 1, 2 or 5 x 10^k: fifths are round numbers
      var v = ymax * g / 5;
      el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
      text(svg, L - 6, y(v) + 4, label(v, ymax), "end");
    }
    var bw = (W - L - R) / Math.max(n, 1);
    d.weeks.forEach(function (week, i) {
      var base = 0;
      d.sports.forEach(function (sp) {
        var v = sp[metric][i];
        if (v > 0) {
          var r = el("rect", {"class": "bar", x: L + i * bw + 1, width: Math.max(bw - 2, 1), y: y(base + v),
                              height: y(base) - y(base + v), fill: sp.color}, svg);
          el("title", {}, r).textContent = "week of " + week + ": " + sp.name + " " + v.toFixed(1) + " " + metric;
          base += v;
        }
      });
      if (i % 4 === 0) { text(svg, L + i * bw, H - 8, week.slice(5)); }
      var hit = el("rect", {x: L + i * bw, width: bw, y: T, height: H - T - B, fill: "transparent"}, svg);
      hit.addEventListener("mouseenter", function () {
        var parts = d.sports.filter(function (sp) { return sp[metric][i] > 0; })
          .map(function (sp) { return sp.name + " " + sp[metric][i].toFixed(1); });
        var detail = parts.length ? " (" + parts.join(", ") + ")" : "";
        document.getElementById("weekly-readout").textContent =
          "Week of " + week + ": " + totals[i].toFixed(1) + " " + metric + detail;
      });
    });
    var legend = document.getElementById("weekly-legend");
    legend.textContent = "";
    d.sports.forEach(function (sp) {
      var s = document.createElement("span"), i = document.createElement("i");
      i.style.background = sp.color;
      s.appendChild(i);
      s.appendChild(document.createTextNode(sp.name));
      legend.appendChild(s);
    });
  }

  function fitness() {
    var box = document.getElementById("fitness-chart-box");
    var d = DATA.fitness, n = d.dates.length;
    var svg = el("svg", {id: "fitness-chart", "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img"}, box);
    if (n === 0) { text(svg, W / 2, H / 2, "no training load yet", "middle"); return; }
    var rawHi = Math.max.apply(null, d.ctl.concat(d.atl, d.tsb, [1]));
    var rawLo = Math.min.apply(null, d.tsb.concat([0]));
    var step = niceMax((rawHi - rawLo) / 5);
    var hi = Math.ceil(rawHi / step) * step, lo = Math.floor(rawLo / step) * step;
    var x = function (i) { return L + (W - L - R) * (n === 1 ? 0.5 : i / (n - 1)); };
    var y = function (v) { return T + (H - T - B) * (hi - v) / (hi - lo); };
    // Daily load on its own scale (right axis): one long ride must not flatten the fitness lines.
    var loadMax = niceMax(Math.max.apply(null, d.load.concat([1])));
    var yl = function (v) { return y(0) - (y(0) - T) * v / loadMax; };
    var bw = (W - L - R) / n;
    d.load.forEach(function (v, i) {
      if (v > 0) {
        el("rect", {"class": "load", x: x(i) - bw / 2, width: Math.max(bw, 1), y: yl(v), height: y(0) - yl(v),
                    fill: "#ddd"}, svg);
      }
    });
    text(svg, W - R, T - 2, "load " + Math.round(loadMax), "end");
    for (var v = lo; v <= hi + step / 2; v += step) {
      el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
      text(svg, L - 6, y(v) + 4, label(v, hi - lo), "end");
    }
    el("line", {x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#999"}, svg);
    function line(values, color, id) {
      var path = values.map(function (v, i) { return (i ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1); });
      el("path", {id: id, "class": "series", d: path.join(""), fill: "none", stroke: color, "stroke-width": 2}, svg);
    }
    line(d.ctl, "#1f77b4", "fitness-ctl");
    line(d.atl, "#d62728", "fitness-atl");
    line(d.tsb, "#2ca02c", "fitness-tsb");
    var every = Math.max(1, Math.round(n / 8));
    for (var i = 0; i < n; i += every) {
      text(svg, x(i), H - 8, d.dates[i], x(i) > W - 60 ? "end" : x(i) < L + 30 ? "start" : "middle");
    }
    var cursor = el("line", {y1: T, y2: H - B, stroke: "#333", "stroke-dasharray": "3 3", visibility: "hidden"}, svg);
    var hit = el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent"}, svg);
    hit.addEventListener("mousemove", function (ev) {
      var box = svg.getBoundingClientRect();
      var px = (ev.clientX - box.left) * W / box.width;
      var i = Math.max(0, Math.min(n - 1, Math.round((px - L) / (W - L - R) * (n - 1))));
      cursor.setAttribute("x1", x(i)); cursor.setAttribute("x2", x(i)); cursor.setAttribute("visibility", "visible");
      document.getElementById("fitness-readout").textContent = d.dates[i] + ": fitness " + d.ctl[i] +
        ", fatigue " + d.atl[i] + ", form " + d.tsb[i] + ", load " + d.load[i];
    });
  }

  weekly("hours");
  fitness();
  var buttons = document.querySelectorAll("#weekly-toggle button");
  Array.prototype.forEach.call(buttons, function (b) {
    b.addEventListener("click", function () {
      Array.prototype.forEach.call(buttons, function (o) { o.classList.toggle("on", o === b); });
      weekly(b.getAttribute("data-metric"));
    });
  });
  document.body.setAttribute("data-charts-ready", "true");
})();
"""
