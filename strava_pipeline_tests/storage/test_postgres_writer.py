"""replace_partitions: exact round trips for every supported type, replace semantics, locking, failures."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import psycopg
import pytest

from strava_pipeline.storage.postgres_writer import (
    PartitionWriteError,
    UnsupportedTypeError,
    lock_days,
    replace_partitions,
)

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)
NASTY = "'); DROP TABLE x; --"

ALL_TYPES_DDL = """
CREATE TABLE all_types (
    day date NOT NULL,
    i8 bigint, i4 integer, i2 smallint, f8 double precision, f4 real, b boolean,
    t text, vc varchar(50), j jsonb, ts timestamptz, tsn timestamp,
    ta text[], fa double precision[]
)
"""


def _all_types_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": [D1, D1, D2, D2],
            "i8": [2**62, None, -(2**63), 0],
            "i4": [2**31 - 1, -(2**31), None, 7],
            "i2": [32767, -32768, 0, None],
            "f8": [1.5, None, float("inf"), -0.0],
            "f4": [None, 3.25, -1.0, 0.0],
            "b": [True, False, None, True],
            "t": ["plain", "é😀 emoji", NASTY, None],
            "vc": [None, "", "tab\tnew\nline", "x"],
            "j": ['{"a": [1, 2, {"b": null}]}', None, '"😀"', json.dumps({"sql": NASTY})],
            "ts": [
                datetime(2024, 5, 1, 6, 30, 15, 123456, tzinfo=UTC),
                None,
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC),
            ],
            "tsn": [datetime(2000, 1, 1), datetime(1999, 12, 31, 23, 59, 59, 999999), None, datetime(2100, 1, 1)],
            "ta": [["a", None, "😀"], [], None, [NASTY]],
            "fa": [[1.0, None], None, [], [2.5]],
        },
        schema_overrides={"i4": pl.Int32, "i2": pl.Int16, "f4": pl.Float32, "ts": pl.Datetime("us", "UTC")},
    )


def _expected_rows(frame: pl.DataFrame) -> list[tuple]:
    rows = []
    for row in frame.iter_rows():
        row = list(row)
        if row[9] is not None:
            row[9] = json.loads(row[9])
        rows.append(tuple(row))
    return rows


def _fetch(conn: psycopg.Connection, table: str, order: str = "") -> list[tuple]:
    query = f"SELECT * FROM {table} {order}"
    return conn.execute(query).fetchall()  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_rows", [100_000, 1, 3])
def test_round_trip_every_type(pg_conn: psycopg.Connection, chunk_rows: int) -> None:
    pg_conn.execute(ALL_TYPES_DDL)
    pg_conn.commit()
    frame = _all_types_frame().with_row_index("k").with_columns(pl.col("k").cast(pl.Int64))
    pg_conn.execute("ALTER TABLE all_types ADD COLUMN k bigint")
    pg_conn.commit()
    n = replace_partitions(
        pg_conn, "all_types", frame, partition_column="day", partitions=[D1, D2], chunk_rows=chunk_rows
    )
    assert n == 4
    got = pg_conn.execute(
        "SELECT day, i8, i4, i2, f8, f4, b, t, vc, j, ts, tsn, ta, fa FROM all_types ORDER BY k"
    ).fetchall()
    expected = _expected_rows(frame.drop("k"))
    for got_row, exp_row in zip(got, expected, strict=True):
        assert got_row[:10] == exp_row[:10]
        assert got_row[10] == exp_row[10]  # timestamptz compared as aware datetimes
        assert got_row[11:] == exp_row[11:]
    assert pg_conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'x'").fetchone() == (0,)


def test_round_trip_numeric_fast_path_with_nulls(pg_conn: psycopg.Connection) -> None:
    """Only fixed-width columns: the structured-array encoder with NULL compaction."""
    pg_conn.execute(
        "CREATE TABLE s (activity_id bigint, activity_date date, sample_index int, lat double precision, "
        "hr smallint, moving boolean, grade real, at timestamptz)"
    )
    rng = random.Random(7)
    n = 5000
    start = datetime(2024, 5, 1, tzinfo=UTC)

    def maybe(value):
        return None if rng.random() < 0.2 else value

    frame = pl.DataFrame(
        {
            "activity_id": [maybe(rng.randrange(-(2**63), 2**63)) for _ in range(n)],
            "activity_date": [rng.choice([D1, D2]) for _ in range(n)],
            "sample_index": list(range(n)),
            "lat": [maybe(rng.uniform(-90, 90)) for _ in range(n)],
            "hr": [maybe(rng.randrange(-32768, 32768)) for _ in range(n)],
            "moving": [maybe(rng.random() < 0.5) for _ in range(n)],
            "grade": [maybe(float(np.float32(rng.uniform(-30, 30)))) for _ in range(n)],
            "at": [maybe(start + timedelta(microseconds=rng.randrange(10**12))) for _ in range(n)],
        },
        schema_overrides={"sample_index": pl.Int32, "hr": pl.Int16, "grade": pl.Float32},
    )
    replace_partitions(pg_conn, "s", frame, partition_column="activity_date", partitions=[D1, D2], chunk_rows=777)
    got = pg_conn.execute(  # real -> float8 widens exactly; psycopg would round-trip it through text
        "SELECT activity_id, activity_date, sample_index, lat, hr, moving, grade::float8, at FROM s ORDER BY 3"
    ).fetchall()
    assert got == list(frame.iter_rows())


def test_long_json_and_text_values_round_trip_verbatim(pg_conn: psycopg.Connection) -> None:
    """Raw API bodies (hundreds of kB each) take the row-by-row copy path; nulls and emoji included."""
    pg_conn.execute("CREATE TABLE raw_bodies (day date, id bigint, body json, note text)")
    pg_conn.commit()
    bodies = [
        '{"time": {"data": [' + ",".join(str(i) for i in range(40_000)) + "]}}",
        None,
        '{"name": "Morning run 🏃 \'); DROP TABLE x; --", "data": [1.5, null]}',
        "[]",
    ]
    frame = pl.DataFrame(
        {"day": [D1] * 4, "id": [1, 2, 3, 4], "body": bodies, "note": ["x" * 5000, "é" * 300, None, ""]},
        schema={"day": pl.Date, "id": pl.Int64, "body": pl.String, "note": pl.String},
    )
    replace_partitions(pg_conn, "raw_bodies", frame, partition_column="day", partitions=[D1])
    got = pg_conn.execute("SELECT id, body::text, note FROM raw_bodies ORDER BY id").fetchall()
    assert got == list(zip([1, 2, 3, 4], bodies, frame["note"].to_list(), strict=True))


def test_a_frame_of_many_megabytes_goes_in_whole_however_it_is_split(pg_conn: psycopg.Connection) -> None:
    """A quarter of stream payloads is tens of MB in a few hundred rows, so it goes in several batches of a
    few MB rather than one of 10,000 rows: every row must arrive once and in full whatever the split."""
    pg_conn.execute("CREATE TABLE big_bodies (day date, id bigint, body json)")
    pg_conn.commit()
    sizes = [3_000_000, 10, 5_000_000, 1_000_000, 2_500_000, 7, 4_000_000]  # ~15 MiB: several batches
    bodies = ['{"data": "' + chr(ord("a") + i) * n + '"}' for i, n in enumerate(sizes)]
    frame = pl.DataFrame({"day": [D1] * 4 + [D2] * 3, "id": range(len(sizes)), "body": bodies},
                         schema={"day": pl.Date, "id": pl.Int64, "body": pl.String})
    assert replace_partitions(pg_conn, "big_bodies", frame, partition_column="day", partitions=[D1, D2]) == len(sizes)
    got = pg_conn.execute("SELECT id, md5(body::text), length(body::text) FROM big_bodies ORDER BY id").fetchall()
    assert got == [(i, hashlib.md5(b.encode()).hexdigest(), len(b)) for i, b in enumerate(bodies)]


@pytest.mark.parametrize("chunk_rows", [1000, 7])
def test_fixed_width_columns_with_random_nulls_round_trip(pg_conn: psycopg.Connection, chunk_rows: int) -> None:
    """bigint and double with scattered NULLs next to boolean and date columns, in one batch or many."""
    rng = np.random.default_rng(3)
    n = 1000
    frame = pl.DataFrame(
        {
            "a": pl.Series(rng.integers(-(2**62), 2**62, n)).scatter(rng.integers(0, n, 100), None),
            "b": pl.Series(rng.random(n)).scatter(rng.integers(0, n, 300), None),
            "c": pl.Series(rng.random(n) < 0.5),
            "d": pl.Series(rng.integers(0, 20000, n)).cast(pl.Int32).cast(pl.Date),
            "k": pl.Series(range(n)),
        }
    )
    pg_conn.execute("CREATE TABLE fx (a bigint, b double precision, c boolean, d date, k bigint)")
    assert replace_partitions(pg_conn, "fx", frame, partition_column="", partitions=None, chunk_rows=chunk_rows) == n
    assert _fetch(pg_conn, "fx", "ORDER BY k") == list(frame.iter_rows())
    assert replace_partitions(pg_conn, "fx", frame.clear(), partition_column="", partitions=None) == 0
    assert _fetch(pg_conn, "fx") == []


def test_round_trip_json_char_integer_arrays_nan_and_domains(pg_conn: psycopg.Connection) -> None:
    """The supported types the all-types test leaves out; json keeps its text verbatim."""
    pg_conn.execute("CREATE DOMAIN positive_id AS bigint CHECK (VALUE > 0)")
    pg_conn.execute(
        "CREATE TABLE more_types (day date, k int, j json, c char(3), ia bigint[], i4a integer[], "
        "f8 double precision, f4 real, fa double precision[], id positive_id)"
    )
    frame = pl.DataFrame(
        {
            "day": [D1, D1, D1],
            "k": [1, 2, 3],
            "j": ['{"b": 1,  "a": "\\u0000 😀"}', None, "[]"],
            "c": ["ab", None, "abc"],
            "ia": [[1, None, 2**63 - 1], None, []],
            "i4a": [[-(2**31), None], [], None],
            "f8": [float("nan"), None, float("-inf")],
            "f4": [float("nan"), 1.5, None],
            "fa": [[float("nan"), None, float("inf")], [], None],
            "id": [1, None, 2**62],
        },
        schema_overrides={"f4": pl.Float32},
    )
    replace_partitions(pg_conn, "more_types", frame, partition_column="day", partitions=[D1])
    got = pg_conn.execute(
        "SELECT k, j::text, c, ia, i4a, f8::text, f4::text, fa::text, id FROM more_types ORDER BY k"
    ).fetchall()
    assert got == [
        (
            1,
            '{"b": 1,  "a": "\\u0000 😀"}',
            "ab ",
            [1, None, 2**63 - 1],
            [-(2**31), None],
            "NaN",
            "NaN",
            "{NaN,NULL,Infinity}",
            1,
        ),
        (2, None, None, None, [], None, "1.5", "{}", None),
        (3, "[]", "abc", [], None, "-Infinity", None, None, 2**62),
    ]


def test_frame_dtypes_are_cast_to_the_column_widths(pg_conn: psycopg.Connection) -> None:
    """Binary COPY needs the exact width: narrower and wider frame dtypes are cast to the table's types."""
    pg_conn.execute("CREATE TABLE w (day date, i2 smallint, i4 integer, f8 double precision, f4 real, ia integer[])")
    frame = pl.DataFrame(
        {
            "day": [D1, D1],
            "i2": [7, None],  # Int64
            "i4": pl.Series([1, 2], dtype=pl.UInt8),
            "f8": pl.Series([0.5, None], dtype=pl.Float32),
            "f4": pl.Series([3, 4], dtype=pl.Int16),
            "ia": [[1, 2], None],  # List(Int64)
        }
    )
    replace_partitions(pg_conn, "w", frame, partition_column="day", partitions=[D1])
    assert _fetch(pg_conn, "w", "ORDER BY i4") == [(D1, 7, 1, 0.5, 3.0, [1, 2]), (D1, None, 2, None, 4.0, None)]


