"""Text and numbers as XML 1.0 accepts them, and activities' samples as the texts both formats write.

Free text (an activity's name) is escaped, and stripped of the characters XML 1.0 forbids outright (C0
controls other than tab/newline/return, lone surrogates, U+FFFE/U+FFFF): a parser refuses a document holding
one even as a character reference. Numbers are written by polars in their shortest round-trip form, so a
reader gets back exactly the stored float; the few values polars would write with an exponent (under about
1e-5, which ``xsd:decimal`` refuses) are written in fixed notation with nine decimals instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

#: Everything XML 1.0 does not allow in a document (https://www.w3.org/TR/xml/#charsets).
_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
                            "\r": "&#13;"})
_FIXED_DECIMALS = 9


def xml_text(value: Any) -> str:
    """``value`` as element content: forbidden characters dropped, markup escaped (a carriage return kept)."""
    return _FORBIDDEN.sub("", str(value)).translate(_TEXT)


def xml_attribute(value: Any) -> str:
    """``value`` as a double-quoted attribute value (whitespace kept as character references)."""
    return _FORBIDDEN.sub("", str(value)).translate(_ATTRIBUTE)


def utc_text(moment: datetime) -> str:
    """An xsd:dateTime in UTC with a ``Z``; whole seconds unless the time has a fraction."""
    moment = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _finite(column: str) -> pl.Expr:
    value = pl.col(column).cast(pl.Float64)
    return pl.when(value.is_finite()).then(value)


def _decimal(value: pl.Expr) -> pl.Expr:
    """Shortest round-trip text of a float (polars), which uses an exponent for tiny or huge values."""
    return value.cast(pl.String)


def _fixed(value: pl.Expr) -> pl.Expr:
    """Fixed-point text with nine decimals: for the values ``_decimal`` writes with an exponent."""
    scaled = (value.abs() * 10**_FIXED_DECIMALS).round().cast(pl.Int64, strict=False)
    return pl.concat_str(
        pl.when(value < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (scaled // 10**_FIXED_DECIMALS).cast(pl.String),
        pl.lit("."),
        (scaled % 10**_FIXED_DECIMALS).cast(pl.String).str.zfill(_FIXED_DECIMALS),
    )


def _integer(column: str, low: int, high: int) -> pl.Expr:
    """Whole numbers in ``low..high`` as text (floats rounded); others, null and non-finite as null."""
    whole = _finite(column).round()
    return pl.when((whole >= low) & (whole <= high)).then(whole).cast(pl.Int64).cast(pl.String)


#: Texts of one sample, null where the sample (or the schema) has no valid value: see ``point_texts``.
POINT_COLUMNS = ("time", "lat", "lon", "ele", "distance", "speed", "hr", "cad", "watts", "temp")
#: Source columns (and their types when a frame lacks them) of the texts.
_SOURCES: dict[str, pl.DataType] = {
    "time_s": pl.Int32(), "lat": pl.Float64(), "lng": pl.Float64(), "altitude_m": pl.Float64(),
    "distance_m": pl.Float64(), "velocity_mps": pl.Float64(), "heartrate_bpm": pl.Int16(),
    "cadence_rpm": pl.Float64(), "watts": pl.Int16(), "temp_c": pl.Int16(),
}


def _position() -> tuple[pl.Expr, pl.Expr]:
    """Latitude and longitude where both are valid (longitude 180 written as -180), else both null."""
    lat, lng = pl.col("lat").cast(pl.Float64), pl.col("lng").cast(pl.Float64)
    valid = (lat.is_finite() & lng.is_finite() & (lat.abs() <= 90) & (lng.abs() <= 180)).fill_null(False)
    return pl.when(valid).then(lat), pl.when(valid).then(pl.when(lng == 180.0).then(-180.0).otherwise(lng))


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def point_texts(samples: pl.DataFrame, starts: Mapping[int, datetime]) -> pl.DataFrame:
    """One row per sample of the activities in ``starts`` (activity id -> UTC start), grouped by activity and
    in ``sample_index`` order within one when present, with each value as the text a document writes, null
    where it is missing or invalid for both schemas: ``time`` (start + ``time_s``, UTC), ``lat``/``lon`` (both
    or neither: in range, longitude 180 written as -180), ``ele``, ``distance``, ``speed`` (m/s), ``hr``
    (1..255 bpm), ``cad`` (0..254 rpm, rounded), ``watts`` (0..65535), ``temp`` (°C); beside them
    ``activity_id`` and, for lap totals, ``offset_s`` and ``distance_m`` (finite values, as floats).

    Many activities in one call because each polars call costs more than a one-hour activity's texts: a day's
    or a batch's documents are a few calls, not a few per activity. A second pass only for the rare columns
    holding values under ~1e-5."""
    samples = samples.filter(pl.col("activity_id").is_in(list(starts)))
    samples = samples.sort("activity_id", *(["sample_index"] if "sample_index" in samples.columns else []),
                           maintain_order=True)
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in _SOURCES.items() if c not in samples.columns]
    if missing:
        samples = samples.with_columns(missing)
    ids = list(starts)
    naive = [_naive_utc(moment) for moment in starts.values()]
    start = pl.col("activity_id").replace_strict(ids, pl.Series(naive, dtype=pl.Datetime("us")),
                                                 return_dtype=pl.Datetime("us"))
    moment = start + pl.duration(seconds=pl.col("time_s").cast(pl.Int64))
    time = moment.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    fractional = [i for i, m in zip(ids, naive, strict=True) if m.microsecond]
    if fractional:  # a start with a fraction writes every time of its activity with microseconds
        time = (pl.when(pl.col("activity_id").is_in(fractional)).then(moment.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
                .otherwise(time))
    lat, lon = _position()
    floats = {"lat": lat, "lon": lon, "ele": _finite("altitude_m"), "distance": _finite("distance_m"),
              "speed": _finite("velocity_mps"), "temp": _finite("temp_c")}
    texts = samples.select(
        "activity_id",
        time=time,
        **{name: _decimal(value) for name, value in floats.items()},
        hr=_integer("heartrate_bpm", 1, 255),
        cad=_integer("cadence_rpm", 0, 254),
        watts=_integer("watts", 0, 65535),
        offset_s=_finite("time_s"),
        distance_m=_finite("distance_m"),
    )
    exponent = texts.select(pl.col(*floats).str.contains("e", literal=True).any()).row(0, named=True)
    if any(exponent.values()):  # xsd:decimal has no exponent
        fixed = samples.select(**{n: _fixed(v) for n, v in floats.items() if exponent[n]})
        texts = texts.with_columns(pl.when(pl.col(n).str.contains("e", literal=True)).then(fixed.get_column(n))
                                   .otherwise(pl.col(n)).alias(n) for n in fixed.columns)
    return texts.select("activity_id", *POINT_COLUMNS, "offset_s", "distance_m")


def optional(column: str, before: str, after: str) -> pl.Expr:
    """``before + value + after``, null where the column is (an enclosing ``concat_str(ignore_nulls=True)``
    then leaves it out)."""
    return pl.concat_str(pl.lit(before), pl.col(column), pl.lit(after))


def group(before: str, parts: list[pl.Expr], after: str, columns: list[str]) -> pl.Expr:
    """An element around ``parts``, null (left out) where none of ``columns`` has a value."""
    inner = pl.concat_str(*parts, ignore_nulls=True)
    present = pl.any_horizontal(*(pl.col(c).is_not_null() for c in columns))
    return pl.concat_str(pl.lit(before), pl.when(present).then(inner), pl.lit(after))


def lines_by_activity(points: pl.DataFrame, line: pl.Expr) -> dict[int, bytes]:
    """Activity id -> every one of its rows' ``line``, one per text line, UTF-8 (activities without rows left
    out). Bytes made by polars, not ``str``: a one-hour activity's lines are about a megabyte, and each
    conversion, concatenation and encoding of them in Python copied it again (the assembly of the documents
    was 10-30% of their cost before; see ``join_document``)."""
    if points.is_empty():
        return {}
    joined = (points.select("activity_id", line.alias("line")).group_by("activity_id", maintain_order=True)
              .agg(pl.concat_str(pl.col("line").str.join("\n"), pl.lit("\n")).cast(pl.Binary)))
    return dict(joined.iter_rows())


def join_document(head: str, lines: bytes, tail: str) -> bytes:
    """A document as UTF-8: its head, its points' ``lines_by_activity`` and its tail, copied once."""
    return b"".join((head.encode("utf-8"), lines, tail.encode("utf-8")))
