"""Benchmark loading stream samples into the real ``strava.activity_streams``: ours vs COPY ceiling vs ADBC vs pgpq.

Run:  .venv/bin/python benchmarks/load_postgres.py [--rows 2000000] [--repeat 5]

Why: ``replace_partitions`` used to encode with a hand-written numpy Arrow -> binary COPY encoder, kept only
while it beat the off-the-shelf options on the table that actually carries the volume. This benchmark
measured pgpq (Arrow in, binary COPY bytes out) faster (ours 1.40 s, pgpq 1.32-1.33 s for 2 M samples), so
``replace_partitions`` now encodes with pgpq. What it shows now: the cost of ``replace_partitions``' checks,
locks, DELETE and casts on top of raw pgpq, and how far both are from the server's ceiling and from ADBC.

Setup, untimed: a PostgreSQL server - the embedded one from ``strava_pipeline.storage.embedded_postgres`` in
a temporary directory, or the server behind ``STRAVA_PIPELINE_DATABASE_URL`` when that is set - gets a
throw-away database (dropped afterwards), and ``apply_migrations`` builds the pipeline's schema in it, so
the target is the real ``strava.activity_streams`` with its real column types and indexes (the BRIN
indexes of migration 0006). Autovacuum is switched off on that table in the throw-away database only, so
that a background vacuum of the previous contender's rows cannot land inside the next measurement. The
samples (``--rows``, ~1 h activities at 1 Hz, sensors missing as in real recordings, spread over the 92 days
that one streams backfill run covers) are generated as raw ``streams_raw`` payloads and turned into the
frame by the pipeline's own transform (``streams_frame``), so the frame has exactly ``STREAM_SCHEMA``.

Each timed load starts from the same empty table (``TRUNCATE`` + ``CHECKPOINT`` before the clock starts),
loads every sample from the same polars frame, and includes the commit. The contenders:

* ours     - ``replace_partitions(conn, "strava.activity_streams", frame, partition_column="activity_date",
             partitions=<the run's days>)``, as the warehouse IO manager calls it: checks, advisory locks,
             DELETE of the partitions, cast, pgpq encode in ``DEFAULT_CHUNK_ROWS`` batches, COPY.
* ceiling  - ``COPY ... FROM STDIN (FORMAT BINARY)`` of a buffer pgpq encoded before the clock starts: what
             the server can ingest into this table; no client can beat it by much.
* adbc     - ``polars.DataFrame.write_database(engine="adbc", if_table_exists="append")``.
* pgpq     - ``frame.to_arrow()``, cast to the Arrow types the table's columns need (counted: a user has to
             do it too; a no-op today, since ``STREAM_SCHEMA`` already matches), then
             ``pgpq.ArrowToPostgresBinaryEncoder``: ``write_header()``, ``write_batch()`` per batch of
             ``--pgpq-batch-rows`` rows, ``finish()``, each written through psycopg's
             ``cursor.copy("COPY ... FROM STDIN WITH (FORMAT BINARY)")``. pgpq holds the GIL while it encodes
             a batch, so small batches are what let the server parse one batch while the next is
             encoded: measured on 2 M samples, 5k-10k-row batches took ~1.35 s, 100k ~1.53 s, one batch
             ~2.7 s. The default is ours' batch size, ``DEFAULT_CHUNK_ROWS`` (10k), pgpq's best case.
* pgpq@100k - the same with 100k rows per batch, the chunk size of the old hand-written encoder; shown for
             reference, not in the RESULT line.

Connections are opened once, outside the clock, for every contender. One untimed warm-up round, then
``--repeat`` timed rounds; each round runs every contender once, in a rotated order so that drift is spread
evenly; the figures are medians. After every load the table is checked (untimed) against the frame: row
count, per-column non-null counts and sums, and a checksum of every row's text, which must be identical for
all contenders - nobody wins by loading less, or different, data.

Ratios are speed ratios, ``other_s / ours_s``: > 1 means ours is faster. ``x/ceiling`` (and
``ours_vs_ceiling``) is ``ceiling_s / contender_s``, the fraction of the ceiling's speed reached (<= ~1).
The last line printed is machine-readable:

    RESULT ours_s=<s> ceiling_s=<s> adbc_s=<s> pgpq_s=<s> ours_vs_ceiling=<x> ours_vs_adbc=<x> ours_vs_pgpq=<x>
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import orjson
import pgpq
import polars as pl
import psycopg
import pyarrow as pa
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.storage.postgres_writer import DEFAULT_CHUNK_ROWS, PG_TYPES, replace_partitions, table_columns
from strava_pipeline.transforms.streams import STREAM_SCHEMA, activity_stream_frame, streams_frame

TABLE = "strava.activity_streams"
PARTITION_COLUMN = "activity_date"
SAMPLES_PER_ACTIVITY = 3600
RUN_DAYS = 92  # MAX_STREAM_PARTITIONS_PER_RUN: the days one streams backfill run writes in one call
FIRST_DAY = date(2024, 1, 1)
CONTENDERS = ("ours", "ceiling", "adbc", "pgpq", "pgpq@100k")
OLD_CHUNK_ROWS = 100_000  # chunk size of the hand-written encoder pgpq replaced: the pgpq@100k reference


# ---------------------------------------------------------------------------------------------------------
# Data: raw payloads through the pipeline's own transform


def _with_nulls(values: list, rng: np.random.Generator, fraction: float) -> list:
    """Sensor dropouts: ``fraction`` of the samples become JSON null."""
    for i in np.flatnonzero(rng.random(len(values)) < fraction).tolist():
        values[i] = None
    return values


def _payload(n: int, rng: np.random.Generator) -> bytes:
    """One activity's ``/streams?key_by_type=true`` body: ``n`` samples at 1 Hz, some sensors absent."""
    moving = rng.random(n) > 0.08
    moving[0] = False
    speed = np.where(moving, np.clip(rng.normal(4.0, 1.5, n), 0.5, 15.0), 0.0).round(3)
    distance = np.cumsum(speed).round(1)
    streams: dict[str, list] = {
        "time": np.arange(n).tolist(),
        "distance": distance.tolist(),
        "velocity_smooth": speed.tolist(),
        "moving": moving.tolist(),
    }
    if rng.random() < 0.9:  # outdoors: GPS, altitude, grade
        lat = 48.1 + np.cumsum(rng.normal(0, 2e-5, n))
        lng = 11.5 + np.cumsum(rng.normal(0, 2e-5, n))
        streams["latlng"] = np.column_stack([lat, lng]).round(6).tolist()
        streams["altitude"] = (500 + np.cumsum(rng.normal(0, 0.3, n))).round(1).tolist()
        streams["grade_smooth"] = rng.normal(0, 3, n).round(1).tolist()
    if rng.random() < 0.95:
        streams["heartrate"] = _with_nulls(rng.integers(60, 190, n).tolist(), rng, 0.005)
    if rng.random() < 0.8:  # documented as integer; real exports carry decimals
        streams["cadence"] = np.where(moving, rng.uniform(60, 110, n), 0.0).round(1).tolist()
    if rng.random() < 0.45:
        streams["watts"] = _with_nulls(np.where(moving, rng.integers(0, 600, n), 0).tolist(), rng, 0.01)
    if rng.random() < 0.5:
        streams["temp"] = (rng.integers(-5, 35) + rng.integers(-1, 2, n)).tolist()
    meta = {"series_type": "distance", "original_size": n, "resolution": "high"}
    return orjson.dumps({stream_type: {"data": data, **meta} for stream_type, data in streams.items()})


