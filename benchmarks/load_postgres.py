"""Benchmark loading stream samples into PostgreSQL: our binary COPY writer vs the server's ceiling vs ADBC.

Run:  .venv/bin/python benchmarks/load_postgres.py [--rows 2000000] [--repeat 3] [--naive-rows 200000]

Starts its own embedded PostgreSQL in a temporary directory (removed afterwards), so it needs no setup.
Every measurement loads into an empty (truncated) table and includes the commit; best of ``--repeat``.

* ours     - ``replace_partitions`` end to end from a polars frame (checks, cast, encode, COPY, commit).
* ceiling  - ``COPY ... FROM STDIN (FORMAT BINARY)`` of a buffer encoded before the clock starts: what
             the server can ingest; no client can beat it by much.
* adbc     - ``polars.DataFrame.write_database(engine="adbc")`` into an identical table.
* naive    - psycopg ``copy.write_row`` per row (on ``--naive-rows`` rows, rate extrapolated).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strava_pipeline.storage.databases import create_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
from strava_pipeline.storage.pg_binary_copy import (
    COPY_HEADER,
    COPY_TRAILER,
    PG_TYPES,
    encode_table,
    prepare_frame,
)
from strava_pipeline.storage.postgres_writer import replace_partitions, table_columns

DDL = """
CREATE TABLE {name} (
    activity_id   bigint NOT NULL,
    activity_date date NOT NULL,
    sample_index  integer NOT NULL,
    time_s        integer NOT NULL,
    lat           double precision,
    lng           double precision,
    altitude_m    double precision,
    distance_m    double precision,
    velocity_mps  double precision,
    heartrate_bpm smallint,
    cadence_rpm   smallint,
    watts         smallint,
    temp_c        smallint,
    moving        boolean,
    grade_pct     double precision
)
"""


def make_samples(rows: int, seed: int = 42) -> pl.DataFrame:
    """~1 h activities at 1 Hz over ~2 months: realistic value ranges and missing sensors."""
    rng = np.random.default_rng(seed)
    per_activity = 3600
    activity = np.arange(rows) // per_activity
    index = (np.arange(rows) % per_activity).astype(np.int32)
    days = np.array([date(2024, 1, 1) + timedelta(days=int(d)) for d in range(64)], dtype="datetime64[D]")

    def with_nulls(values: np.ndarray, fraction: float) -> pl.Series:
        series = pl.Series(values)
        return series.scatter(np.flatnonzero(rng.random(rows) < fraction), None) if fraction else series

    return pl.DataFrame(
        {
            "activity_id": (10_000_000_000 + activity).astype(np.int64),
            "activity_date": days[activity % len(days)],
            "sample_index": index,
            "time_s": index,
            "lat": with_nulls(48.1 + rng.normal(0, 0.01, rows), 0.02),
            "lng": with_nulls(11.5 + rng.normal(0, 0.01, rows), 0.02),
            "altitude_m": with_nulls(rng.uniform(400, 900, rows), 0.02),
            "distance_m": index.astype(np.float64) * 3.1,
            "velocity_mps": rng.uniform(0, 12, rows),
            "heartrate_bpm": with_nulls(rng.integers(60, 190, rows, dtype=np.int16), 0.05),
            "cadence_rpm": with_nulls(rng.integers(0, 110, rows, dtype=np.int16), 0.10),
            "watts": with_nulls(rng.integers(0, 600, rows, dtype=np.int16), 0.40),
            "temp_c": with_nulls(rng.integers(-5, 35, rows, dtype=np.int16), 0.50),
            "moving": rng.random(rows) < 0.9,
            "grade_pct": rng.normal(0, 3, rows),
        }
    ).with_columns(pl.col("activity_date").cast(pl.Date))


def best_of(repeat: int, setup: Callable[[], None], run: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        print(f"    {run.__name__}: {times[-1]:.3f} s", file=sys.stderr, flush=True)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=200_000, help="0 to skip the per-row baseline")
    args = parser.parse_args()

    frame = make_samples(args.rows)
    days = frame.get_column("activity_date").unique().to_list()
    data_dir = Path(tempfile.mkdtemp(prefix="strava-pg-bench-"))
    try:
        with start_embedded_postgres(data_dir) as server:
            url = create_database(server.url, "bench")
            with psycopg.connect(url) as conn:
                for name in ("ours", "ceiling", "adbc", "naive"):
                    conn.execute(DDL.format(name=name))  # type: ignore[arg-type]
                conn.commit()

                def truncate(table: str) -> Callable[[], None]:
                    def run() -> None:
                        conn.execute(f"TRUNCATE {table}")  # type: ignore[arg-type]
                        conn.commit()
                        conn.execute("CHECKPOINT")
                        conn.commit()

                    return run

                results: dict[str, float] = {}

                def ours() -> None:
                    replace_partitions(conn, "ours", frame, partition_column="activity_date", partitions=days)

                results["ours"] = best_of(args.repeat, truncate("ours"), ours)

                plan = [(c.name, PG_TYPES[c.type_oid]) for c in table_columns(conn, "ceiling")]
                rows = encode_table(prepare_frame(frame, plan).to_arrow(), [t for _, t in plan])
                payload = memoryview(COPY_HEADER + rows.tobytes() + COPY_TRAILER)

                def ceiling() -> None:
                    with conn.cursor() as cur, cur.copy("COPY ceiling FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(payload)
                    conn.commit()

                results["ceiling"] = best_of(args.repeat, truncate("ceiling"), ceiling)

                try:
                    import adbc_driver_postgresql.dbapi as adbc
                except ImportError:
                    adbc = None
                if adbc is not None:
                    with adbc.connect(url) as adbc_conn:

                        def via_adbc() -> None:
                            frame.write_database("adbc", connection=adbc_conn, if_table_exists="append", engine="adbc")
                            adbc_conn.commit()

                        results["adbc"] = best_of(args.repeat, truncate("adbc"), via_adbc)

                if args.naive_rows:
                    sample = frame.head(args.naive_rows)

                    def naive() -> None:
                        with (
                            conn.cursor() as cur,
                            cur.copy(f"COPY naive ({', '.join(frame.columns)}) FROM STDIN") as cp,
                        ):
                            for row in sample.iter_rows():
                                cp.write_row(row)
                        conn.commit()

                    results["naive"] = best_of(1, truncate("naive"), naive) * args.rows / sample.height

                for table in ("ours", "ceiling", "adbc"):
                    if table in results:
                        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
                        assert count == (args.rows,), (table, count)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"{args.rows:,} stream samples x {frame.width} columns, best of {args.repeat}")
    for name, seconds in results.items():
        note = f"  (extrapolated from {args.naive_rows:,} rows)" if name == "naive" else ""
        print(f"  {name:<8} {seconds:7.3f} s  {args.rows / seconds:12,.0f} rows/s{note}")
    print(f"ours/ceiling speed: {results['ceiling'] / results['ours']:.2f}  (target >= 0.85)")
    if "adbc" in results:
        print(f"ours vs ADBC speed-up: {results['adbc'] / results['ours']:.2f}x  (target >= 1.3x)")


if __name__ == "__main__":
    main()
