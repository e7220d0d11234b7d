"""Output metadata every asset shows in the UI: row counts, column schema, a small preview."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl
from psycopg import sql

from strava_pipeline.storage.databases import connect
from strava_pipeline.transforms.column_docs import description
from strava_pipeline.transforms.fields import PARTITION_COLUMN

#: Dagster kinds of every asset the warehouse IO manager stores (shown as badges in the UI).
WAREHOUSE_KINDS = {"python", "parquet", "postgres"}

#: The UI's headline "Row count" of an asset: here the rows its table holds after the run (see
#: :func:`total_rows_metadata`); the run's own rows are ``rows_in_run`` beside it.
ROW_COUNT = "dagster/row_count"


def schema_of(schema: Mapping[str, pl.DataType], table: str) -> dg.TableSchema:
    """Polars column types as Dagster's standard column schema, each column with its description from
    ``transforms.column_docs`` (the same text PostgreSQL's ``COMMENT ON COLUMN`` holds)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(name, str(dtype), description=description(table, name)) for name, dtype in schema.items()
    ])


def table_metadata(schema: Mapping[str, pl.DataType], *, table: str, partitioned: bool = True) -> dict[str, Any]:
    """Definition metadata of a table asset: its documented columns show in the UI before the first
    materialisation, and the IO manager learns which column holds the partition."""
    metadata: dict[str, Any] = {"dagster/column_schema": schema_of(schema, table)}
    if partitioned:
        metadata["partition_column"] = PARTITION_COLUMN
    return metadata


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
    """Standard metadata for a materialised frame: what this run wrote.

    Dagster copies output metadata onto the materialisation of every partition of a ranged run, and
    serialising it is most of a backfill's overhead (about 30 ms per partition with a preview and a
    50-column schema). So every run records only small values, named for what they are (the run's rows,
    not the day's), and a one-partition run adds a preview. The column schema is static definition
    metadata of each asset (:func:`table_metadata`), and the headline row count is the table's total
    (:func:`total_rows_metadata`).
    """
    metadata: dict[str, Any] = {"rows_in_run": frame.height, "partitions_in_run": partitions, **extra}
    if partitions == 1:
        metadata["preview"] = dg.MetadataValue.md(preview_markdown(frame))
    return metadata


def total_rows_metadata(database_url: str, table: str, versions_table: str) -> dict[str, Any]:
    """The UI's headline "Row count": the rows ``table`` (``schema.name``) holds once this run committed, so a
    run over a few days of a large table shows the table, not the days.

    Summed from ``versions_table`` (each partition's row count, committed in the same transaction as its rows;
    migration 0015 recorded the partitions written before there was one) rather than counted: a ``count(*)``
    per materialisation reads the whole table each time, which grows with the square of a backfill's length
    (0.1 s per million rows, once per batch of 92 days).
    """
    with connect(database_url) as conn:
        row = conn.execute(
            sql.SQL("SELECT coalesce(sum(row_count), 0) FROM {} WHERE table_name = %s").format(
                sql.Identifier(*versions_table.split(".", 1))),
            (table,),
        ).fetchone()
    return {ROW_COUNT: int(row[0]) if row else 0}
