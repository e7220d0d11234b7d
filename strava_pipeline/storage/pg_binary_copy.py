"""Encode a polars frame as PostgreSQL binary COPY data, vectorised with numpy over the Arrow buffers.

Why not ``psycopg``'s ``copy.write_row``: it runs Python per row and per value, which is what limits a
multi-million-row load of per-second activity streams.  Here each column is converted once per chunk from
its Arrow buffers to big-endian bytes and the rows are interleaved with numpy, so there is no per-row
Python (except for array-typed columns, which are rare and small).

Binary COPY layout (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4):
header = 11-byte signature + int32 flags + int32 extension length; each row = int16 field count, then per
field int32 byte length (-1 for NULL, no bytes follow) and the value in the type's binary send format;
trailer = int16 -1.  All integers are big-endian.

Two encoders:

* all columns fixed width (the hot case: numeric stream samples): rows are a packed numpy structured
  array with big-endian fields, filled column by column; NULL fields are then cut out with one boolean
  byte mask.  Close to memcpy speed.
* any variable-width column (text, jsonb, arrays): per-row field offsets from cumulative sums, then every
  column is scattered into the output with fancy indexing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "COPY_HEADER",
    "COPY_TRAILER",
    "PG_TYPES",
    "PgType",
    "UnsupportedTypeError",
    "encode_chunks",
    "encode_table",
    "encoded_dtype",
    "prepare_frame",
]

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)

_PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01 in days
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_JSONB_VERSION = b"\x01"


class UnsupportedTypeError(TypeError):
    """The target column's PostgreSQL type, or the frame column's dtype for it, is not supported."""


@dataclass(frozen=True)
class PgType:
    """How one PostgreSQL type is encoded.

    ``kind``: "fixed" (numpy big-endian ``wire`` dtype), "text" (utf-8 bytes after ``prefix``), or
    "array" (one-dimensional array of ``element_oid``, encoded per row).
    """

    name: str
    kind: str
    wire: str | None = None
    prefix: bytes = b""
    element_oid: int | None = None


# Keyed by the base type OID (domains are resolved to their base type by the catalog query).
PG_TYPES: dict[int, PgType] = {
    16: PgType("boolean", "fixed", "|u1"),
    20: PgType("bigint", "fixed", ">i8"),
    21: PgType("smallint", "fixed", ">i2"),
    23: PgType("integer", "fixed", ">i4"),
    700: PgType("real", "fixed", ">f4"),
    701: PgType("double precision", "fixed", ">f8"),
    1082: PgType("date", "fixed", ">i4"),
    1114: PgType("timestamp without time zone", "fixed", ">i8"),
    1184: PgType("timestamp with time zone", "fixed", ">i8"),
    25: PgType("text", "text"),
    1043: PgType("character varying", "text"),
    1042: PgType("character", "text"),
    114: PgType("json", "text"),
    3802: PgType("jsonb", "text", prefix=_JSONB_VERSION),
    1009: PgType("text[]", "array", element_oid=25),
    1022: PgType("double precision[]", "array", element_oid=701),
    1016: PgType("bigint[]", "array", element_oid=20),
    1007: PgType("integer[]", "array", element_oid=23),
}

_INTEGER_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_FLOAT_DTYPES = (pl.Float32, pl.Float64)
_NUMERIC_POLARS: dict[str, pl.DataType] = {
    ">i8": pl.Int64(),
    ">i4": pl.Int32(),
    ">i2": pl.Int16(),
    ">f8": pl.Float64(),
    ">f4": pl.Float32(),
}


def encoded_dtype(pg: PgType) -> pl.DataType:
    """The polars dtype a column is cast to before encoding as ``pg``."""
    if pg.kind == "text":
        return pl.String()
    if pg.kind == "array":
        assert pg.element_oid is not None
        return pl.List({25: pl.String, 701: pl.Float64, 20: pl.Int64, 23: pl.Int32}[pg.element_oid])
    if pg.name == "boolean":
        return pl.Boolean()
    if pg.name == "date":
        return pl.Date()
    if pg.name == "timestamp with time zone":
        return pl.Datetime("us", "UTC")
    if pg.name == "timestamp without time zone":
        return pl.Datetime("us")
    assert pg.wire is not None
    return _NUMERIC_POLARS[pg.wire]


def _cast_expr(name: str, dtype: pl.DataType, pg: PgType) -> pl.Expr:
    """Expression casting frame column ``name`` to the dtype encoded for ``pg``; raise if incompatible.

    Only lossless-in-kind conversions are allowed (int -> wider int/float, string -> text); anything else
    (e.g. a naive datetime into timestamptz) is a caller bug that would silently corrupt data.
    """
    col = pl.col(name)
    base = dtype.base_type() if hasattr(dtype, "base_type") else dtype

    def bad(expected: str) -> UnsupportedTypeError:
        return UnsupportedTypeError(f"column {name!r}: cannot load polars {dtype} into {pg.name} ({expected})")

    if dtype == pl.Null:  # an all-null column: any target type will do
        return col.cast(encoded_dtype(pg))
    if pg.kind == "text":
        if dtype in (pl.String, pl.Categorical) or base is pl.Enum:
            return col.cast(pl.String)
        raise bad("expected a String column")
    if pg.kind == "array":
        if not isinstance(dtype, pl.List):
            raise bad("expected a List column")
        inner = dtype.inner
        if pg.element_oid == 25:
            if inner in (pl.String, pl.Null):
                return col.cast(pl.List(pl.String))
            raise bad("expected List(String)")
        if pg.element_oid == 701 and (inner in _FLOAT_DTYPES or inner in _INTEGER_DTYPES or inner == pl.Null):
            return col.cast(pl.List(pl.Float64))
        if pg.element_oid in (20, 23) and (inner in _INTEGER_DTYPES or inner == pl.Null):
            return col.cast(pl.List(pl.Int64 if pg.element_oid == 20 else pl.Int32), strict=True)
        raise bad("incompatible list element type")
    # fixed width
    if pg.name == "boolean":
        if dtype == pl.Boolean:
            return col
        raise bad("expected Boolean")
    if pg.name == "date":
        if dtype == pl.Date:
            return col
        raise bad("expected Date")
    if pg.name.startswith("timestamp"):
        if not isinstance(dtype, pl.Datetime):
            raise bad("expected Datetime")
        if pg.name == "timestamp with time zone":
            if dtype.time_zone is None:
                raise bad("expected a timezone-aware Datetime; naive datetimes are ambiguous")
            return col.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        if dtype.time_zone is not None:
            raise bad("expected a naive Datetime for a column without time zone")
        return col.dt.cast_time_unit("us")
    assert pg.wire is not None
    target = _NUMERIC_POLARS[pg.wire]
    if dtype in _INTEGER_DTYPES:
        return col.cast(target, strict=True)
    if dtype in _FLOAT_DTYPES and target in _FLOAT_DTYPES:
        return col.cast(target)
    raise bad("expected a numeric column of a compatible kind")


def prepare_frame(frame: pl.DataFrame, columns: Sequence[tuple[str, PgType]]) -> pl.DataFrame:
    """Select ``columns`` (in that order) from ``frame``, cast to the dtypes the encoder expects."""
    exprs = [_cast_expr(name, frame.schema[name], pg).alias(name) for name, pg in columns]
    try:
        return frame.select(exprs)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise ValueError(f"cannot convert frame for loading: {exc}") from exc


# ---------------------------------------------------------------------------------------------------------
# Per-chunk column extraction from Arrow buffers


@dataclass
class _Fixed:
    values: np.ndarray  # native-endian values, length n
    wire: np.dtype  # big-endian dtype sent on the wire
    valid: np.ndarray | None  # None = no nulls


@dataclass
class _Var:
    data: np.ndarray  # uint8 payload bytes
    starts: np.ndarray  # int64 start of each row's payload in ``data``
    lengths: np.ndarray  # int64 payload length, 0 for NULL rows
    valid: np.ndarray | None
    prefix: bytes


def _validity(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _fixed_column(arr: pa.Array, pg: PgType) -> _Fixed:
    n = len(arr)
    assert pg.wire is not None
    wire = np.dtype(pg.wire)
    valid = _validity(arr)
    if pg.name == "boolean":
        values = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).view(np.uint8)
    else:
        native = wire.newbyteorder("=")
        values = np.frombuffer(arr.buffers()[1], dtype=native, count=arr.offset + n)[arr.offset :]
        if pg.name == "date":
            values = values - np.int32(_PG_EPOCH_DAYS)
        elif pg.name.startswith("timestamp"):
            values = values - np.int64(_PG_EPOCH_US)
    return _Fixed(values, wire, valid)


def _text_column(arr: pa.Array, pg: PgType) -> _Var:
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    n = len(arr)
    valid = _validity(arr)
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64, count=arr.offset + n + 1)[arr.offset :]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    if valid is not None:
        lengths = np.where(valid, lengths, 0)
    return _Var(data, offsets[:-1], lengths, valid, pg.prefix)


_ELEMENT_FORMAT = {25: None, 701: ">d", 20: ">q", 23: ">i"}


def _encode_array(values: list | None, element_oid: int) -> bytes:
    """One-dimensional array in array_send format (per row: array columns are small and rare)."""
    assert values is not None
    if not values:
        return struct.pack(">iiI", 0, 0, element_oid)
    fmt = _ELEMENT_FORMAT[element_oid]
    parts = [struct.pack(">iiIii", 1, int(any(v is None for v in values)), element_oid, len(values), 1)]
    for value in values:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        elif fmt is None:
            raw = value.encode("utf-8")
            parts.append(struct.pack(">i", len(raw)) + raw)
        else:
            parts.append(struct.pack(">i", struct.calcsize(fmt)) + struct.pack(fmt, value))
    return b"".join(parts)


def _array_column(arr: pa.Array, pg: PgType) -> _Var:
    assert pg.element_oid is not None
    valid = _validity(arr)
    encoded = [b"" if v is None else _encode_array(v, pg.element_oid) for v in arr.to_pylist()]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    starts = np.zeros(len(encoded), dtype=np.int64)
    if len(encoded) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return _Var(data, starts, lengths, valid, b"")


def _column(arr: pa.Array | pa.ChunkedArray, pg: PgType) -> _Fixed | _Var:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if pg.kind == "fixed":
        return _fixed_column(arr, pg)
    if pg.kind == "text":
        return _text_column(arr, pg)
    return _array_column(arr, pg)


# ---------------------------------------------------------------------------------------------------------
# Row interleaving


_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_NULL_LENGTH = np.uint32(0xFFFF_FFFF)  # int32 -1, same bytes in either byte order


def _strided(flat: np.ndarray, width: int, offset: int, stride: int, n: int) -> np.ndarray:
    """View of ``n`` unaligned ``width``-byte words at ``offset + i*stride`` in a uint8 buffer."""
    return np.ndarray((n,), dtype=_UNSIGNED[width], buffer=flat, offset=offset, strides=(stride,))


def _drop_bytes(flat: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``flat[keep]`` via Arrow's filter kernel, which skips runs of kept bytes by machine word (~3x numpy)."""
    size = len(flat)
    bitmap = pa.py_buffer(np.packbits(keep.reshape(-1), bitorder="little"))
    mask = pa.BooleanArray.from_buffers(pa.bool_(), size, [None, bitmap])
    data = pa.Array.from_buffers(pa.uint8(), size, [None, pa.py_buffer(flat)])
    kept = pc.filter(data, mask)
    return np.frombuffer(kept.buffers()[1], dtype=np.uint8, count=len(kept))