def make_samples(rows: int, seed: int = 42) -> pl.DataFrame:
    """``rows`` typed samples, produced from raw payloads by ``streams_frame`` exactly as the asset does."""
    rng = np.random.default_rng(seed)
    activities = -(-rows // SAMPLES_PER_ACTIVITY)
    sizes = [min(SAMPLES_PER_ACTIVITY, rows - a * SAMPLES_PER_ACTIVITY) for a in range(activities)]
    raw = pl.DataFrame(
        {
            "activity_id": [10_000_000_000 + a for a in range(activities)],
            "activity_date": [FIRST_DAY + timedelta(days=a * RUN_DAYS // activities) for a in range(activities)],
            "status": ["ok"] * activities,
            "payload": [_payload(n, rng).decode() for n in sizes],
        },
        schema={"activity_id": pl.Int64, "activity_date": pl.Date, "status": pl.String, "payload": pl.String},
    )
    frame = streams_frame(raw)
    reference = activity_stream_frame(1, FIRST_DAY, {"time": {"data": [0]}})  # the transform's output schema
    if frame.schema != reference.schema or frame.schema != pl.Schema(STREAM_SCHEMA) or frame.height != rows:
        raise SystemExit(f"generated frame does not match the transform's output: {frame.schema} ({frame.height})")
    return frame


# ---------------------------------------------------------------------------------------------------------
# Verification: what is in the table, compared with the frame and across contenders


def _aggregates(columns: list[str]) -> list[tuple[str, str, pl.Expr]]:
    """(kind, SQL aggregate, polars expression over the frame) per check; kind "float" is compared loosely."""
    checks: list[tuple[str, str, pl.Expr]] = [("exact", "count(*)", pl.len())]
    for name in columns:
        dtype = STREAM_SCHEMA[name]
        ident = f'"{name}"'
        checks.append(("exact", f"count({ident})", pl.col(name).count()))
        if dtype == pl.Date:
            epoch = date(2000, 1, 1)
            checks.append(("exact", f"sum({ident} - DATE '2000-01-01')", (pl.col(name) - epoch).dt.total_days().sum()))
        elif dtype == pl.Boolean:
            checks.append(("exact", f"sum({ident}::int)", pl.col(name).cast(pl.Int64).sum()))
        elif dtype.is_integer():
            checks.append(("exact", f"sum({ident}::int8)", pl.col(name).cast(pl.Int64).sum()))
        elif dtype == pl.String:
            checks.append(("exact", f"sum(octet_length({ident}))", pl.col(name).str.len_bytes().cast(pl.Int64).sum()))
        else:
            checks.append(("float", f"sum({ident})", pl.col(name).sum()))
    return checks


class Verifier:
    """Checks the table after a load; the row checksum must be the same after every load."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.checks = _aggregates(frame.columns)
        self.expected = frame.select([expr.alias(f"c{i}") for i, (_, _, expr) in enumerate(self.checks)]).row(0)
        aggregates = ", ".join(agg for _, agg, _ in self.checks)
        self.query = f"SELECT {aggregates}, sum(hashtextextended(t::text, 0)) FROM {TABLE} t"
        self.row_checksum: int | None = None

    def check(self, conn: psycopg.Connection, who: str) -> None:
        row = conn.execute(self.query).fetchone()  # type: ignore[arg-type]
        conn.commit()
        assert row is not None
        *values, checksum = row
        for (kind, agg, _), got, want in zip(self.checks, values, self.expected, strict=True):
            got, want = got or 0, want or 0  # sum() over no values: NULL in SQL, 0 in polars
            ok = math.isclose(float(got), float(want), rel_tol=1e-9) if kind == "float" else got == want
            if not ok:
                raise SystemExit(f"{who}: {agg} is {got} in the table, {want} in the frame")
        if self.row_checksum is None:
            self.row_checksum = int(checksum)
        elif int(checksum) != self.row_checksum:
            raise SystemExit(f"{who}: row checksum {checksum} differs from the first load's {self.row_checksum}")


# ---------------------------------------------------------------------------------------------------------
# Contenders


def pgpq_target_schema(conn: psycopg.Connection, frame: pl.DataFrame) -> tuple[pa.Schema, list[str]]:
    """Arrow schema pgpq must be given for the table's columns, and the columns that need a cast.

    Binary COPY carries no type information, so the encoded width must match the column exactly (int4 bytes
    into a smallint column are rejected); pgpq picks the wire type from the Arrow type alone. The mapping is
    ``replace_partitions``' own (``PG_TYPES``: Arrow type and the pgpq wire type that loads into the column).
    """
    by_name = {c.name: c for c in table_columns(conn, TABLE)}
    source = frame.head(0).to_arrow().schema
    fields, casts = [], []
    for name in frame.columns:
        column = by_name[name]
        pg = PG_TYPES.get(column.type_oid)
        if pg is None or pg.jsonb:
            raise SystemExit(f"{TABLE}.{name}: no plain pgpq mapping for {column.type_name}")
        arrow_type = pg.arrow
        fields.append(pa.field(name, arrow_type))
        if source.field(name).type != arrow_type:
            casts.append(f"{name}: {source.field(name).type} -> {arrow_type} ({column.type_name})")
    target = pa.schema(fields)
    encoder = pgpq.ArrowToPostgresBinaryEncoder(target)
    for column in encoder.schema().columns:
        want = PG_TYPES[by_name[column.name].type_oid].wire
        if column.data_type.ddl() != want:
            raise SystemExit(f"pgpq encodes {column.name} as {column.data_type.ddl()}, the table needs {want}")
    return target, casts


def timed_runs(
    contenders: dict[str, Callable[[], None]], reset: Callable[[], None], verify: Callable[[str], None], repeat: int
) -> dict[str, list[float]]:
    """One untimed warm-up round, then ``repeat`` rounds in rotated order; every load is verified."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat + 1):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            reset()
            start = time.perf_counter()
            contenders[name]()
            elapsed = time.perf_counter() - start
            verify(name)
            label = "warm-up" if round_ == 0 else f"round {round_}"
            print(f"    {label:<8} {name:<8} {elapsed:7.3f} s", file=sys.stderr, flush=True)
            if round_:
                times[name].append(elapsed)
    return times


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A throw-away database on the configured server, or on an embedded one in a temporary directory."""
    name = f"load_bench_{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        server_url = os.environ.get("STRAVA_PIPELINE_DATABASE_URL")
        if not server_url:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="strava-pg-bench-"))
            server_url = stack.enter_context(start_embedded_postgres(Path(tmp) / "pg")).url
        url = create_database(server_url, name)
        try:
            yield url
        finally:
            drop_database(server_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--pgpq-batch-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per pgpq write_batch")
    args = parser.parse_args()

    start = time.perf_counter()
    frame = make_samples(args.rows)
    days = [FIRST_DAY + timedelta(days=d) for d in range(RUN_DAYS)]
    print(f"  {frame.height:,} samples built by streams_frame in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    copy_columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    copy_stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.Identifier(*TABLE.split(".")), copy_columns
    )

    with bench_database() as url:
        applied = apply_migrations(url)
        with psycopg.connect(url) as conn, adbc.connect(url) as adbc_conn:
            conn.execute(f"ALTER TABLE {TABLE} SET (autovacuum_enabled = false)")  # type: ignore[arg-type]
            conn.commit()
            query = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'strava' AND tablename = 'activity_streams'"
            indexes = [row[0] for row in conn.execute(query)]
            conn.commit()

            target_schema, casts = pgpq_target_schema(conn, frame)
            encoder = pgpq.ArrowToPostgresBinaryEncoder(target_schema)
            parts = [encoder.write_header()]
            parts += [encoder.write_batch(b) for b in frame.to_arrow().cast(target_schema).to_batches()]
            parts.append(encoder.finish())
            payload = memoryview(b"".join(parts))  # the ceiling's pre-encoded buffer
            del parts, encoder

            def reset() -> None:
                conn.execute(f"TRUNCATE {TABLE}")  # type: ignore[arg-type]
                conn.commit()
                conn.execute("CHECKPOINT")
                conn.commit()

            def ours() -> None:
                replace_partitions(conn, TABLE, frame, partition_column=PARTITION_COLUMN, partitions=days)
                conn.commit()

            def ceiling() -> None:
                with conn.cursor() as cur, cur.copy(copy_stmt) as copy:
                    copy.write(payload)
                conn.commit()

            def via_adbc() -> None:
                frame.write_database(TABLE, connection=adbc_conn, if_table_exists="append", engine="adbc")
                adbc_conn.commit()

            def via_pgpq(batch_rows: int) -> Callable[[], None]:
                def run() -> None:
                    table = frame.to_arrow().cast(target_schema)
                    encoder = pgpq.ArrowToPostgresBinaryEncoder(table.schema)
                    with conn.cursor() as cur, cur.copy(copy_stmt) as copy:
                        copy.write(encoder.write_header())
                        for batch in table.to_batches(max_chunksize=batch_rows):
                            copy.write(encoder.write_batch(batch))
                        copy.write(encoder.finish())
                    conn.commit()

                return run

            verifier = Verifier(frame)
            contenders = {
                "ours": ours,
                "ceiling": ceiling,
                "adbc": via_adbc,
                "pgpq": via_pgpq(args.pgpq_batch_rows),
                "pgpq@100k": via_pgpq(OLD_CHUNK_ROWS),
            }
            runs = timed_runs(contenders, reset, lambda who: verifier.check(conn, who), args.repeat)

    med = {name: statistics.median(seconds) for name, seconds in runs.items()}
    print(f"{args.rows:,} stream samples x {frame.width} columns into the real {TABLE} "
          f"(migrations {applied[0]}..{applied[-1]}), median of {args.repeat} rounds after a warm-up")
    print(f"  indexes: {'; '.join(indexes) or 'none'}")
    print(f"  pgpq casts needed: {', '.join(casts) or 'none (STREAM_SCHEMA already has the Arrow types pgpq needs)'}")
    print("  every load verified: row count, per-column counts and sums, identical row checksum")
    print(
        f"  pgpq batches: {args.pgpq_batch_rows:,} rows (ours: {DEFAULT_CHUNK_ROWS:,}; pgpq@100k: {OLD_CHUNK_ROWS:,}, "
        "the old encoder's chunk size)"
    )
    print(f"  {'contender':<9} {'median s':>9} {'samples/s':>12} {'x/ceiling':>10}  runs (s)")
    for name in CONTENDERS:
        runs_s = " ".join(f"{s:.3f}" for s in runs[name])
        rate, of_ceiling = args.rows / med[name], med["ceiling"] / med[name]
        print(f"  {name:<9} {med[name]:9.3f} {rate:12,.0f} {of_ceiling:10.2f}  {runs_s}")
    ratios = {other: med[other] / med["ours"] for other in CONTENDERS}
    print(f"  speed ratios (>1 = ours faster): ours/ceiling {ratios['ceiling']:.2f}  ours/ADBC {ratios['adbc']:.2f}x  "
          f"ours/pgpq {ratios['pgpq']:.2f}x  (ours/pgpq@100k {ratios['pgpq@100k']:.2f}x)")
    if ratios["pgpq"] < 1:
        print(f"  ours (pgpq plus checks, locks, DELETE, casts) costs +{med['ours'] - med['pgpq']:.3f} s per load "
              f"over raw pgpq ({(med['ours'] / med['pgpq'] - 1) * 100:.1f}% more time)")
    print(f"RESULT ours_s={med['ours']:.3f} ceiling_s={med['ceiling']:.3f} adbc_s={med['adbc']:.3f} "
          f"pgpq_s={med['pgpq']:.3f} ours_vs_ceiling={ratios['ceiling']:.3f} ours_vs_adbc={ratios['adbc']:.3f} "
          f"ours_vs_pgpq={ratios['pgpq']:.3f}")


if __name__ == "__main__":
    main()
