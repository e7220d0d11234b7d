"""write_atomic: the one way the product replaces a file (Parquet days, tokens, landing cache, report)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import polars as pl
import pytest

from strava_pipeline.storage.files import write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bytes_text_and_writer_functions_land_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        write_atomic(tmp_path / "a" / "b.bin", b"\x00\x01")
        write_atomic(tmp_path / "t.html", "ünïcødé 🚴")
        frame = pl.DataFrame({"x": [1, 2, 3]})
        write_atomic(tmp_path / "p.parquet", lambda tmp: frame.write_parquet(tmp))
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.html").read_text(encoding="utf-8") == "ünïcødé 🚴"
    assert pl.read_parquet(tmp_path / "p.parquet").equals(frame)
    assert {_mode(tmp_path / n) for n in ("a/b.bin", "t.html", "p.parquet")} == {0o600}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.parquet"
    write_atomic(target, b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half a fi")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]


def test_replacing_is_atomic_for_a_reader_holding_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "tokens.json"
    write_atomic(target, b'{"v": 1}')
    with open(target, "rb") as reader:
        write_atomic(target, b'{"v": 2}')
        assert reader.read() == b'{"v": 1}'  # the old inode, whole
    assert target.read_bytes() == b'{"v": 2}'
