"""How fast the ``activity_files`` asset writes GPX/TCX files: 1,000 one-hour activities.

What is measured: the asset's own work (``defs.assets.activity_files.write_activity_files``, exactly what it
runs after Dagster hands it its inputs): for every activity with samples, its GPX and TCX documents built
from the typed ``activity_streams`` rows, each written through ``storage.files.write_atomic`` (private
temporary file, fsync, rename, fsync of the folder), a day at a time. The inputs are built beforehand and
not timed: the simulator's athlete (N one-hour activities over ``--days``, its usual sport mix: GPS and indoor,
heart rate, cadence, power on some), its summaries and streams as the API serves them, typed by our transforms.

Printed: the documents alone (no disk; in the asset's chunks, and one activity at a time), the first write
(every file new), and a second pass over the same days (every file unchanged: compared, not rewritten), with
the filesystem the files went to (fsync costs differ by orders of magnitude between tmpfs, overlayfs and a
real disk).

    .venv/bin/python benchmarks/activity_files.py [--activities 1000] [--days 365] [--dir PATH]

Last line: ``RESULT files_per_s=<n> activities=<n> seconds=<s>`` (the first write).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl

from strava_pipeline.defs.assets.activity_files import CHUNK_SAMPLES, files_root, write_activity_files
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.transforms.activities import EXPORT_ACTIVITY_RAW_SCHEMA, activities_frame, raw_activities_frame
from strava_pipeline.transforms.activity_files import documents, documents_by_activity
from strava_pipeline.transforms.streams import DOCUMENTED_STREAM_TYPES, activity_stream_frame


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts: the longest mount point above it)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def _inputs(activities: int, days: int) -> tuple[pl.DataFrame, pl.DataFrame, list[date]]:
    """Typed summaries and samples of the simulator's athlete, as the asset receives them."""
    end = date(2025, 12, 31)
    start = end - timedelta(days=days - 1)
    sim = StravaSimulator(SimulatorConfig(seed=17, start_date=start, end_date=end, activities=activities,
                                          activity_seconds=3600))
    raw = raw_activities_frame(sim.app.dataset.summaries(), datetime.now(UTC))
    summaries = activities_frame(raw)
    dates = dict(raw.select("activity_id", "activity_date").iter_rows())
    frames = []
    for act in sim.app.dataset.ordered():
        if not act.has_streams:
            continue
        body = sim.app.streams.body(act, list(DOCUMENTED_STREAM_TYPES), True)
        frames.append(activity_stream_frame(act.id, dates[act.id], orjson.loads(body)))
    return summaries, pl.concat(frames, how="vertical", rechunk=True), sorted(set(dates.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--dir", type=Path, default=None, help="data dir to write under (default: a temp dir)")
    args = parser.parse_args()

    began = time.perf_counter()
    summaries, streams, days = _inputs(args.activities, args.days)
    with_samples = streams.get_column("activity_id").n_unique()
    print(f"inputs: {summaries.height} activities, {with_samples} with samples, {streams.height:,} samples over "
          f"{len(days)} days (built in {time.perf_counter() - began:.1f} s, not timed)")

    by_id = {k[0]: f for k, f in streams.partition_by("activity_id", as_dict=True).items()}
    began = time.perf_counter()
    built = sum(len(doc) for row in summaries.iter_rows(named=True) if (f := by_id.get(row["activity_id"])) is not None
                for doc in documents(row, f).values())
    one_s = time.perf_counter() - began
    rows = list(summaries.sort("start_date").iter_rows(named=True))
    per = max(1, round(CHUNK_SAMPLES * with_samples / streams.height))  # activities per chunk, as the asset's
    began = time.perf_counter()
    chunked = sum(len(doc) for i in range(0, len(rows), per)
                  for docs in documents_by_activity(rows[i:i + per], streams.filter(
                      pl.col("activity_id").is_in([r["activity_id"] for r in rows[i:i + per]]))).values()
                  for doc in docs.values())
    documents_s = time.perf_counter() - began
    assert chunked == built, (chunked, built)
    print(f"documents only (no disk): {documents_s:.2f} s in chunks of {per} activities, as the asset "
          f"builds them ({one_s:.2f} s one activity at a time: {one_s / documents_s:.2f}x), {built / 2**20:.0f} MiB "
          f"of XML, {streams.height / documents_s:,.0f} samples/s")

    export_raw = pl.DataFrame(schema=EXPORT_ACTIVITY_RAW_SCHEMA)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data_dir = Path(tmp)
        began = time.perf_counter()
        first = write_activity_files(data_dir, days, summaries, streams, export_raw)
        seconds = time.perf_counter() - began
        files = sum(first.written.values())
        print(f"first write on {_filesystem(data_dir)} ({data_dir}): {files} files "
              f"({', '.join(f'{n} {k}' for k, n in sorted(first.written.items()))}), "
              f"{first.bytes_written / 2**20:.0f} MiB in {seconds:.2f} s: {files / seconds:,.0f} files/s, "
              f"{first.activities / seconds:,.0f} activities/s, {first.bytes_written / 2**20 / seconds:,.0f} MiB/s")
        began = time.perf_counter()
        again = write_activity_files(data_dir, days, summaries, streams, export_raw)
        unchanged_s = time.perf_counter() - began
        print(f"second pass (nothing changed): {again.unchanged} files unchanged, {sum(again.written.values())} "
              f"written, in {unchanged_s:.2f} s")
        on_disk = sum(1 for p in files_root(data_dir).rglob("*") if p.is_file())
        assert on_disk == files == again.unchanged, (on_disk, files, again.unchanged)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB (inputs included)")
    print(f"RESULT files_per_s={files / seconds:.0f} activities={first.activities} seconds={seconds:.2f}")


if __name__ == "__main__":
    main()
