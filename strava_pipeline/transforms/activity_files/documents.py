"""Activities' GPX and TCX documents, many at a time.

A one-hour activity's texts take polars a few milliseconds, but each polars call costs about as much again
in Python (building the expressions, starting the query): per activity, that overhead was half the time of
the ``activity_files`` asset. So the samples of all the activities asked for (the asset asks for about three
one-hour activities at a time) are turned into texts, lines and lap figures in a handful of calls, and only
the documents' heads and tails are put together per activity.
One activity is the same call with one activity: the documents of an activity do not depend on the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import polars as pl

from strava_pipeline.transforms.activity_files._xml import point_texts
from strava_pipeline.transforms.activity_files.gpx import gpx_lines, gpx_text
from strava_pipeline.transforms.activity_files.tcx import lap_figures, tcx_lines, tcx_sport, tcx_text

__all__ = ["documents", "documents_by_activity", "gpx_document", "iter_documents", "tcx_document"]


def iter_documents(activities: Sequence[Mapping[str, Any]], samples: pl.DataFrame
                   ) -> Iterator[tuple[int, dict[str, bytes] | None]]:
    """Each activity of ``activities`` (rows of ``activities``: ``activity_id``, ``start_date`` (UTC datetime),
    ``name``, ``sport_type`` and the summary figures), in their order, with its GPX and TCX documents by file
    suffix (``{".gpx": bytes, ".tcx": bytes}``) from its rows of ``samples`` (``activity_streams`` rows of any
    subset of its columns, with ``activity_id``), or None when it has none. A format that would hold no point
    is left out: GPX needs a position, TCX a time.

    The texts of all of them are made up front, in a few polars calls; each document is then put together
    when asked for and its text dropped, so a caller that writes each as it comes holds the XML about once.
    """
    by_id = {int(activity["activity_id"]): activity for activity in activities}
    if samples.is_empty():
        gpx: dict[int, bytes] = {}
        tcx: dict[int, bytes] = {}
        figures: dict[int, dict[str, Any]] = {}
        present: set[int] = set()
    else:
        points = point_texts(samples, {activity_id: a["start_date"] for activity_id, a in by_id.items()})
        running = [i for i, a in by_id.items() if tcx_sport(a.get("sport_type")) == "Running"]
        gpx, tcx, figures = gpx_lines(points), tcx_lines(points, running), lap_figures(points)
        present = set(points.get_column("activity_id").unique())
        del points
    for activity_id, activity in by_id.items():
        if activity_id not in present:
            yield activity_id, None
            continue
        produced = {}
        if activity_id in gpx:
            produced[".gpx"] = gpx_text(activity, gpx.pop(activity_id))
        if activity_id in tcx:
            produced[".tcx"] = tcx_text(activity, tcx.pop(activity_id), figures[activity_id])
        yield activity_id, produced


def documents_by_activity(activities: Iterable[Mapping[str, Any]], samples: pl.DataFrame
                          ) -> dict[int, dict[str, bytes]]:
    """Activity id -> its documents (see ``iter_documents``), for every activity with samples; an activity
    whose samples fit neither format maps to ``{}``."""
    return {activity_id: docs for activity_id, docs in iter_documents(list(activities), samples) if docs is not None}


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
