"""Parquet store: layout, atomic replace, empty days, reads that ignore temp files."""

from __future__ import annotations

from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest

from strava_pipeline.storage.parquet_store import ParquetStore

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "activity_date": [D1, D1, D2],
            "activity_id": [1, 2, 3],
            "name": ["a", None, "é😀"],
        },
        schema={"activity_date": pl.Date, "activity_id": pl.Int64, "name": pl.String},
    )


def test_write_and_read_partitions(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    paths = store.write_partitions("acts", _frame(), partition_column="activity_date", partitions=[D1, D2])
    assert paths == {
        D1: tmp_path / "acts" / "date=2024-05-01" / "part.parquet",
        D2: tmp_path / "acts" / "date=2024-05-02" / "part.parquet",
    }
    assert store.partition_path("acts", D1) == paths[D1]
    meta = pq.ParquetFile(paths[D1]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert store.read("acts").equals(_frame())
    assert store.read("acts", [D2]).equals(_frame().filter(pl.col("activity_date") == D2))


def test_empty_day_replaces_stale_rows_without_a_file(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    store.write_partitions("acts", _frame(), partition_column="activity_date", partitions=[D1, D2])
    empty = _frame().clear()
    paths = store.write_partitions("acts", empty, partition_column="activity_date", partitions=[D1, D3])
    assert paths == {}
    assert not store.partition_path("acts", D1).exists() and not store.partition_path("acts", D3).exists()
    assert store.written_partitions("acts") == [D2]
    day1 = store.read("acts", [D1])
    assert day1.height == 0
    assert day1.schema == _frame().schema
    assert store.read("acts").equals(_frame().filter(pl.col("activity_date") == D2))


def test_missing_days_read_as_empty_with_schema(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    store.write_partitions("acts", _frame(), partition_column="activity_date", partitions=[D1, D2])
    missing = store.read("acts", [date(2020, 1, 1)])
    assert missing.height == 0
    assert missing.schema == _frame().schema
    assert store.read("never_written").height == 0


def test_rows_outside_partitions_are_rejected_before_writing(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    with pytest.raises(ValueError, match="outside the partitions"):
        store.write_partitions("acts", _frame(), partition_column="activity_date", partitions=[D1])
    assert not (tmp_path / "acts").exists()


def test_partition_column_must_be_date(tmp_path) -> None:
    frame = _frame().with_columns(pl.col("activity_date").cast(pl.String))
    with pytest.raises(TypeError, match=r"must be pl\.Date"):
        ParquetStore(tmp_path).write_partitions("acts", frame, partition_column="activity_date", partitions=[D1])


def test_leftover_temp_files_are_never_read(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    store.write_partitions("acts", _frame(), partition_column="activity_date", partitions=[D1, D2])
    day_dir = store.partition_path("acts", D1).parent
    (day_dir / ".part.parquet.deadbeef.tmp").write_bytes(b"half a file")
    _frame().write_parquet(day_dir / ".part.parquet.cafe.tmp")  # even a complete one
    crashed_day = store.partition_path("acts", D3).parent
    crashed_day.mkdir()
    (crashed_day / ".part.parquet.0.tmp").write_bytes(b"junk")
    assert store.read("acts").equals(_frame())
    assert store.read("acts", [D3]).height == 0


def test_unpartitioned(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    frame = pl.DataFrame({"athlete_id": [7], "name": ["x"]})
    path = store.write_unpartitioned("athlete", frame)
    assert path == tmp_path / "athlete" / "data.parquet"
    store.write_unpartitioned("athlete", frame.with_columns(name=pl.lit("y")))
    assert store.read("athlete").to_dicts() == [{"athlete_id": 7, "name": "y"}]
    assert list(path.parent.iterdir()) == [path]  # no temp files left behind


def test_invalid_asset_name(tmp_path) -> None:
    with pytest.raises(ValueError, match="invalid asset"):
        ParquetStore(tmp_path).write_unpartitioned("../escape", pl.DataFrame({"a": [1]}))


def test_days_written_with_different_columns_read_together_in_day_order(tmp_path) -> None:
    """A day written before a column existed (or with a narrower type) still reads with the others: the
    missing column null, the types widened, days in order."""
    store = ParquetStore(tmp_path)
    store.write_partitions("acts", _frame(), partition_column="activity_date", partitions=[D1, D2])
    later = pl.DataFrame({"activity_date": [D3], "activity_id": [4.5], "name": ["d"], "sport": ["Run"]},
                         schema={"activity_date": pl.Date, "activity_id": pl.Float64, "name": pl.String,
                                 "sport": pl.String})
    store.write_partitions("acts", later, partition_column="activity_date", partitions=[D3])
    read = store.read("acts")
    assert read.get_column("activity_id").to_list() == [1.0, 2.0, 3.0, 4.5]
    assert read.get_column("sport").to_list() == [None, None, None, "Run"]
    assert store.read("acts", [D1, D2], columns=["activity_id"]).get_column("activity_id").to_list() == [1, 2, 3]


@pytest.mark.parametrize("order", ["by day", "days interleaved"])
def test_each_day_file_holds_exactly_that_days_rows_whatever_the_frames_order(tmp_path, order) -> None:
    """Frames sorted by day are split without copying; one whose days are interleaved (an asset that
    appends a second source) must still put every row in its own day's file, in the frame's order."""
    days = [D1, D2, D1, D3, D2] if order == "days interleaved" else [D1, D1, D2, D2, D3]
    frame = pl.DataFrame({"activity_date": days, "activity_id": [1, 2, 3, 4, 5]},
                         schema={"activity_date": pl.Date, "activity_id": pl.Int64})
    store = ParquetStore(tmp_path)
    store.write_partitions("acts", frame, partition_column="activity_date", partitions=[D1, D2, D3])
    for day in (D1, D2, D3):
        expected = frame.filter(pl.col("activity_date") == day)
        assert store.read("acts", [day]).equals(expected), day
