"""Peer for ``peers.py``: a tuned dlt 1.x pipeline into PostgreSQL.

The declarative ``rest_api`` source lists ``/athlete/activities`` (page-number paginator) and fetches each
activity's streams as a dependent resource with ``parallelized`` set, so dlt's extract thread pool runs the
requests concurrently (``EXTRACT__WORKERS``, 8 like the stravalib peer). A transformer turns each streams
response into one Arrow table of samples (dlt's fast path: no per-row normalisation), which dlt writes to
Parquet and loads with ADBC's binary COPY (``csv``, plain COPY, when ADBC is not installed). Summaries are
loaded as dlt normalises them (nested fields as child tables).

    python benchmarks/peer_dlt.py BASE_URL ACCESS_TOKEN DATABASE_URL WORK_DIR [--workers 8]
        [--loader-file-format parquet|csv|insert_values]  (or PEER_DLT_FILE_FORMAT)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

STREAM_TYPES = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"
DATASET = "strava_dlt"


def configure(workers: int) -> None:
    """dlt reads its tuning from the environment (or ``config.toml``); set before importing dlt. Values
    already in the environment win (to try other settings)."""
    for name, value in {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "RUNTIME__LOG_LEVEL": "WARNING",
        "EXTRACT__WORKERS": str(workers),
        "EXTRACT__MAX_PARALLEL_ITEMS": str(workers * 4),
        # Arrow tables pass through normalisation as files; 100,000-row files loaded two at a time were as
        # fast as 500,000-row ones four at a time on the 1,000-activity benchmark, at 310 instead of 530 MiB
        # (ADBC reads a whole file into memory); text COPY ("csv") took twice as long.
        "DATA_WRITER__BUFFER_MAX_ITEMS": "50000",
        "DATA_WRITER__FILE_MAX_ITEMS": "100000",
        "NORMALIZE__WORKERS": "1",
        "LOAD__WORKERS": "2",
    }.items():
        os.environ.setdefault(name, value)


def dlt_credentials(db_url: str) -> str:
    """dlt wants a host and a password in the URL: a socket URL (``postgresql://user@/db?host=/dir``) gets
    placeholders that libpq ignores (the ``host`` parameter wins; the embedded server trusts its socket)."""
    parts = urlsplit(db_url)
    if parts.hostname:
        return db_url
    user = parts.username or "postgres"
    return urlunsplit((parts.scheme, f"{user}:unused@localhost", parts.path, parts.query, ""))


def run(base_url: str, token: str, db_url: str, work_dir: str, workers: int, file_format: str | None
        ) -> dict[str, Any]:
    began = time.perf_counter()
    configure(workers)
    import dlt
    import pyarrow as pa
    from dlt.sources.rest_api import rest_api_resources

    config: dict[str, Any] = {
        "client": {"base_url": f"{base_url.rstrip('/')}/api/v3/", "auth": {"type": "bearer", "token": token}},
        "resources": [
            {
                "name": "activities",
                "write_disposition": "replace",
                "endpoint": {
                    "path": "athlete/activities",
                    "params": {"per_page": 200},
                    "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None,
                                  "stop_after_empty_page": True},
                },
            },
            {
                "name": "streams",
                "parallelized": True,
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "activities/{resources.activities.id}/streams",
                    "params": {"keys": STREAM_TYPES, "key_by_type": "true"},
                    "data_selector": "$",
                    "paginator": "single_page",
                    "response_actions": [{"status_code": 404, "action": "ignore"}],  # manual: no streams
                },
            },
        ],
    }
    activities, streams = rest_api_resources(config)  # type: ignore[arg-type]

    schema = pa.schema([
        ("activity_id", pa.int64()), ("sample_index", pa.int32()), ("time_s", pa.int32()), ("lat", pa.float64()),
        ("lng", pa.float64()), ("altitude_m", pa.float64()), ("distance_m", pa.float64()),
        ("velocity_mps", pa.float64()), ("heartrate_bpm", pa.int16()), ("cadence_rpm", pa.float64()),
        ("watts", pa.int16()), ("temp_c", pa.int16()), ("moving", pa.bool_()), ("grade_pct", pa.float64()),
    ])
    scalars = {"altitude_m": "altitude", "distance_m": "distance", "velocity_mps": "velocity_smooth",
               "heartrate_bpm": "heartrate", "cadence_rpm": "cadence", "watts": "watts", "temp_c": "temp",
               "moving": "moving", "grade_pct": "grade_smooth"}

    def to_table(record: dict[str, Any]) -> pa.Table:
        times = record["time"]["data"]
        n = len(times)
        points = record.get("latlng", {}).get("data")
        columns: dict[str, Any] = {
            "activity_id": pa.repeat(record["_activities_id"], n).cast(pa.int64()),
            "sample_index": pa.array(range(n), pa.int32()),
            "time_s": pa.array(times, pa.int32()),
            "lat": pa.array([p[0] for p in points] if points else [None] * n, pa.float64()),
            "lng": pa.array([p[1] for p in points] if points else [None] * n, pa.float64()),
        }
        for column, stream in scalars.items():
            data = record.get(stream, {}).get("data")
            columns[column] = pa.array(data if data is not None else [None] * n, schema.field(column).type)
        return pa.table(columns, schema=schema)

    @dlt.transformer(name="samples", write_disposition="replace")
    def samples(records: list[dict[str, Any]]) -> Any:
        for record in records:
            if "time" in record:
                yield to_table(record)

    pipeline = dlt.pipeline(pipeline_name="strava_peer", pipelines_dir=work_dir, dataset_name=DATASET,
                            destination=dlt.destinations.postgres(credentials=dlt_credentials(db_url)))
    if file_format is None:
        try:
            import adbc_driver_postgresql  # noqa: F401
            file_format = "parquet"
        except ImportError:
            file_format = "csv"
    info = pipeline.run([activities, streams | samples], loader_file_format=file_format)  # type: ignore[arg-type]
    info.raise_on_failed_jobs()
    return {"seconds": time.perf_counter() - began, "loader_file_format": file_format}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("database_url")
    parser.add_argument("work_dir")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--loader-file-format", choices=["parquet", "csv", "insert_values"],
                        default=os.environ.get("PEER_DLT_FILE_FORMAT"))
    args = parser.parse_args()
    print(json.dumps(run(args.base_url, args.token, args.database_url, args.work_dir, args.workers,
                         args.loader_file_format)))


if __name__ == "__main__":
    main()
