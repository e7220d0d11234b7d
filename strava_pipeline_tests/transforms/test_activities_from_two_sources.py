"""One row per activity whatever its source: the API summary of record, the archive for the rest."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl

from strava_pipeline.transforms.activities import (
    ACTIVITY_SCHEMA,
    EXPORT_ACTIVITY_RAW_SCHEMA,
    activities_frame,
    raw_activities_frame,
)

DAY = date(2024, 5, 4)
NOW = datetime(2024, 5, 5, tzinfo=UTC)


def _summary(activity_id: int, name: str, **extra: object) -> dict:
    return {"id": activity_id, "name": name, "sport_type": "Run", "start_date": "2024-05-04T07:00:00Z",
            "start_date_local": "2024-05-04T09:00:00Z", "distance": 10000.0, "moving_time": 3000, **extra}


def _export_rows(*summaries: dict) -> pl.DataFrame:
    return pl.DataFrame([
        {"activity_id": s["id"], "activity_date": DAY, "archive_sha256": "a" * 64, "csv_line": i + 2, "row": "[]",
         "summary": json.dumps(s), "status": "ok", "local_date_rule": "fit_local_timestamp", "imported_at": NOW}
        for i, s in enumerate(summaries)
    ], schema=EXPORT_ACTIVITY_RAW_SCHEMA)


def test_the_api_summary_is_the_row_of_record_and_the_archive_adds_what_only_it_has() -> None:
    api = raw_activities_frame([_summary(1, "API name")], NOW)
    archive = _export_rows(
        _summary(1, "archive name", relative_effort=42.0, private_note="legs heavy 🦵", gear_name="Pegasus"),
        _summary(2, "only in the archive", perceived_exertion=7.0),
    )
    typed = activities_frame(api, archive).sort("activity_id")
    assert typed.columns == list(ACTIVITY_SCHEMA)
    assert typed.select("activity_id", "name", "source").rows() == [
        (1, "API name", "api"), (2, "only in the archive", "export")]
    first = typed.row(0, named=True)
    assert (first["relative_effort"], first["private_note"], first["gear_name"]) == (42.0, "legs heavy 🦵", "Pegasus")
    assert typed.row(1, named=True)["perceived_exertion"] == 7.0


def test_either_source_alone_fills_the_table_and_neither_is_an_empty_table() -> None:
    archive_only = activities_frame(pl.DataFrame(), _export_rows(_summary(5, "a"), _summary(6, "b")))
    assert archive_only.get_column("source").to_list() == ["export", "export"]
    api_only = activities_frame(raw_activities_frame([_summary(7, "c")], NOW), pl.DataFrame())
    assert api_only.get_column("source").to_list() == ["api"]
    assert activities_frame(pl.DataFrame(), pl.DataFrame()).schema == pl.Schema(ACTIVITY_SCHEMA)


def test_an_archive_row_without_a_summary_leaves_no_typed_row() -> None:
    failed = _export_rows(_summary(9, "x")).with_columns(pl.lit(None, pl.String).alias("summary"),
                                                         pl.lit("failed").alias("status"))
    assert activities_frame(pl.DataFrame(), failed).is_empty()