def _encode_all_fixed(cols: list[_Fixed], n: int) -> np.ndarray:
    """Rows of identical maximal layout, filled column by column; NULL value bytes are then cut out.

    Each column is byte-swapped contiguously (fast) and then copied as unsigned words into its strided slot;
    casting straight into big-endian strided fields would take numpy's slow unaligned-cast path.
    """
    row = [struct.pack(">h", len(cols))]
    value_offsets = []
    length_offsets = []
    offset = 2
    for col in cols:
        row.append(struct.pack(">i", col.wire.itemsize) + bytes(col.wire.itemsize))
        length_offsets.append(offset)
        value_offsets.append(offset + 4)
        offset += 4 + col.wire.itemsize
    template = np.frombuffer(b"".join(row), dtype=np.uint8)
    width = len(template)
    rows = np.empty((n, width), dtype=np.uint8)
    rows[...] = template
    flat = rows.reshape(-1)
    for col, length_at, value_at in zip(cols, length_offsets, value_offsets, strict=True):
        size = col.wire.itemsize
        _strided(flat, size, value_at, width, n)[...] = col.values.astype(col.wire).view(_UNSIGNED[size])
        if col.valid is not None:
            length = np.uint32(int.from_bytes(struct.pack(">i", size), "little"))
            _strided(flat, 4, length_at, width, n)[...] = np.where(col.valid, length, _NULL_LENGTH)
    nullable = [(col, at) for col, at in zip(cols, value_offsets, strict=True) if col.valid is not None]
    if not nullable:
        return flat
    keep = np.ones(n * width, dtype=np.uint8)
    for col, value_at in nullable:  # same word trick: one unaligned store per row, not a 2-D broadcast
        size = col.wire.itemsize
        ones = _UNSIGNED[size](int.from_bytes(b"\x01" * size, "little"))
        _strided(keep, size, value_at, width, n)[...] = np.where(col.valid, ones, _UNSIGNED[size](0))
    return _drop_bytes(flat, keep)


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values), dtype=np.int64)
    if len(values) > 1:
        np.cumsum(values[:-1], out=out[1:])
    return out


