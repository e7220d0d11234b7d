"""Peer for ``peers.py``: what a competent user writes with stravalib 2.x.

Lists ``/athlete/activities`` with stravalib's batched iterator, fetches every non-manual activity's streams
(all eleven types, ``key_by_type``) from 8 threads sharing one pooled ``requests`` session, at most 16
requests in flight, and streams the samples into PostgreSQL through one binary ``COPY`` as each response
arrives (so memory stays flat). The
summaries go to their own table (a few typed columns and the full JSON). No Dagster, no Parquet, no raw layer.

stravalib builds ``https://www.strava.com/api/v3/...`` URLs from a class constant; the only change made for
the simulator is a protocol subclass that resolves URLs against its base URL instead.

    python benchmarks/peer_stravalib.py BASE_URL ACCESS_TOKEN EXPIRES_AT DATABASE_URL [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any

import psycopg
import requests
from requests.adapters import HTTPAdapter
from stravalib import Client, exc
from stravalib.protocol import ApiV3

STREAM_TYPES = ["time", "distance", "latlng", "altitude", "velocity_smooth", "heartrate", "cadence", "watts",
                "temp", "moving", "grade_smooth"]
DDL = """
CREATE TABLE activities (id bigint PRIMARY KEY, name text, sport_type text, start_date timestamptz,
    distance_m double precision, moving_time_s integer, summary jsonb);
CREATE TABLE samples (activity_id bigint, sample_index integer, time_s integer, lat double precision,
    lng double precision, altitude_m double precision, distance_m double precision, velocity_mps double precision,
    heartrate_bpm smallint, cadence_rpm double precision, watts smallint, temp_c smallint, moving boolean,
    grade_pct double precision);
"""
SAMPLE_TYPES = ["int8", "int4", "int4", "float8", "float8", "float8", "float8", "float8", "int2", "float8", "int2",
                "int2", "bool", "float8"]
#: Stream type -> column order of ``samples`` after (activity_id, sample_index, time_s, lat, lng).
SCALARS = ["altitude", "distance", "velocity_smooth", "heartrate", "cadence", "watts", "temp", "moving",
           "grade_smooth"]


class SimulatorApi(ApiV3):
    """stravalib's protocol with its hard-coded ``https://www.strava.com`` replaced by ``base_url``."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def resolve_url(self, url: str) -> str:
        return url if url.startswith("http") else f"{self.base_url}{self.api_base}/{url.strip('/')}"


def make_client(base_url: str, token: str, expires_at: int, workers: int) -> Client:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=workers, pool_maxsize=workers))
    client = Client(access_token=token, token_expires=expires_at, requests_session=session)
    client.protocol = SimulatorApi(base_url, access_token=token, token_expires=expires_at,
                                   requests_session=session, rate_limiter=client.protocol.rate_limiter)
    return client


def sample_rows(activity_id: int, streams: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    data = {k: s.data for k, s in streams.items()}
    n = len(data["time"])
    none = [None] * n
    latlng = data.get("latlng") or none
    columns = [data.get(k) or none for k in SCALARS]
    for i, (t, point, *rest) in enumerate(zip(data["time"], latlng, *columns, strict=True)):
        lat, lng = point if point is not None else (None, None)
        yield (activity_id, i, t, lat, lng, *rest)


def run(base_url: str, token: str, expires_at: int, db_url: str, workers: int) -> dict[str, Any]:
    began = time.perf_counter()
    client = make_client(base_url, token, expires_at, workers)
    activities = list(client.get_activities())

    def fetch(activity_id: int) -> tuple[int, dict[str, Any] | None]:
        try:
            return activity_id, client.get_activity_streams(activity_id, types=STREAM_TYPES)
        except exc.ObjectNotFound:  # no streams (Strava's 404)
            return activity_id, None

    samples = 0
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        with cur.copy("COPY activities FROM STDIN") as copy:
            for a in activities:
                copy.write_row((a.id, a.name, str(a.sport_type.root) if a.sport_type else None, a.start_date,
                                float(a.distance) if a.distance is not None else None,
                                int(a.moving_time) if a.moving_time is not None else None,
                                a.model_dump_json()))
        with ThreadPoolExecutor(workers) as pool, cur.copy("COPY samples FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(SAMPLE_TYPES)
            todo = iter([a.id for a in activities if not a.manual])
            # A bounded window of requests in flight: responses never pile up while the COPY catches up.
            pending = {pool.submit(fetch, i) for i in islice(todo, 2 * workers)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                pending |= {pool.submit(fetch, i) for i in islice(todo, len(done))}
                for future in done:
                    activity_id, streams = future.result()
                    if streams is None or "time" not in streams:
                        continue
                    for row in sample_rows(activity_id, streams):
                        copy.write_row(row)
                        samples += 1
        conn.commit()
    return {"seconds": time.perf_counter() - began, "samples": samples, "activities": len(activities)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("expires_at", type=int)
    parser.add_argument("database_url")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(run(args.base_url, args.token, args.expires_at, args.database_url, args.workers)))


if __name__ == "__main__":
    main()
