"""Memory a partition write needs beyond the frame it writes: one quarter of streams into both stores.

A backfill writes 92 days at a time; each ``PartitionSwitcher.replace`` (Parquet per day, then one
PostgreSQL transaction) runs with the batch's frame already in memory, so what it allocates on top is
what the backfill's peak pays for every batch. Each frame is written in a fresh child process that samples
its own RSS every 2 ms: the figure is the peak during the write minus the RSS just before it (the frame
and the imports included there), next to the frame's own size.

    .venv/bin/python benchmarks/replace_memory.py [--activities 240] [--samples 2500]

The default is a quarter of the peers' history (1,000 one-hour activities over three years).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psutil

HERE = Path(__file__).resolve().parent
FIRST_DAY = date(2024, 1, 1)
DAYS = 92
MIB = 2**20


def _frames(activities: int, samples: int) -> dict[str, pl.DataFrame]:
    """A quarter's ``streams_raw`` (verbatim payloads, as the asset emits it: sorted by day) and the
    ``activity_streams`` frame the pipeline's own transform builds from it."""
    sys.path.insert(0, str(HERE))
    from load_postgres import _payload

    from strava_pipeline.transforms.streams import STREAMS_RAW_SCHEMA, streams_frame

    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    rows = [{"activity_id": 20_000_000_000 + a, "activity_date": FIRST_DAY + timedelta(days=a * DAYS // activities),
             "summary_fingerprint": "f", "status": "ok", "fetched_at": now,
             "payload": _payload(samples, rng).decode()} for a in range(activities)]
    raw = pl.DataFrame(rows, schema=STREAMS_RAW_SCHEMA)
    return {"streams_raw": raw, "activity_streams": streams_frame(raw)}


def child(asset: str, database_url: str, root: str, activities: int, samples: int) -> None:
    """Build the frame, then write it once (a warm-up into other days) and once measured."""
    from strava_pipeline.defs.io_manager import VERSIONS_TABLE
    from strava_pipeline.storage.parquet_store import ParquetStore
    from strava_pipeline.storage.partition_switch import PartitionSwitcher

    frame = _frames(activities, samples)[asset]
    days = [FIRST_DAY + timedelta(days=d) for d in range(DAYS)]
    switcher = PartitionSwitcher(ParquetStore(Path(root)), database_url, versions_table=VERSIONS_TABLE)
    table = f"strava.{asset}"
    # Other days and other ids: the measured write must not move the warm-up's activities (a backfill's
    # quarters never share an activity), which would read and rewrite the warm-up's files as well.
    warm = frame.with_columns(pl.col("activity_date") + timedelta(days=400), pl.col("activity_id") + 1_000_000)
    switcher.replace(asset, table, warm, partition_column="activity_date",
                     partitions=[d + timedelta(days=400) for d in days], entity_key="activity_id")
    del warm
    gc.collect()
    process = psutil.Process()
    before = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    switcher.replace(asset, table, frame, partition_column="activity_date", partitions=days, entity_key="activity_id")
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    print(json.dumps({"asset": asset, "rows": frame.height, "frame_mib": frame.estimated_size() / MIB,
                      "extra_mib": (peak - before) / MIB, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=240)
    parser.add_argument("--samples", type=int, default=2_500)
    parser.add_argument("--child", nargs=3, metavar=("ASSET", "URL", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.activities, args.samples)
        return

    from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
    from strava_pipeline.storage.migrations import apply_migrations

    results = {}
    with tempfile.TemporaryDirectory(prefix="replace-memory-") as tmp, \
            start_embedded_postgres(Path(tmp) / "pg") as pg:
        apply_migrations(pg.url)
        for asset in ("streams_raw", "activity_streams"):
            out = subprocess.run([sys.executable, __file__, "--activities", str(args.activities), "--samples",
                                  str(args.samples), "--child", asset, pg.url, str(Path(tmp) / asset)],
                                 check=True, capture_output=True, text=True).stdout
            results[asset] = json.loads(out.strip().splitlines()[-1])
    print(f"{args.activities} activities x {args.samples} samples over {DAYS} days, written by "
          "PartitionSwitcher.replace into Parquet and PostgreSQL")
    print(f"{'asset':18s} {'rows':>10s} {'frame MiB':>10s} {'extra MiB':>10s} {'seconds':>8s}")
    for asset, r in results.items():
        print(f"{asset:18s} {r['rows']:>10,} {r['frame_mib']:>10.1f} {r['extra_mib']:>10.1f} {r['seconds']:>8.2f}")
    raw, typed = results["streams_raw"], results["activity_streams"]
    print(f"RESULT raw_frame_mib={raw['frame_mib']:.1f} raw_extra_mib={raw['extra_mib']:.1f} "
          f"typed_frame_mib={typed['frame_mib']:.1f} typed_extra_mib={typed['extra_mib']:.1f} "
          f"raw_s={raw['seconds']:.2f} typed_s={typed['seconds']:.2f}")


if __name__ == "__main__":
    main()
