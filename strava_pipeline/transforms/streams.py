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
from datetime import date
from typing import Any

import numpy as np
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
    """``body`` parsed, and why jsonb cannot store it verbatim (None when it can): see ``jsonb_unstorable_reason``.

    simdjson's validating parse comes first: it refuses everything orjson refuses (NaN, Infinity, 1e400,
    lone surrogates, invalid UTF-8) and builds no Python object per sample, 0.4 ms for a one-hour stream
    set where ``orjson.loads`` takes 2.8 ms (measured on the simulator's bodies; every streams body is judged
    on a prefetch thread holding the GIL). Only a body it refuses (one with an integer beyond 64 bits, which
    orjson accepts, or a bad one) is parsed by orjson, whose verdict and message are the ones that count.
    """
    try:
        parsed: Any = simdjson.Parser().parse(body)
    except (ValueError, RuntimeError):  # simdjson's errors; a UnicodeDecodeError is a ValueError
        pass
    else:
        return parsed, _nul_escape_reason(body)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            json.loads(body, parse_constant=_refuse_constant)
        except ValueError as lenient:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if str(lenient).startswith("holds "):
                return None, str(lenient)
        return None, f"is not strict JSON (RFC 8259): {exc}"
    return parsed, _nul_escape_reason(body)


def _nul_escape_reason(body: bytes) -> str | None:
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        return "holds a \\u0000 escape, which PostgreSQL's jsonb cannot store"
    return None


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
    """The samples, in row order: consecutive usual payloads as one frame (see ``_TypicalColumns``), any
    other payload through ``activity_stream_frame``."""
    typical = _TypicalColumns()
    for activity_id, activity_date, payload in raw.select("activity_id", "activity_date", "payload").iter_rows():
        if typical.add(activity_id, activity_date, payload):
            continue
        if typical.rows:
            yield typical.frame()
            typical = _TypicalColumns()
        try:
            parsed = orjson.loads(payload)  # ~3x faster than json on large sample arrays
        except (TypeError, orjson.JSONDecodeError) as exc:
            raise PayloadError(f"activity {activity_id}", "<streams payload>", f"is not valid JSON: {exc}") from None
        yield activity_stream_frame(activity_id, activity_date, parsed)
    if typical.rows:
        yield typical.frame()


_INTEGER_RANGES = {pl.Int16: (-32768, 32767), pl.Int32: (-(2**31), 2**31 - 1)}
_OPEN, _CLOSE, _COMMA = ord("["), ord("]"), ord(",")
_EPOCH = date(1970, 1, 1)


class _TypicalColumns:
    """``activity_stream_frame`` of usual payload texts, several activities gathered column by column.

    The usual payload: a ``key_by_type`` object without duplicate keys, every numeric stream's samples
    numbers (no null), ``moving`` booleans or null, ``latlng`` pairs of numbers, integer streams whole and
    in range, equal lengths. Its numbers go from simdjson's parse straight into arrays (no Python object
    per sample, no frame per activity: a third of the time of ``orjson.loads`` and the lists and frames
    built from it), with the same values (both parsers round correctly; ``-0`` is the integer 0 in both)
    and the same types (an integer stream is checked and cast as ``_numeric`` does). :meth:`add` refuses
    anything else, including every payload the orjson path would refuse, and that path decides.
    """

    def __init__(self) -> None:
        self.rows = 0
        numeric = [c for c in (*SCALAR_STREAMS.values(), "lat", "lng") if STREAM_SCHEMA[c] != pl.Boolean]
        self._values: dict[str, list[np.ndarray]] = {c: [] for c in numeric}
        self._valid: dict[str, list[np.ndarray]] = {c: [] for c in self._values}
        self._moving: list[bool | None] = []
        self._ids: list[np.ndarray] = []
        self._days: list[np.ndarray] = []
        self._indices: list[np.ndarray] = []

    def add(self, activity_id: Any, activity_date: Any, payload: Any) -> bool:
        """Gather one activity's samples; False (nothing gathered) unless its payload is the usual one."""
        if type(activity_date) is not date or type(activity_id) is not int or not -(2**63) <= activity_id < 2**63:
            return False
        if not isinstance(payload, str) or payload.startswith("\ufeff"):  # simdjson skips a BOM, orjson refuses it
            return False
        try:
            document = simdjson.Parser().parse(payload.encode())
        except (ValueError, RuntimeError, UnicodeError):
            return False
        columns = _typical_columns(document, payload)
        del document
        if columns is None:
            return False
        n, numbers, moving = columns
        for column, values in numbers.items():
            if values is None:
                self._values[column].append(np.zeros(n, dtype=np.float64))
                self._valid[column].append(np.zeros(n, dtype=bool))
            else:
                self._values[column].append(values)
                self._valid[column].append(np.ones(n, dtype=bool))
        self._moving.extend(moving if moving is not None else [None] * n)
        self._ids.append(np.full(n, activity_id, dtype=np.int64))
        self._days.append(np.full(n, (activity_date - _EPOCH).days, dtype=np.int32))
        self._indices.append(np.arange(n, dtype=np.int32))
        self.rows += n
        return True

    def frame(self) -> pl.DataFrame:
        columns: dict[str, pl.Series] = {
            "activity_id": pl.Series("activity_id", np.concatenate(self._ids)),
            "activity_date": pl.Series("activity_date", np.concatenate(self._days)).cast(pl.Date),
            "sample_index": pl.Series("sample_index", np.concatenate(self._indices)),
            "moving": pl.Series("moving", self._moving, dtype=pl.Boolean),
            "source": pl.Series("source", [], dtype=pl.String).extend_constant("api", self.rows),
        }
        for column, parts in self._values.items():
            values, valid = np.concatenate(parts), np.concatenate(self._valid[column])
            series = pl.Series(column, values, dtype=pl.Float64)
            if not valid.all():
                series = pl.select(pl.when(pl.lit(pl.Series(valid))).then(series)).to_series().alias(column)
            columns[column] = series.cast(STREAM_SCHEMA[column])
        return pl.DataFrame([columns[c] for c in STREAM_SCHEMA])


