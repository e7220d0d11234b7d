"""Replacing one day's files: new and changed ones atomically, identical ones untouched, the rest removed."""

from __future__ import annotations

import os
import stat
import time
from datetime import date
from pathlib import Path

from strava_pipeline.defs.assets.activity_files import ABANDONED_AFTER_S, day_files, replace_day_files

DAY, OTHER = date(2024, 3, 2), date(2024, 3, 3)


def _state(path: Path) -> tuple[int, int, bytes]:
    return path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()


def test_a_day_is_replaced_and_no_other(tmp_path: Path) -> None:
    root = tmp_path / "data" / "files"
    original = tmp_path / "upload.fit.gz"
    original.write_bytes(b"\x1f\x8b original")
    first = replace_day_files(root, DAY, {"2024-03-02_1_run.gpx": ("gpx", b"<gpx/>"),
                                          "2024-03-02_1_run.tcx": ("tcx", b"<tcx/>"),
                                          "2024-03-02_1_run.original.fit.gz": ("original", original)})
    assert first.written == {"gpx": 1, "tcx": 1, "original": 1}
    replace_day_files(root, OTHER, {"2024-03-03_2_ride.tcx": ("tcx", b"<other/>")})
    folder = root / "2024"
    kept, other = _state(folder / "2024-03-02_1_run.gpx"), _state(folder / "2024-03-03_2_ride.tcx")
    old_tmp, fresh_tmp = folder / ".2024-03-02_1_run.gpx.99.dead.tmp", folder / ".2024-03-02_1_run.gpx.98.live.tmp"
    old_tmp.write_bytes(b"half")
    fresh_tmp.write_bytes(b"half")
    os.utime(old_tmp, (time.time() - ABANDONED_AFTER_S - 60,) * 2)

    second = replace_day_files(root, DAY, {"2024-03-02_1_run.gpx": ("gpx", b"<gpx/>"),
                                           "2024-03-02_3_swim.tcx": ("tcx", b"<new/>")})

    assert (second.unchanged, second.written, second.removed) == (1, {"tcx": 1}, 2)
    assert _state(folder / "2024-03-02_1_run.gpx") == kept, "an identical file is not rewritten"
    assert [p.name for p in day_files(root, DAY)] == ["2024-03-02_1_run.gpx", "2024-03-02_3_swim.tcx"]
    assert _state(folder / "2024-03-03_2_ride.tcx") == other
    assert not old_tmp.exists() and fresh_tmp.exists()
    assert (folder / "2024-03-02_3_swim.tcx").read_bytes() == b"<new/>"
    for path in (root, folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in day_files(root, DAY):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A day without any activity left loses its files; its folder stays for the other days.
    assert replace_day_files(root, DAY, {}).removed == 2 and day_files(root, DAY) == []
    assert day_files(root, OTHER) != []
