"""Typed per-sample activity streams from raw ``/activities/{id}/streams`` payloads.

Strava returns one array per stream type, all of equal length, index i being the same sample. The
typed table has one row per sample with a column per documented type (units in the names); types we
don't know (``watts_calc``, ``grade_adjusted_speed``, ...) stay in the raw layer and never break a run.
``null`` samples inside a stream are valid and stay null.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import polars as pl
import simdjson

from strava_pipeline.transforms.errors import PayloadError

UTC_TS = pl.Datetime("us", "UTC")

#: The eleven documented stream types, requested for every activity.
DOCUMENTED_STREAM_TYPES: tuple[str, ...] = (
    "time", "distance", "latlng", "altitude", "velocity_smooth", "heartrate",
    "cadence", "watts", "temp", "moving", "grade_smooth",
)

#: Raw layer: one row per non-manual activity; ``status`` is "ok" or "not_found" (Strava's 404).
STREAMS_RAW_SCHEMA: dict[str, pl.DataType] = {
    "activity_id": pl.Int64,
    "activity_date": pl.Date,
    "summary_fingerprint": pl.String,
    "status": pl.String,
    "fetched_at": UTC_TS,
    "payload": pl.String,
}

#: Typed layer: one row per sample.
STREAM_SCHEMA: dict[str, pl.DataType] = {
    "activity_id": pl.Int64,
    "activity_date": pl.Date,
    "sample_index": pl.Int32,
    "time_s": pl.Int32,
    "lat": pl.Float64,
    "lng": pl.Float64,
    "altitude_m": pl.Float64,
    "distance_m": pl.Float64,
    "velocity_mps": pl.Float64,
    "heartrate_bpm": pl.Int16,
    "cadence_rpm": pl.Float64,  # documented as integer, but real exports carry decimals
    "watts": pl.Int16,
    "temp_c": pl.Int16,
    "moving": pl.Boolean,
    "grade_pct": pl.Float64,
    "source": pl.String,  # "api" (Strava's streams) or "export" (the archive's original file)
}

#: Stream type -> typed column, for the scalar streams (latlng is split into two columns).
SCALAR_STREAMS: dict[str, str] = {
    "time": "time_s",
    "altitude": "altitude_m",
    "distance": "distance_m",
    "velocity_smooth": "velocity_mps",
    "heartrate": "heartrate_bpm",
    "cadence": "cadence_rpm",
    "watts": "watts",
    "temp": "temp_c",
    "moving": "moving",
    "grade_smooth": "grade_pct",
}

#: Parsed JSON objects and arrays: Python's, and simdjson's lazy ones (neither ``Mapping`` nor ``list``).
_OBJECT_TYPES = (Mapping, simdjson.Object)
_ARRAY_TYPES = (list, simdjson.Array)


def streams_by_type(payload: Any, entity: str) -> dict[str, Any]:
    """Normalise either response form (``key_by_type=true`` dict, or the array form) to type -> data.

    ``payload`` is parsed JSON: Python objects, or simdjson's (whose arrays are returned as they are).
    """
    if isinstance(payload, _OBJECT_TYPES):
        items = [(key, payload[key]) for key in payload]  # simdjson's items() would build every sample
    elif isinstance(payload, _ARRAY_TYPES):
        items = []
        for i, stream in enumerate(payload):
            if not isinstance(stream, _OBJECT_TYPES) or "type" not in stream:
                raise PayloadError(entity, f"streams[{i}]", "is not a stream object with a 'type'")
            items.append((stream["type"], stream))
    else:
        raise PayloadError(entity, "<streams>", f"is a {type(payload).__name__}, not a stream set")
    out: dict[str, Any] = {}
    for stream_type, stream in items:
        data = stream.get("data") if isinstance(stream, _OBJECT_TYPES) else None
        if not isinstance(data, _ARRAY_TYPES):
            raise PayloadError(entity, f"{stream_type}.data", "is not an array")
        out[str(stream_type)] = data
    return out


#: A ``\u0000`` escape not itself escaped (``\\u0000`` is the text "\u0000"): jsonb cannot hold NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"holds {name}, which is not JSON (RFC 8259)")


def _strict_json(body: bytes) -> tuple[Any, str | None]:
    """``body`` parsed, and why jsonb cannot store it verbatim (None when it can): see ``jsonb_unstorable_reason``."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            json.loads(body, parse_constant=_refuse_constant)
        except ValueError as lenient:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if str(lenient).startswith("holds "):
                return None, str(lenient)
        return None, f"is not strict JSON (RFC 8259): {exc}"
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        return parsed, "holds a \\u0000 escape, which PostgreSQL's jsonb cannot store"
    return parsed, None


