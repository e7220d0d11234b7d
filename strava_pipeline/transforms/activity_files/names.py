"""File names of activity files: ``YYYY/<local date>_<activity id>_<slug><suffix>``, safe on any filesystem.

Activity names are free text in any script, with emoji, slashes and control characters. The slug keeps the
letters, marks and digits of every script (so "朝ラン" and "Вечерняя пробежка" stay readable), turns
everything else into single hyphens, and drops what is not text at all (emoji, their variation selectors and
joiners): it can never contain a path separator, start with a dot or be empty, and its UTF-8 length is
bounded, cut between characters (a letter keeps its combining marks). Names are NFC-normalised so the same
name gives the same bytes on every platform.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import PurePosixPath

__all__ = [
    "GENERATED_SUFFIXES", "MAX_SLUG_BYTES", "ORIGINAL_INFIX", "day_prefix", "file_stem", "original_suffix",
    "relative_path", "slugify",
]

#: A slug's UTF-8 length at most: with the date, the id and ``.original.fit.gz`` a name stays far below the
#: 255 bytes every common filesystem allows.
MAX_SLUG_BYTES = 80
#: What the original upload's name carries before its own extension, so a GPX original never takes the name
#: of the GPX file written from the samples.
ORIGINAL_INFIX = ".original"
GENERATED_SUFFIXES = (".gpx", ".tcx")
_FALLBACK = "activity"
#: Variation selectors (emoji presentation) are marks by category, but belong to the symbol before them.
_DROPPED = {chr(c) for c in range(0xFE00, 0xFE10)} | {chr(c) for c in range(0xE0100, 0xE01F0)}
#: Original recordings the archive holds (see ``export.recordings.FORMATS``), with an optional ``.gz``.
_RECORDING_SUFFIXES = {".fit", ".gpx", ".tcx"}


def _clusters(text: str) -> list[str]:
    """``text`` as kept clusters (a letter or digit with its combining marks) and "-" for each run of others."""
    clusters: list[str] = []
    separated = False
    for char in unicodedata.normalize("NFC", text):
        if char in _DROPPED:
            continue
        category = unicodedata.category(char)
        if category[0] in "LN":
            if separated and clusters:
                clusters.append("-")
            separated = False
            clusters.append(char.lower())
        elif category in ("Mn", "Mc"):
            if clusters and not separated and clusters[-1] != "-":
                clusters[-1] += char  # a mark of the letter before it; orphaned marks (after an emoji) go
        elif category in ("Me", "Cf"):  # enclosing keycaps, zero-width joiners: part of a symbol, not a gap
            continue
        else:
            separated = True
    return clusters


def slugify(text: str | None, *, max_bytes: int = MAX_SLUG_BYTES, fallback: str = _FALLBACK) -> str:
    """A file-name-safe, never empty slug of ``text``: letters/marks/digits of any script, lower case, joined by
    single hyphens, at most ``max_bytes`` UTF-8 bytes. Empty (only emoji or punctuation): ``fallback``'s slug,
    else "activity"."""
    out: list[str] = []
    size = 0
    for cluster in _clusters(text or ""):
        length = len(cluster.encode("utf-8"))
        if size + length > max_bytes:
            break
        out.append(cluster)
        size += length
    slug = "".join(out).strip("-")
    if slug:
        return slug
    return slugify(fallback, max_bytes=max_bytes) if fallback and fallback != _FALLBACK else _FALLBACK


def day_prefix(local_date: date) -> str:
    """What every file name of a day starts with: the files of a day are exactly those with this prefix."""
    return f"{local_date.isoformat()}_"


def file_stem(activity_id: int, local_date: date, name: str | None, sport_type: str | None = None) -> str:
    """``<local date>_<activity id>_<slug of the name>``; an unnamed activity is named by its sport."""
    return f"{day_prefix(local_date)}{int(activity_id)}_{slugify(name, fallback=sport_type or _FALLBACK)}"


def relative_path(activity_id: int, local_date: date, name: str | None, sport_type: str | None, suffix: str
                  ) -> PurePosixPath:
    """Where one file of an activity lives under the files root: ``YYYY/<stem><suffix>``."""
    return PurePosixPath(f"{local_date.year:04d}") / f"{file_stem(activity_id, local_date, name, sport_type)}{suffix}"


def original_suffix(archive_path: str) -> str:
    """The suffix of an original upload's copy: ``.original`` and the file's own extension, lower case
    (``activities/123.fit.gz`` -> ``.original.fit.gz``). Anything else than a recording keeps its last
    extension if that is plain ASCII letters and digits."""
    suffixes = [s.lower() for s in PurePosixPath(archive_path).suffixes]
    if suffixes[-2:-1] and suffixes[-1] == ".gz" and suffixes[-2] in _RECORDING_SUFFIXES:
        return ORIGINAL_INFIX + "".join(suffixes[-2:])
    if suffixes and suffixes[-1] in _RECORDING_SUFFIXES:
        return ORIGINAL_INFIX + suffixes[-1]
    last = suffixes[-1] if suffixes else ""
    return ORIGINAL_INFIX + (last if last[1:].isascii() and last[1:].isalnum() else "")
