"""Activity files: each activity's samples as GPX 1.1 and TCX v2 documents, and where they are kept.

Pure functions (frames in, bytes and names out); the ``activity_files`` asset (``defs.assets.activity_files``)
writes them. Public API, for the asset and for sinks that upload the files elsewhere:

- ``gpx_document(activity, samples) -> bytes | None`` and ``tcx_document(activity, samples) -> bytes | None``:
  ``activity`` is a row of ``activities`` as a mapping (``activity_id``, ``start_date`` (UTC datetime),
  ``name``, ``sport_type`` and the summary figures), ``samples`` that activity's ``activity_streams`` rows.
  None when the format cannot hold any sample: GPX needs a position, TCX a time.
- ``documents(activity, samples)``: both, as ``{".gpx": bytes, ".tcx": bytes}`` (formats without points left out).
- ``documents_by_activity(activities, samples)``: the same for many activities in a few polars calls
  (activity id -> documents); ``iter_documents`` yields them one by one, which the asset uses: per activity,
  polars' per-call cost is half the work.
- ``relative_path(activity_id, local_date, name, sport_type, suffix)``, ``file_stem``, ``slugify``,
  ``day_prefix``, ``original_suffix``: the names below.

Layout under ``<data dir>/files/`` (``FILES_DIR``), directories 0700 and files 0600::

    YYYY/<local date>_<activity id>_<slug>.gpx            track points with a position (GPX requires lat/lon)
    YYYY/<local date>_<activity id>_<slug>.tcx            every sample with a time, one lap
    YYYY/<local date>_<activity id>_<slug>.original.<ext> the archive's original upload, byte for byte
                                                          (e.g. .original.fit.gz), when the export archive holds it

``YYYY`` and ``<local date>`` are the activity's local date (its partition); the slug comes from the name
(``names.slugify``). Every file of a day starts with ``<local date>_``, so a day's files are exactly the
names with that prefix in its year's folder: re-materialising a day replaces them and removes the rest.
A renamed activity changes its file names; an activity id is unique, so ``<local date>_<activity id>_`` finds
an activity's files whatever its name.

Both documents are schema-valid (GPX 1.1 with Garmin TrackPointExtension v1; TCX v2 with ActivityExtension
v2; see the tests), with heart rate, cadence and temperature in ``gpxtpx:TrackPointExtension``, power in a
``power`` element of ``POWER_NAMESPACE`` (GPX only allows extension elements of other namespaces) and in TCX's
``ns3:TPX/ns3:Watts``.
"""

from __future__ import annotations

from strava_pipeline.transforms.activity_files.documents import (
    documents,
    documents_by_activity,
    gpx_document,
    iter_documents,
    tcx_document,
)
from strava_pipeline.transforms.activity_files.gpx import GPX_NAMESPACE, POWER_NAMESPACE, TRACKPOINT_EXTENSION_NAMESPACE
from strava_pipeline.transforms.activity_files.names import (
    GENERATED_SUFFIXES,
    MAX_SLUG_BYTES,
    ORIGINAL_INFIX,
    day_prefix,
    file_stem,
    original_suffix,
    relative_path,
    slugify,
)
from strava_pipeline.transforms.activity_files.tcx import ACTIVITY_EXTENSION_NAMESPACE, TCX_NAMESPACE

__all__ = [
    "ACTIVITY_EXTENSION_NAMESPACE", "FILES_DIR", "GENERATED_SUFFIXES", "GPX_NAMESPACE", "MAX_SLUG_BYTES",
    "ORIGINAL_INFIX", "POWER_NAMESPACE", "TCX_NAMESPACE", "TRACKPOINT_EXTENSION_NAMESPACE", "day_prefix",
    "documents", "documents_by_activity", "file_stem", "gpx_document", "iter_documents", "original_suffix",
    "relative_path", "slugify", "tcx_document",
]

#: The folder under the data dir that holds every activity file.
FILES_DIR = "files"