def _scatter_bytes(out: np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    """out[positions[i] + b] = values[i, b] for every row i (values is an (m, w) uint8 array)."""
    width = values.shape[1]
    out[positions[:, None] + np.arange(width, dtype=np.int64)] = values


#: Mean value length above which text columns are copied row by row instead of byte-indexed.
_LONG_VALUE_BYTES = 256


def _encode_general(cols: list[_Fixed | _Var], n: int) -> np.ndarray:
    """Variable-width rows: field start offsets from cumulative sums, then per-column scatters."""
    sizes = []
    for col in cols:
        if isinstance(col, _Fixed):
            size = np.full(n, 4 + col.wire.itemsize, dtype=np.int64)
            if col.valid is not None:
                size[~col.valid] = 4
        else:
            size = 4 + col.lengths + len(col.prefix)
            if col.valid is not None:
                size[~col.valid] = 4
        sizes.append(size)
    row_size = np.full(n, 2, dtype=np.int64)
    for size in sizes:
        row_size += size
    row_start = _exclusive_cumsum(row_size)
    total = int(row_start[-1] + row_size[-1]) if n else 0
    out = np.empty(total, dtype=np.uint8)
    count = np.frombuffer(struct.pack(">h", len(cols)), dtype=np.uint8)
    out[row_start] = count[0]
    out[row_start + 1] = count[1]
    pos = row_start + 2
    for col, size in zip(cols, sizes, strict=True):
        field_len = (size - 4).astype(">i4")
        if col.valid is not None:
            field_len[~col.valid] = -1
        _scatter_bytes(out, pos, field_len.view(np.uint8).reshape(n, 4))
        value_pos = pos + 4
        if isinstance(col, _Fixed):
            wire_values = col.values.astype(col.wire).view(np.uint8).reshape(n, col.wire.itemsize)
            if col.valid is None:
                _scatter_bytes(out, value_pos, wire_values)
            else:
                _scatter_bytes(out, value_pos[col.valid], wire_values[col.valid])
        else:
            if col.prefix:
                rows = value_pos if col.valid is None else value_pos[col.valid]
                prefix = np.frombuffer(col.prefix, dtype=np.uint8)
                _scatter_bytes(out, rows, np.broadcast_to(prefix, (len(rows), len(prefix))))
                value_pos = value_pos + len(col.prefix)
            lengths = col.lengths
            nbytes = int(lengths.sum())
            if nbytes > _LONG_VALUE_BYTES * n:
                # Few long values (raw JSON bodies): one memcpy per row beats a per-byte index that would
                # need 8 bytes of int64 positions for every byte of payload.
                for dst, src, length in zip(value_pos.tolist(), col.starts.tolist(), lengths.tolist(), strict=True):
                    if length:
                        out[dst : dst + length] = col.data[src : src + length]
            elif nbytes:
                within = np.arange(nbytes, dtype=np.int64) - np.repeat(_exclusive_cumsum(lengths), lengths)
                out[np.repeat(value_pos, lengths) + within] = col.data[np.repeat(col.starts, lengths) + within]
        pos = pos + size
    return out


def encode_table(table: pa.Table, types: Sequence[PgType]) -> np.ndarray:
    """Encode the rows of ``table`` (already prepared by :func:`prepare_frame`) without header/trailer."""
    n = table.num_rows
    if n == 0:
        return np.empty(0, dtype=np.uint8)
    cols = [_column(table.column(i), pg) for i, pg in enumerate(types)]
    if all(isinstance(col, _Fixed) for col in cols):
        return _encode_all_fixed(cols, n)  # type: ignore[arg-type]
    return _encode_general(cols, n)


def encode_chunks(prepared: pl.DataFrame, types: Sequence[PgType], chunk_rows: int = 100_000) -> Iterator[np.ndarray]:
    """Yield encoded row data of ``prepared`` in chunks of ``chunk_rows`` rows (no header/trailer)."""
    for offset in range(0, prepared.height, chunk_rows):
        yield encode_table(prepared.slice(offset, chunk_rows).to_arrow(), types)
