"""Activities' GPX and TCX documents, many at a time.

A one-hour activity's texts take polars a few milliseconds, but each polars call costs about as much again
in Python (building the expressions, starting the query): per activity, that overhead was half the time of
the ``activity_files`` asset. So the samples of all the activities asked for are turned into texts, lines and
lap figures in a handful of calls, and only the documents' heads and tails are put together per activity.
One activity is the same call with one activity: the documents of an activity do not depend on the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from strava_pipeline.transforms.activity_files._xml import point_texts
from strava_pipeline.transforms.activity_files.gpx import gpx_lines, gpx_text
from strava_pipeline.transforms.activity_files.tcx import lap_figures, tcx_lines, tcx_sport, tcx_text

__all__ = ["documents", "documents_by_activity", "gpx_document", "tcx_document"]


def documents_by_activity(activities: Iterable[Mapping[str, Any]], samples: pl.DataFrame
                          ) -> dict[int, dict[str, bytes]]:
    """Activity id -> its GPX and TCX documents by file suffix (``{".gpx": bytes, ".tcx": bytes}``), for every
    activity of ``activities`` (rows of ``activities``: ``activity_id``, ``start_date`` (UTC datetime),
    ``name``, ``sport_type`` and the summary figures) that has samples in ``samples`` (``activity_streams``
    rows of any subset of its columns, with ``activity_id``). A format that would hold no point is left out:
    GPX needs a position, TCX a time; an activity with neither maps to ``{}``."""
    by_id = {int(activity["activity_id"]): activity for activity in activities}
    if not by_id or samples.is_empty():
        return {}
    points = point_texts(samples, {activity_id: a["start_date"] for activity_id, a in by_id.items()})
    running = [i for i, a in by_id.items() if tcx_sport(a.get("sport_type")) == "Running"]
    gpx, tcx, figures = gpx_lines(points), tcx_lines(points, running), lap_figures(points)
    found: dict[int, dict[str, bytes]] = {}
    for activity_id in points.get_column("activity_id").unique(maintain_order=True):
        activity, produced = by_id[activity_id], {}
        if activity_id in gpx:
            produced[".gpx"] = gpx_text(activity, gpx[activity_id])
        if activity_id in tcx:
            produced[".tcx"] = tcx_text(activity, tcx[activity_id], figures[activity_id])
        found[activity_id] = produced
    return found


def documents(activity: Mapping[str, Any], samples: pl.DataFrame) -> dict[str, bytes]:
    """One activity's documents (see ``documents_by_activity``); ``samples`` are its rows, whatever their
    ``activity_id``."""
    activity_id = int(activity["activity_id"])
    if samples.is_empty():
        return {}
    own = samples.with_columns(pl.lit(activity_id, dtype=pl.Int64).alias("activity_id"))
    return documents_by_activity([activity], own).get(activity_id, {})


def gpx_document(activity: Mapping[str, Any], samples: pl.DataFrame) -> bytes | None:
    """The GPX 1.1 document of one activity, UTF-8; None when no sample has a position (an indoor session)."""
    return documents(activity, samples).get(".gpx")


def tcx_document(activity: Mapping[str, Any], samples: pl.DataFrame) -> bytes | None:
    """The TCX v2 document of one activity (one lap), UTF-8; None when no sample has a time."""
    return documents(activity, samples).get(".tcx")