def _typical_columns(
    document: Any, payload: str
) -> tuple[int, dict[str, np.ndarray | None], list[bool | None] | None] | None:
    """(samples, numeric column -> values or None when absent, ``moving`` or None) of a usual payload."""
    if not isinstance(document, simdjson.Object):
        return None
    keys = list(document.keys())
    if len(set(keys)) != len(keys):  # orjson keeps the last of duplicate keys, simdjson finds the first
        return None
    arrays: dict[str, Any] = {}
    for key in keys:
        stream = document[key]
        if not isinstance(stream, simdjson.Object):
            return None
        inner = list(stream.keys())
        if len(set(inner)) != len(inner) or not isinstance(stream.get("data"), simdjson.Array):
            return None
        arrays[key] = stream["data"]
    lengths = {t: len(a) for t, a in arrays.items() if t in DOCUMENTED_STREAM_TYPES}
    if len(set(lengths.values())) > 1:
        return None
    n = next(iter(lengths.values()), 0)
    # Flattening hides nesting ([[1],[2]] as two numbers): the only "[" allowed are each stream's data
    # array and one per latlng point (checked to be pairs below); any other (in a string too) means None.
    if payload.count("[") != len(arrays) + (n if "latlng" in arrays else 0):
        return None
    numbers: dict[str, np.ndarray | None] = {}
    moving: list[bool | None] | None = None
    try:
        for stream_type, column in SCALAR_STREAMS.items():
            dtype = STREAM_SCHEMA[column]
            if stream_type not in arrays:
                if dtype != pl.Boolean:
                    numbers[column] = None
            elif dtype == pl.Boolean:
                moving = arrays[stream_type].as_list()
                if not set(map(type, moving)) <= _BOOLEAN_SAMPLE_TYPES:
                    return None
            else:
                values = np.frombuffer(arrays[stream_type].as_buffer(of_type="d"), dtype=np.float64)
                if values.size != n:
                    return None
                if dtype.is_integer():
                    low, high = _INTEGER_RANGES[dtype]
                    if n and ((values != np.trunc(values)).any() or values.min() < low or values.max() > high):
                        return None
                numbers[column] = values
        if "latlng" in arrays:
            points = arrays["latlng"]
            flat = np.frombuffer(points.as_buffer(of_type="d"), dtype=np.float64)
            if flat.size != 2 * n or not _pairs(points.mini, n):
                return None
            numbers["lat"], numbers["lng"] = flat[0::2], flat[1::2]
        else:
            numbers["lat"] = numbers["lng"] = None
    except TypeError:  # as_buffer: a sample that is not a number (null, a string, an object)
        return None
    return n, numbers, moving


def _pairs(text: bytes | str, n: int) -> bool:
    """Whether minified JSON ``text``, an array of ``n`` elements whose leaves are all numbers, holds
    exactly ``n`` arrays of two (flattening alone cannot tell ``[[1],[2,3,4]]`` from two pairs).

    It does when every "[" but the first opens an element (depth 2, none deeper, ``n`` of them) and the
    commas alternate inside a pair (depth 2) and between pairs (depth 1), starting and ending inside one.
    """
    chars = np.frombuffer(text.encode() if isinstance(text, str) else text, dtype=np.uint8)
    opens, closes = np.flatnonzero(chars == _OPEN), np.flatnonzero(chars == _CLOSE)
    if n == 0:
        return opens.size == 1
    if opens.size != n + 1:
        return False
    # Depth just inside each "[" (the "[" itself counted) and at each comma: "[" before minus "]" before.
    if (np.arange(1, opens.size + 1) - np.searchsorted(closes, opens)).max() != 2:
        return False
    commas = np.flatnonzero(chars == _COMMA)
    if commas.size != 2 * n - 1:
        return False
    depth = np.searchsorted(opens, commas) - np.searchsorted(closes, commas)
    return bool((depth[0::2] == 2).all() and (depth[1::2] == 1).all())


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