def test_nul_characters_are_refused_by_the_server_and_nothing_changes(pg_conn: psycopg.Connection) -> None:
    """PostgreSQL text cannot hold U+0000, nor jsonb the \\u0000 escape: the load fails as a whole."""
    pg_conn.execute("CREATE TABLE nul (day date, t text, ta text[], jb jsonb)")
    pg_conn.execute("INSERT INTO nul VALUES (%s, 'old', NULL, NULL)", (D1,))
    pg_conn.commit()
    ok = pl.DataFrame({"day": [D1], "t": ["new"], "ta": [["x"]], "jb": ["{}"]})
    for bad in (
        ok.with_columns(t=pl.lit("a\x00b")),
        ok.with_columns(ta=pl.lit(["a\x00"])),
        ok.with_columns(jb=pl.lit('"\\u0000"')),
    ):
        with pytest.raises(PartitionWriteError, match="nothing was changed"):
            replace_partitions(pg_conn, "nul", bad, partition_column="day", partitions=[D1])
        assert _fetch(pg_conn, "nul") == [(D1, "old", None, None)]


def test_unsupported_column_types_are_refused_before_touching_db(pg_conn: psycopg.Connection) -> None:
    pg_conn.execute("CREATE TABLE u (day date, n numeric DEFAULT 0, b boolean DEFAULT false)")
    pg_conn.execute("INSERT INTO u VALUES (%s, 1, true)", (D1,))
    pg_conn.commit()
    with pytest.raises(UnsupportedTypeError, match="numeric is not supported"):
        replace_partitions(pg_conn, "u", pl.DataFrame({"day": [D1], "n": [2]}), partition_column="day", partitions=[D1])
    with pytest.raises(UnsupportedTypeError, match="expected Boolean"):
        replace_partitions(pg_conn, "u", pl.DataFrame({"day": [D1], "b": [0]}), partition_column="day", partitions=[D1])
    assert _fetch(pg_conn, "u") == [(D1, 1, True)]