def jsonb_unstorable_reason(body: bytes) -> str | None:
    """Why a JSON document cannot be kept verbatim in a jsonb column, or None when it can.

    The one rule for every raw payload (streams bodies, activity summaries): strict JSON by orjson, the
    parser the typed layer reads payloads with (no NaN/Infinity, no overflowing number, valid UTF-8 without
    lone surrogates), and no ``\\u0000`` escape.
    """
    return _strict_json(body)[1]


def unstorable_reason(body: bytes, entity: str) -> str | None:
    """Why a streams response body cannot be kept verbatim in ``streams_raw``, or None when it can.

    The one verdict every layer uses (the fetch before landing, the landing cache on replay), because the
    client only proves a body whole by Python's lenient ``json`` (NaN, Infinity, 1e400), while the
    ``payload`` column is jsonb: a body it refuses would fail the whole batch's write, on every rerun.
    Accepted: ``b""`` (Strava's 404), or strict JSON (orjson, the parser the typed layer reads payloads
    with: no NaN/Infinity, no overflowing number, no lone surrogate) without ``\\u0000`` escapes that is a
    stream set (see :func:`streams_by_type`).
    """
    if not body:
        return None
    parsed, reason = _strict_json(body)
    if reason is not None:
        return reason
    try:
        streams_by_type(parsed, entity)
    except PayloadError as exc:
        return f"is not a stream set: {exc}"
    return None


def stream_lengths(payload: str, entity: str) -> dict[str, int]:
    """Sample count of each documented stream in a raw payload, without building the samples.

    simdjson's lazy arrays know their length, so this costs a validating parse and no Python object per
    sample (about a third of ``orjson.loads``). A document simdjson refuses (numbers beyond 64 bits) is
    parsed by orjson instead. Raises PayloadError (a ValueError) when the payload is not a stream set.
    """
    if not isinstance(payload, str):
        raise PayloadError(entity, "<streams payload>", f"is {type(payload).__name__}, not JSON text")
    try:
        parsed: Any = simdjson.Parser().parse(payload.encode())
    except (ValueError, RuntimeError):  # simdjson's errors; a UnicodeDecodeError is a ValueError
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(entity, "<streams payload>", f"is not valid JSON: {exc}") from None
    return {t: len(d) for t, d in streams_by_type(parsed, entity).items() if t in DOCUMENTED_STREAM_TYPES}


def _numeric(values: list[Any], dtype: pl.DataType, entity: str, stream_type: str) -> pl.Series:
    """A typed series; integer streams accept whole floats (some exports write 0.0) and reject the rest."""
    try:
        series = pl.Series(values, dtype=pl.Float64, strict=True)
    except (TypeError, pl.exceptions.PolarsError):
        raise PayloadError(entity, f"{stream_type}.data", "holds non-numeric samples") from None
    if dtype.is_integer():
        whole = series.drop_nulls()
        if whole.len() and not ((whole == whole.round()).all()):
            raise PayloadError(entity, f"{stream_type}.data", "holds fractional values for an integer stream")
        info = {pl.Int16: (-32768, 32767), pl.Int32: (-(2**31), 2**31 - 1)}[dtype]
        if whole.len() and (whole.min() < info[0] or whole.max() > info[1]):  # type: ignore[operator]
            raise PayloadError(entity, f"{stream_type}.data", f"is out of range for {dtype}")
        return series.cast(dtype)
    return series


