"""Throughput of the Strava simulator serving streams to concurrent keep-alive clients.

Starts the simulator (one-hour activities, limits out of the way), pre-warms nothing on purpose
except one fetch per activity when --warm is given, then runs N client threads, each with its own
requests.Session, fetching all-keys streams round-robin for a fixed time. Prints requests/s, MB/s
and latency percentiles.

    .venv/bin/python benchmarks/simulator_throughput.py [--seconds 10] [--clients 8] [--activities 200]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import threading
import time
from datetime import date
from multiprocessing.connection import Connection
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator

KEYS = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"


def _serve(cfg: SimulatorConfig, conn: Connection) -> None:
    t0 = time.perf_counter()
    with StravaSimulator(cfg) as sim:
        started = time.perf_counter() - t0
        ids = [a["id"] for a in sim.activities() if not a["manual"]]
        conn.send((sim.base_url, sim.authorize()["access_token"], ids, started))
        conn.recv()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--activities", type=int, default=200)
    parser.add_argument("--no-warm", action="store_true", help="measure cold stream generation too")
    parser.add_argument("--in-process", action="store_true",
                        help="run the server in this process (clients and server then share one GIL)")
    args = parser.parse_args()

    cfg = SimulatorConfig(seed=1, start_date=date(2025, 1, 1), end_date=date(2025, 12, 31),
                          activities=args.activities, activity_seconds=3600,
                          read_limit=(10**9, 10**9), overall_limit=(10**9, 10**9))
    t0 = time.perf_counter()
    if args.in_process:
        sim = StravaSimulator(cfg).start()
        started = time.perf_counter() - t0
        base_url, token = sim.base_url, sim.authorize()["access_token"]
        ids = [a["id"] for a in sim.activities() if not a["manual"]]
        stop = sim.stop
    else:
        # The server gets its own process (and GIL), as it would in front of a real pipeline.
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(cfg, child), daemon=True)
        proc.start()
        base_url, token, ids, started = parent.recv()

        def stop() -> None:
            parent.send("stop")
            proc.join(10)

    try:
        headers = {"Authorization": f"Bearer {token}"}
        if not args.no_warm:
            t1 = time.perf_counter()
            with requests.Session() as s:
                for aid in ids:
                    s.get(f"{base_url}/api/v3/activities/{aid}/streams",
                          params={"keys": KEYS, "key_by_type": "true"}, headers=headers).raise_for_status()
            print(f"warm-up: generated streams of {len(ids)} activities in {time.perf_counter() - t1:.1f} s")
        latencies: list[float] = []
        sizes: list[int] = []
        errors = [0]
        lock = threading.Lock()
        deadline = time.perf_counter() + args.seconds

        def client(n: int) -> None:
            session = requests.Session()
            mine_lat, mine_size, i = [], [], n
            while time.perf_counter() < deadline:
                aid = ids[i % len(ids)]
                i += args.clients
                t = time.perf_counter()
                r = session.get(f"{base_url}/api/v3/activities/{aid}/streams",
                                params={"keys": KEYS, "key_by_type": "true"}, headers=headers)
                body = r.content
                mine_lat.append(time.perf_counter() - t)
                mine_size.append(len(body))
                if r.status_code != 200:
                    with lock:
                        errors[0] += 1
            with lock:
                latencies.extend(mine_lat)
                sizes.extend(mine_size)

        t2 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t2
    finally:
        stop()
    latencies.sort()
    n = len(latencies)
    print(f"simulator start ({args.activities} activities): {started:.2f} s")
    print(f"{n} stream requests by {args.clients} clients in {elapsed:.1f} s, {errors[0]} errors")
    print(f"throughput: {n / elapsed:.0f} req/s, {sum(sizes) / elapsed / 1e6:.1f} MB/s "
          f"(mean body {statistics.mean(sizes) / 1e3:.0f} kB)")
    print(f"latency: p50 {latencies[n // 2] * 1000:.1f} ms, p95 {latencies[int(n * 0.95)] * 1000:.1f} ms")
    return 0 if errors[0] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