def test_replace_only_touches_given_partitions(pg_conn: psycopg.Connection) -> None:
    pg_conn.execute("CREATE TABLE r (day date, v int)")
    pg_conn.commit()
    first = pl.DataFrame({"day": [D1, D2, D3], "v": [1, 2, 3]})
    replace_partitions(pg_conn, "r", first, partition_column="day", partitions=[D1, D2, D3])
    second = pl.DataFrame({"day": [D2, D2], "v": [20, 21]})
    replace_partitions(pg_conn, "r", second, partition_column="day", partitions=[D2])
    assert _fetch(pg_conn, "r", "ORDER BY v") == [(D1, 1), (D3, 3), (D2, 20), (D2, 21)]
    # zero rows: the partition is emptied (stale rows removed), others kept
    assert replace_partitions(pg_conn, "r", second.clear(), partition_column="day", partitions=[D2, D3]) == 0
    assert _fetch(pg_conn, "r") == [(D1, 1)]


def test_replacing_days_of_a_table_never_analysed_reads_only_their_block_ranges(pg_conn: psycopg.Connection) -> None:
    """A backfill writes quarter after quarter into a table autovacuum has not analysed yet: deleting the
    new (empty) days must go through the BRIN index, not read every sample loaded so far."""
    pg_conn.execute("CREATE TABLE samples (day date NOT NULL, v int)")
    pg_conn.execute("CREATE INDEX samples_day ON samples USING brin (day)")
    pg_conn.execute("INSERT INTO samples SELECT date '2024-01-01' + g / 2000, g FROM generate_series(0, 199999) g")
    pg_conn.execute("SELECT brin_summarize_new_values('samples_day')")
    pg_conn.commit()
    quarter = [date(2024, 6, 1) + timedelta(days=i) for i in range(92)]
    frame = pl.DataFrame({"day": quarter, "v": range(92)})
    scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'samples'::regclass"
    with pg_conn.transaction():  # the server's counts not yet flushed, this session's: exact
        before = pg_conn.execute(scans).fetchone()
        replace_partitions(pg_conn, "samples", frame, partition_column="day", partitions=quarter)
        after = pg_conn.execute(scans).fetchone()
    assert after == before
    assert pg_conn.execute("SELECT count(*) FROM samples").fetchone() == (200_092,)