_BOOLEAN_SAMPLE_TYPES = {bool, type(None)}
_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def activity_stream_frame(activity_id: int, activity_date: Any, payload: Any) -> pl.DataFrame:
    """One activity's samples as typed rows; raises PayloadError naming the activity and stream."""
    entity = f"activity {activity_id}"
    streams = streams_by_type(payload, entity)
    lengths = {t: len(d) for t, d in streams.items() if t in DOCUMENTED_STREAM_TYPES}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{t}={n}" for t, n in sorted(lengths.items()))
        raise PayloadError(entity, "<streams>", f"have unequal lengths ({detail})")
    n = next(iter(lengths.values()), 0)
    columns: dict[str, pl.Series] = {}
    for stream_type, column in SCALAR_STREAMS.items():
        dtype = STREAM_SCHEMA[column]
        if stream_type not in streams:
            columns[column] = pl.Series(column, [None] * n, dtype=dtype)
        elif dtype == pl.Boolean:
            values = streams[stream_type]
            if not set(map(type, values)) <= _BOOLEAN_SAMPLE_TYPES:  # map/set run in C: no Python loop per sample
                raise PayloadError(entity, f"{stream_type}.data", "holds non-boolean samples")
            columns[column] = pl.Series(column, values, dtype=pl.Boolean)
        else:
            columns[column] = _numeric(streams[stream_type], dtype, entity, stream_type).alias(column)
    points = streams.get("latlng")
    if points is None:
        points = [None] * n
    try:
        if set(map(type, points)) <= {list} and set(map(len, points)) <= {2}:
            # Every sample a pair (the usual case): C-level map, no Python code per point.
            lat, lng, pairs = list(map(_first, points)), list(map(_second, points)), True
        else:
            # Plain comprehensions: building a List(Float64) series goes through Python per point, ~30x slower.
            lat = [None if p is None else p[0] for p in points]
            lng = [None if p is None else p[1] for p in points]
            pairs = all(p is None or len(p) == 2 for p in points)
        columns["lat"] = pl.Series("lat", lat, dtype=pl.Float64, strict=True)
        columns["lng"] = pl.Series("lng", lng, dtype=pl.Float64, strict=True)
    except (TypeError, IndexError, KeyError, pl.exceptions.PolarsError):
        pairs = False
    if not pairs:
        raise PayloadError(entity, "latlng.data", "holds samples that are not [lat, lng] pairs")
    frame = pl.DataFrame(columns).with_columns(
        pl.lit(activity_id, dtype=pl.Int64).alias("activity_id"),
        pl.lit(activity_date, dtype=pl.Date).alias("activity_date"),
        pl.int_range(0, n, dtype=pl.Int32).alias("sample_index"),
        pl.lit("api").alias("source"),
    )
    return frame.select(list(STREAM_SCHEMA))


def streams_frame(raw: pl.DataFrame) -> pl.DataFrame:
    """Typed samples of every activity in a raw streams frame (rows with status "ok")."""
    if raw.width == 0:  # streams_raw never materialised (an archive-only mirror)
        return pl.DataFrame(schema=STREAM_SCHEMA)
    frames = list(_iter_activity_frames(raw.filter(pl.col("status") == "ok")))
    if not frames:
        return pl.DataFrame(schema=STREAM_SCHEMA)
    return pl.concat(frames, how="vertical", rechunk=True)


def _iter_activity_frames(raw: pl.DataFrame) -> Iterable[pl.DataFrame]:
    for activity_id, activity_date, payload in raw.select("activity_id", "activity_date", "payload").iter_rows():
        try:
            parsed = orjson.loads(payload)  # ~3x faster than json on large sample arrays
        except (TypeError, orjson.JSONDecodeError) as exc:
            raise PayloadError(f"activity {activity_id}", "<streams payload>", f"is not valid JSON: {exc}") from None
        yield activity_stream_frame(activity_id, activity_date, parsed)


def archived_recordings(export_raw: pl.DataFrame) -> set[int]:
    """Activities whose original file the export archive holds and that decoded: they need no API request."""
    if export_raw.width == 0 or export_raw.is_empty():
        return set()
    return set(export_raw.filter(pl.col("status") == "ok").get_column("activity_id").to_list())


def recorded_streams_frame(
    export_raw: pl.DataFrame, read_samples: Callable[[str, str], pl.DataFrame]
) -> pl.DataFrame:
    """Typed samples of the archive's decoded files: ``read_samples(file_sha256, file_path)`` gives one
    file's samples (one row per record in file order); each becomes one ``activity_streams`` row."""
    if export_raw.width == 0 or export_raw.is_empty():
        return pl.DataFrame(schema=STREAM_SCHEMA)
    frames = []
    ok = export_raw.filter(pl.col("status") == "ok")
    for activity_id, activity_date, sha, path in ok.select(
        "activity_id", "activity_date", "file_sha256", "file_path"
    ).iter_rows():
        samples = read_samples(sha, path)
        frames.append(samples.with_columns(
            pl.lit(activity_id, dtype=pl.Int64).alias("activity_id"),
            pl.lit(activity_date, dtype=pl.Date).alias("activity_date"),
            pl.int_range(0, samples.height, dtype=pl.Int32).alias("sample_index"),
            pl.lit("export").alias("source"),
        ).select([pl.col(c).cast(t) for c, t in STREAM_SCHEMA.items()]))
    if not frames:
        return pl.DataFrame(schema=STREAM_SCHEMA)
    return pl.concat(frames, how="vertical", rechunk=True)
