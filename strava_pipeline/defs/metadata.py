"""Output metadata every asset shows in the UI: row count, column schema, a small preview."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from strava_pipeline.transforms.fields import PARTITION_COLUMN

#: Dagster kinds of every asset the warehouse IO manager stores (shown as badges in the UI).
WAREHOUSE_KINDS = {"python", "parquet", "postgres"}


def schema_of(schema: Mapping[str, pl.DataType]) -> dg.TableSchema:
    """Polars column types as Dagster's standard column schema (shown in the UI's asset page)."""
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in schema.items()])


def table_metadata(schema: Mapping[str, pl.DataType], *, partitioned: bool = True) -> dict[str, Any]:
    """Definition metadata of a table asset: its columns show in the UI before the first materialisation,
    and the IO manager learns which column holds the partition."""
    metadata: dict[str, Any] = {"dagster/column_schema": schema_of(schema)}
    if partitioned:
        metadata["partition_column"] = PARTITION_COLUMN
    return metadata


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    """The frame's columns and Polars types, as Dagster's standard column schema."""
    return schema_of(frame.schema)


def preview_markdown(frame: pl.DataFrame, rows: int = 5, max_columns: int = 8, width: int = 40) -> str:
    """A markdown table of the first rows, truncated so raw JSON payloads don't flood the UI."""
    if frame.is_empty():
        return "_no rows_"
    head = frame.head(rows).select(frame.columns[:max_columns])
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        cells = []
        for value in row:
            text = "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
            cells.append(text if len(text) <= width else text[: width - 1] + "…")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def frame_metadata(frame: pl.DataFrame, *, partitions: int = 1, **extra: Any) -> dict[str, Any]:
    """Standard metadata for a materialised frame.

    Dagster copies output metadata onto the materialisation of every partition of a ranged run, and
    serialising it is most of a backfill's overhead (about 30 ms per partition with a preview and a
    50-column schema). So a run over many days records only small values, named for what they are (the
    run's total, not the day's); the column schema is static definition metadata of each asset.
    """
    if partitions > 1:
        return {"rows_in_run": frame.height, "partitions_in_run": partitions, **extra}
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": column_schema(frame),
        "preview": dg.MetadataValue.md(preview_markdown(frame)),
        **extra,
    }
