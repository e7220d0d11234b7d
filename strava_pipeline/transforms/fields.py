"""Declarative extraction of typed columns from JSON payloads.

Strava payloads are loosely typed (ints where floats are expected, ``[]`` or ``null`` for "no GPS",
fields that come and go with API versions). Letting Polars infer a schema from a list of dicts would make
column types depend on which activities happen to be in a batch, so every typed table is described once,
column by column, and each value is coerced with an error that names the record and the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from strava_pipeline.transforms.errors import PayloadError

_MISSING = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Field:
    """One typed column: where it comes from in the payload and how it is coerced."""

    column: str
    path: tuple[str | int, ...]
    dtype: pl.DataType
    required: bool = False
    convert: Callable[[Any], Any] | None = None

    def extract(self, payload: Mapping[str, Any], entity: str) -> Any:
        """Return the coerced value of this field, ``None`` when absent, or raise PayloadError."""
        value: Any = payload
        for step in self.path:
            if isinstance(step, int):
                if isinstance(value, list) and len(value) > step:
                    value = value[step]
                else:
                    value = _MISSING
                    break
            elif isinstance(value, Mapping) and step in value:
                value = value[step]
            else:
                value = _MISSING
                break
        dotted = ".".join(str(s) for s in self.path)
        if value is _MISSING or value is None:
            if self.required:
                raise PayloadError(entity, dotted, "is missing")
            return None
        try:
            if self.convert is not None:
                return self.convert(value)
            return coerce(value, self.dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise PayloadError(entity, dotted, f"has an unusable value {value!r:.80}: {exc}") from None


def coerce(value: Any, dtype: pl.DataType) -> Any:
    """Coerce one JSON value to the Python value of a Polars dtype, strictly enough to catch nonsense."""
    if dtype == pl.Boolean:
        if isinstance(value, bool):
            return value
        raise TypeError("expected a boolean")
    if dtype.is_integer():
        if isinstance(value, bool):
            raise TypeError("expected an integer, got a boolean")
        whole_float = isinstance(value, float) and value.is_integer()
        digits = isinstance(value, str) and value.strip().lstrip("-").isdigit()
        if not (isinstance(value, int) or whole_float or digits):
            raise TypeError("expected an integer")
        result = int(value)
        if not _INT64_MIN <= result <= _INT64_MAX:
            raise ValueError("is out of the 64-bit integer range")
        return result
    if dtype.is_float():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected a number")
        result = float(value)
        if math.isnan(result) or math.isinf(result):
            raise ValueError("expected a finite number")
        return result
    if dtype == pl.String:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise TypeError("expected a string")
    if dtype == pl.Date:
        return parse_date(value)
    if isinstance(dtype, pl.Datetime):
        return parse_timestamp(value, aware=dtype.time_zone is not None)
    raise TypeError(f"unsupported dtype {dtype}")


def parse_timestamp(value: Any, *, aware: bool) -> datetime:
    """Parse Strava's ISO-8601 timestamps.

    ``start_date`` is UTC; ``start_date_local`` is a local wall-clock time carrying a misleading ``Z``,
    so for naive columns the zone designator is dropped rather than applied.
    """
    if not isinstance(value, str):
        raise TypeError("expected an ISO-8601 timestamp string")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if aware:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    return parsed.replace(tzinfo=None)


def parse_date(value: Any) -> date:
    """Parse the date part of an ISO-8601 string (local dates keep their wall-clock day)."""
    if not isinstance(value, str) or len(value) < 10:
        raise TypeError("expected an ISO-8601 date")
    return date.fromisoformat(value[:10])


def schema_of(fields: Sequence[Field]) -> dict[str, pl.DataType]:
    """The Polars schema described by a field list."""
    return {f.column: f.dtype for f in fields}


def extract_frame(
    payloads: Iterable[tuple[str, Mapping[str, Any]]], fields: Sequence[Field]
) -> pl.DataFrame:
    """Build a typed frame from ``(entity label, payload)`` pairs, one row per payload."""
    columns: dict[str, list[Any]] = {f.column: [] for f in fields}
    for entity, payload in payloads:
        if not isinstance(payload, Mapping):
            raise PayloadError(entity, "<payload>", f"is a {type(payload).__name__}, not a JSON object")
        for f in fields:
            columns[f.column].append(f.extract(payload, entity))
    return pl.DataFrame(columns, schema=schema_of(fields), strict=True)

#: The column of every daily-partitioned table that holds its partition: the activity's local calendar date.
PARTITION_COLUMN = "activity_date"
