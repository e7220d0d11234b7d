"""The training report: one self-contained HTML page rendered from the derived tables (frames in, string out).

The page works offline and from ``file://``: no map tiles, fonts, CDN scripts or any other external
resource. Python computes the figures; ``templates/report.html.j2`` lays them out, with ``report.css``
and ``report.js`` inlined. Route shapes are inline SVG (:mod:`.charts`); the two time-series charts
(weekly volume, fitness/fatigue/form) are drawn by the inline script from JSON embedded in the page,
which keeps the file small and gives hover read-outs. When the script has drawn both charts it sets
``data-charts-ready="true"`` on ``<body>``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import polars as pl

from strava_pipeline.report.charts import decode_polyline, format_duration, route_svg

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
#: Colours of the sports in the weekly chart, most trained first.
PALETTE = (
    "#fc4c02", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
    "#d62728", "#aec7e8", "#ffbb78",
)

#: A history whose last activity is older than this is shown up to that activity, not up to today.
STALE_AFTER_DAYS = 56

#: Where the template, stylesheet and script live (package data, see pyproject.toml).
TEMPLATES = ("strava_pipeline.report", "templates")
TEMPLATE = "report.html.j2"


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


def report_as_of(activities: pl.DataFrame, today: date) -> date:
    """The day the report's windows end: today, unless training stopped long ago (then the last activity)."""
    last = activities.get_column("activity_date").max() if not activities.is_empty() else None
    if last is None or (today - last).days <= STALE_AFTER_DAYS:  # type: ignore[operator]
        return today
    return last  # type: ignore[return-value]


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


def _best_efforts(metrics: pl.DataFrame, activities: pl.DataFrame) -> list[dict[str, Any]]:
    """The fastest run over each standard distance that any run covered."""
    runs = metrics.filter(pl.col("sport_type").is_in(RUN_SPORTS)) if not metrics.is_empty() else metrics
    names = {} if activities.is_empty() else dict(activities.select("activity_id", "name").iter_rows())
    rows = []
    for column, label, metres in BEST_EFFORTS:
        best = runs.filter(pl.col(column).is_not_null()).sort(column).head(1) if not runs.is_empty() else runs
        if best.is_empty():
            continue
        r = best.row(0, named=True)
        rows.append({
            "label": label,
            "time": format_duration(r[column]),
            "pace": format_duration(r[column] / (metres / 1000)),
            "date": r["activity_date"],
            "name": str(names.get(r["activity_id"]) or ""),
        })
    return rows


def _power_bests(metrics: pl.DataFrame) -> list[dict[str, Any]]:
    rides = metrics.filter(pl.col("sport_type").is_in(RIDE_SPORTS)) if not metrics.is_empty() else metrics
    rows = []
    for column, label in POWER_BESTS:
        value = rides.get_column(column).max() if not rides.is_empty() else None
        if value is not None:
            rows.append({"label": label, "watts": round(value)})
    return rows


def _route_cards(recent: pl.DataFrame, points: pl.DataFrame) -> list[dict[str, Any]]:
    """One card per recent activity: its GPS samples' shape, or its ``summary_polyline``'s without samples."""
    by_id: dict[int, list[tuple[float, float]]] = {}
    if not points.is_empty():
        for (activity_id,), part in points.filter(pl.col("lat").is_not_null() & pl.col("lng").is_not_null()) \
                .sort("activity_id", "sample_index").partition_by("activity_id", as_dict=True).items():
            lats, lngs = part.get_column("lat").to_list(), part.get_column("lng").to_list()
            by_id[activity_id] = list(zip(lats, lngs, strict=True))
    cards = []
    for r in recent.iter_rows(named=True):
        track = by_id.get(r["activity_id"]) or decode_polyline(r.get("summary_polyline"))
        cards.append({
            "svg": route_svg(track),
            "name": str(r.get("name") or ""),
            "date": r["activity_date"],
            "sport": str(r.get("sport_type") or ""),
            "km": f"{(r.get('distance_m') or 0) / 1000:.1f}",
        })
    return cards


def _tiles(activities: pl.DataFrame, daily: pl.DataFrame, as_of: date) -> list[tuple[str, str]]:
    """(label, value) of the headline figures: the last four weeks' volume and the latest fitness/form."""
    recent = activities.filter(pl.col("activity_date").is_between(as_of - timedelta(days=27), as_of)) \
        if not activities.is_empty() else activities
    hours = (recent.get_column("moving_time_s").sum() or 0) / 3600 if not recent.is_empty() else 0.0
    km = (recent.get_column("distance_m").sum() or 0) / 1000 if not recent.is_empty() else 0.0
    upto = daily.filter(pl.col("date") <= as_of) if not daily.is_empty() else daily
    last = upto.sort("date").tail(1).row(0, named=True) if not upto.is_empty() else None
    return [
        ("Activities, 4 weeks", str(recent.height)),
        ("Distance, 4 weeks", f"{km:,.0f} km"),
        ("Moving time, 4 weeks", f"{hours:,.1f} h"),
        ("Fitness (CTL)", f"{last['ctl']:.0f}" if last else "—"),
        ("Fatigue (ATL)", f"{last['atl']:.0f}" if last else "—"),
        ("Form (TSB)", f"{last['tsb']:+.0f}" if last else "—"),
    ]


@cache
def _environment() -> jinja2.Environment:
    """The template environment: autoescaping everywhere, and ``tojson`` kept compact and in key order."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(*TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # ``tojson`` escapes < > & ' as \u00XX, so no ``</script>`` or ``<!--`` in the data can close its element.
    env.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "sort_keys": False}
    env.globals["inline"] = _inline
    return env


@cache
def _inline(name: str) -> str:
    """A stylesheet or script of the templates folder as raw text, for the template to inline (marked safe:
    it is our own file, not data, and HTML-escaping would break it); refused if it would close its element."""
    package, folder = TEMPLATES
    text = resources.files(package).joinpath(folder, name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"{name} would close the element it is inlined in")
    return text


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
    return _environment().get_template(TEMPLATE).render(
        title=f"Training report{' — ' + who if who else ''}",
        generated=generated_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
        n_activities=activities.height,
        as_of=as_of.isoformat(),
        weeks=weeks,
        tiles=_tiles(activities, daily_load, as_of),
        best_efforts=_best_efforts(metrics, activities),
        power_bests=_power_bests(metrics),
        route_cards=_route_cards(recent_route_activities(activities, routes), route_points),
        data={
            "weekly": _weekly_data(weekly, last_week, weeks),
            "fitness": _fitness_data(daily_load, as_of, fitness_days),
        },
    )
