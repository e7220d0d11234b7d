"""Freed polars memory leaves the process at once: a backfill's RSS is what it holds, not what it held."""

from __future__ import annotations

import os
import subprocess
import sys

from strava_pipeline.allocator import POLARS_JEMALLOC_ENV

#: Allocate and free ~640 MB five times, then print the RSS (MiB) left resident.
_LOOP = """
import strava_pipeline  # first, as every entry point does
import polars as pl, psutil
for _ in range(5):
    frame = pl.DataFrame({"a": pl.int_range(0, 20_000_000, eager=True)}).with_columns(b=pl.col("a") * 2)
    text = frame.select(pl.col("a").cast(pl.String))
    del frame, text
print(psutil.Process().memory_info().rss / 2**20)
"""


def _resident_after_loop(env_value: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != POLARS_JEMALLOC_ENV}
    if env_value is not None:
        env[POLARS_JEMALLOC_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", _LOOP], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def test_memory_polars_frees_is_not_kept_resident() -> None:
    assert _resident_after_loop(None) < 200  # 72 MiB measured; polars' own defaults keep ~680


def test_a_users_allocator_setting_is_kept() -> None:
    # The user's choice (here polars' own defaults) holds: the pages stay resident.
    assert _resident_after_loop("dirty_decay_ms:500,muzzy_decay_ms:1000") > 400