def test_whole_table_replace(pg_conn: psycopg.Connection) -> None:
    pg_conn.execute("CREATE TABLE athlete (id bigint, name text)")
    replace_partitions(
        pg_conn, "athlete", pl.DataFrame({"id": [1, 2], "name": ["a", "b"]}), partition_column="", partitions=None
    )
    replace_partitions(
        pg_conn, "athlete", pl.DataFrame({"id": [3], "name": ["c"]}), partition_column="", partitions=None
    )
    assert _fetch(pg_conn, "athlete") == [(3, "c")]


def test_schema_qualified_and_odd_identifiers(pg_conn: psycopg.Connection) -> None:
    pg_conn.execute('CREATE SCHEMA "My Schema"')
    pg_conn.execute('CREATE TABLE "My Schema"."we""ird" ("Day" date, "select" text)')
    frame = pl.DataFrame({"Day": [D1], "select": [NASTY]})
    replace_partitions(pg_conn, 'My Schema.we"ird', frame, partition_column="Day", partitions=[D1])
    assert _fetch(pg_conn, '"My Schema"."we""ird"') == [(D1, NASTY)]


def test_frame_errors_raise_before_touching_db(pg_conn: psycopg.Connection) -> None:
    pg_conn.execute("CREATE TABLE e (day date, v int, note text DEFAULT 'n', ts timestamptz)")
    pg_conn.execute("INSERT INTO e VALUES (%s, 1, 'old', NULL)", (D1,))
    pg_conn.commit()
    ok = pl.DataFrame({"day": [D1], "v": [2], "ts": [None]}, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    with pytest.raises(ValueError, match="outside the partitions"):
        replace_partitions(pg_conn, "e", ok, partition_column="day", partitions=[D2])
    with pytest.raises(ValueError, match=r"does not: \['extra'\]"):
        replace_partitions(pg_conn, "e", ok.with_columns(extra=1), partition_column="day", partitions=[D1])
    with pytest.raises(ValueError, match=r"lacks table columns \['v'\]"):
        replace_partitions(pg_conn, "e", ok.drop("v"), partition_column="day", partitions=[D1])
    naive = ok.with_columns(ts=pl.lit(datetime(2024, 1, 1)))
    with pytest.raises(TypeError, match="timezone-aware"):
        replace_partitions(pg_conn, "e", naive, partition_column="day", partitions=[D1])
    with pytest.raises(TypeError, match="expected a String"):
        replace_partitions(pg_conn, "e", ok.with_columns(note=pl.lit(5)), partition_column="day", partitions=[D1])
    with pytest.raises(ValueError, match="cannot convert"):
        replace_partitions(pg_conn, "e", ok.with_columns(v=pl.lit(2**40)), partition_column="day", partitions=[D1])
    assert _fetch(pg_conn, "e") == [(D1, 1, "old", None)]
    # columns with a default may be left out; a non-UTC zone is converted
    berlin = ok.with_columns(ts=pl.lit(datetime(2024, 1, 1, 12)).dt.replace_time_zone("Europe/Berlin"))
    replace_partitions(pg_conn, "e", berlin, partition_column="day", partitions=[D1])
    assert _fetch(pg_conn, "e") == [(D1, 2, "n", datetime(2024, 1, 1, 11, tzinfo=UTC))]
    assert _fetch(pg_conn, "e")[0][3].astimezone(ZoneInfo("Europe/Berlin")).hour == 12


def test_concurrent_writers_same_partition(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE c (day date, writer int, i int)")
    errors: list[BaseException] = []
    rounds = 15

    def writer(k: int) -> None:
        frame = pl.DataFrame({"day": [D1] * 500 + [D2] * 500, "writer": [k] * 1000, "i": list(range(1000))})
        try:
            with psycopg.connect(pg_url) as conn:
                for _ in range(rounds):
                    # alternate partition order too: the lock order must not depend on it
                    parts = [D1, D2] if k % 2 else [D2, D1]
                    replace_partitions(conn, "c", frame, partition_column="day", partitions=parts, chunk_rows=200)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        per_day = conn.execute("SELECT day, count(*), count(DISTINCT writer) FROM c GROUP BY day ORDER BY day")
        assert per_day.fetchall() == [(D1, 500, 1), (D2, 500, 1)]


def test_connection_killed_mid_copy_leaves_old_rows(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE k (day date, v bigint, s text)")
        conn.execute("INSERT INTO k SELECT %s, g, 'old' FROM generate_series(1, 10) g", (D1,))
    n = 2_000_000
    frame = pl.DataFrame({"day": [D1] * n, "v": range(n), "s": ["new"] * n})
    victim = psycopg.connect(pg_url)
    pid = victim.info.backend_pid
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            replace_partitions(victim, "k", frame, partition_column="day", partitions=[D1], chunk_rows=1000)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0].startswith("COPY"):
                break
            time.sleep(0.01)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    thread.join(timeout=60)
    victim.close()
    assert len(outcome) == 1
    assert isinstance(outcome[0], PartitionWriteError)
    assert "k" in str(outcome[0]) and "2024-05-01" in str(outcome[0])
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*), min(s), max(s) FROM k").fetchone() == (10, "old", "old")


def test_lock_days_holds_every_day_of_the_table_in_one_statement(pg_url: str) -> None:
    """Each day's lock is taken (a year of days was one round trip each); other days and tables stay free."""
    days = [D3, D1, D2]  # any order in, date order inside
    with psycopg.connect(pg_url, autocommit=True) as holder, psycopg.connect(pg_url, autocommit=True) as other:
        statements: list[str] = []
        original = holder.execute

        def counted(query, params=None, **kwargs):  # type: ignore[no-untyped-def]
            statements.append(str(query))
            return original(query, params, **kwargs)

        holder.execute = counted  # type: ignore[method-assign]
        lock_days(holder, "pg_advisory_lock", 4242, days)
        assert len(statements) == 1
        free = "SELECT pg_try_advisory_lock(%s::int4, %s::int4)"
        for day in days:
            assert other.execute(free, (4242, day.toordinal())).fetchone() == (False,)
        assert other.execute(free, (4242, D3.toordinal() + 1)).fetchone() == (True,)
        assert other.execute(free, (4243, D1.toordinal())).fetchone() == (True,)
        other.execute("SELECT pg_advisory_unlock_all()")
        holder.execute = original  # type: ignore[method-assign]
        holder.execute("SELECT pg_advisory_unlock_all()")
        for day in days:
            assert other.execute(free, (4242, day.toordinal())).fetchone() == (True,)
