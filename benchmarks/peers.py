"""Our full backfill against skilled peers, side by side: same simulator, same PostgreSQL server, one session.

One simulator (N one-hour activities over two years, ``--latency-ms`` per request, rate limits out of the way,
every stream generated and cached before the first contender starts) and one embedded PostgreSQL serve every
contender; each runs as its own child process in its own database, so its wall time, CPU time (user + system,
from ``wait4``) and peak RSS (the larger of its ``VmHWM`` and its whole process tree's RSS, sampled every
50 ms) are its own:

- ``stravalib``: ``peer_stravalib.py``, stravalib 2.x, 8 threads, samples COPYed into PostgreSQL;
- ``dlt``: ``peer_dlt.py``, dlt's ``rest_api`` source with a parallelized streams resource, an Arrow
  transformer and the postgres destination (Parquet + ADBC COPY);
- ``ours``: ``strava-pipeline backfill`` of the whole history, twice, each from an empty database: *mirror*
  (``--select activities_raw,activities,streams_raw,activity_streams``: summaries, raw payloads and typed
  samples in Parquet and PostgreSQL, i.e. the time to a queryable mirror) and *full* (every asset: athlete,
  gear, metrics, training load, weekly summary, report, activity files).

Every contender must load exactly the samples the simulator serves (count, activities and column sums
compared); requests are counted in the simulator's log, cleared before each contender. The CPU the simulator
(this process) and the PostgreSQL server spend meanwhile is printed beside, as it is not the contender's.
With ``--runs`` > 1 each figure is the median. The last line is machine-readable:
``RESULT ours_s=<mirror s> best_peer_s=<s> ratio=<ours/best> ours_rss_mib=<peak of our runs> peer_rss_mib=<best
peer's>``.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/peers.py [--activities 1000] [--latency-ms 100] [--runs 3]
        [--contenders stravalib,dlt,ours_mirror,ours_full] [--keep-logs DIR] [--ours-env NAME=VALUE]
        [--rss-peaks DIR] [--py-spy DIR]

``--py-spy DIR`` records our runs' CPU profiles (``benchmarks/profile_summary.py`` reads them),
``--rss-peaks DIR`` where each contender's memory grew; both slow the runs down, so their figures are not
the comparison's. A failed contender stops the session with its output; mismatched samples exit 1
without a RESULT line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
import requests
from pipeline_env import pipeline_env  # benchmarks/ is on sys.path when run as a script

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres

HERE = Path(__file__).resolve().parent
STREAM_KEYS = "time,distance,latlng,altitude,velocity_smooth,heartrate,cadence,watts,temp,moving,grade_smooth"
CONTENDERS = ("stravalib", "dlt", "ours_mirror", "ours_full")
PEERS = ("stravalib", "dlt")
MIRROR_ASSETS = "activities_raw,activities,streams_raw,activity_streams"
#: Where each contender leaves its samples and summaries.
TABLES = {
    "stravalib": ("samples", "activities"),
    "dlt": ("strava_dlt.samples", "strava_dlt.activities"),
    "ours_mirror": ("strava.activity_streams", "strava.activities"),
    "ours_full": ("strava.activity_streams", "strava.activities"),
}
#: What "the same samples" means: these aggregates agree exactly.
FINGERPRINT = ("count(*), count(DISTINCT activity_id), sum(time_s), sum(heartrate_bpm), sum(watts), "
               "sum(temp_c), count(lat), count(moving), round(sum(distance_m)::numeric, 1), "
               "round(sum(lat)::numeric, 3)")


@dataclass
class Measurement:
    """One contender's run."""

    name: str
    wall_s: float
    cpu_s: float
    rss_mib: float
    requests: int
    samples: int
    activities: int
    sim_cpu_s: float
    db_cpu_s: float
    fingerprint: tuple[Any, ...] = field(repr=False, default=())
    extra: dict[str, Any] = field(default_factory=dict)


def _postgres_cpu(conn_url: str) -> float:
    """CPU seconds of the whole server so far: the postmaster, its live children and its reaped ones."""
    with psycopg.connect(conn_url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        postmaster = psutil.Process(psutil.Process(backend).ppid())
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _high_water_mark(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM``, bytes): of its own program only, unlike ``ru_maxrss``, which
    counts the parent's memory the child had between fork and exec."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class TreeRss:
    """Peak memory of a process tree, sampled every ``interval`` seconds: the larger of the root's high-water
    mark and the tree's summed RSS (descendants such as process pools count while they run)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.peak = 0
        self._pid, self._interval = pid, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            root = psutil.Process(self._pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                        total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                return
            self.peak = max(self.peak, total, _high_water_mark(self._pid))
            self._stop.wait(self._interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without anything that would point a contender elsewhere, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRAVA_", "DAGSTER_", "FITTRACKEE_", "DESTINATION__", "RUNTIME__"))}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_child(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, str]:
    """Run ``cmd`` to completion: (wall s, CPU s, peak RSS MiB, its stdout). A failure raises with its log.

    CPU time comes from ``wait4`` (the child and the descendants it waited for); peak memory from sampling
    (``TreeRss``): ``ru_maxrss`` would include this process's own memory (the simulator's cache), which a
    vforked child shares until it execs."""
    with log.open("wb") as out:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        tree = TreeRss(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak_tree = tree.stop()
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1:3]} exited with {proc.returncode}:\n{text[-4000:]}")
    rss = peak_tree / 2**20
    return wall, usage.ru_utime + usage.ru_stime, rss, text


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


def _count(db_url: str, name: str) -> tuple[int, int, tuple[Any, ...]]:
    samples_table, activities_table = TABLES[name]
    with psycopg.connect(db_url) as conn:
        fingerprint = conn.execute(f"SELECT {FINGERPRINT} FROM {samples_table}").fetchone()
        activities = conn.execute(f"SELECT count(*) FROM {activities_table}").fetchone()[0]  # type: ignore[index]
    assert fingerprint is not None
    return int(fingerprint[0]), int(activities), tuple(fingerprint)


class Session:
    """The shared simulator and server, and how each contender is started against them."""

    def __init__(self, sim: StravaSimulator, pg_url: str, tmp: Path, history_start: str, workers: int,
                 py_spy: Path | None, keep_logs: Path | None, rss_peaks: Path | None) -> None:
        self.sim, self.pg_url, self.tmp = sim, pg_url, tmp
        self.history_start, self.workers, self.py_spy, self.keep_logs = history_start, workers, py_spy, keep_logs
        self.rss_peaks = rss_peaks
        self.ours_env: dict[str, str] = {}
        self.python = sys.executable
        self.cli = str(Path(sys.executable).parent / "strava-pipeline")

    def command(self, name: str, db_url: str, work: Path) -> tuple[list[str], dict[str, str]]:
        tokens = self.sim.authorize()
        if name == "stravalib":
            cmd = [str(HERE / "peer_stravalib.py"), self.sim.base_url, tokens["access_token"],
                   str(tokens["expires_at"]), db_url, "--workers", str(self.workers)]
            env = _child_env({})
        elif name == "dlt":
            cmd = [str(HERE / "peer_dlt.py"), self.sim.base_url, tokens["access_token"], db_url, str(work / "dlt"),
                   "--workers", str(self.workers)]
            env = _child_env({})
        else:
            env = _child_env(pipeline_env(self.sim, work, date.fromisoformat(self.history_start), db_url))
            env.update(self.ours_env)
            cmd = [self.cli, "backfill"] + (["--select", MIRROR_ASSETS] if name == "ours_mirror" else [])
        stamp = datetime.now().strftime("%H%M%S")
        if self.rss_peaks is not None:
            self.rss_peaks.mkdir(parents=True, exist_ok=True)
            cmd = [self.python, str(HERE / "rss_peaks.py"), "--out", str(self.rss_peaks / f"{name}_{stamp}.txt"),
                   "--", *cmd]
        elif name in PEERS:
            cmd = [self.python, *cmd]
        if self.py_spy is not None and name not in PEERS:
            self.py_spy.mkdir(parents=True, exist_ok=True)
            cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--rate", "50",
                   "--threads", "-o", str(self.py_spy / f"{name}_{stamp}.txt"), "--", *cmd]
        return cmd, env

    def measure(self, name: str) -> Measurement:
        db_name = f"peers_{name}_{uuid.uuid4().hex[:6]}"
        db_url = create_database(self.pg_url, db_name)
        work = Path(tempfile.mkdtemp(prefix=f"{name}_", dir=self.tmp))
        try:
            cmd, env = self.command(name, db_url, work)
            self.sim.wait_idle()
            self.sim.clear_request_log()
            sim_cpu, db_cpu = _self_cpu(), _postgres_cpu(self.pg_url)
            try:
                wall, cpu, rss, text = _run_child(cmd, env, work / "output.log")
            finally:
                if self.keep_logs is not None:
                    self.keep_logs.mkdir(parents=True, exist_ok=True)
                    log = work / "output.log"
                    if log.exists():
                        log.rename(self.keep_logs / f"{name}_{datetime.now().strftime('%H%M%S')}.log")
            sim_cpu, db_cpu = _self_cpu() - sim_cpu, _postgres_cpu(self.pg_url) - db_cpu
            self.sim.wait_idle()
            requests_made = len(self.sim.request_log)
            samples, activities, fingerprint = _count(db_url, name)
            return Measurement(name, wall, cpu, rss, requests_made, samples, activities, sim_cpu, db_cpu,
                               fingerprint, _last_json(text))
        finally:
            drop_database(self.pg_url, db_name)
            subprocess.run(["rm", "-rf", str(work)], check=False)


def _warm_up(sim: StravaSimulator) -> tuple[int, int]:
    """Generate (and cache) every stream before anyone is timed; returns (activities with streams, samples)."""
    token = sim.authorize()["access_token"]
    latency, sim.config.latency_ms = sim.config.latency_ms, 0
    with_streams = samples = 0
    try:
        with requests.Session() as session:
            for summary in sim.activities():
                response = session.get(f"{sim.base_url}/api/v3/activities/{summary['id']}/streams",
                                       params={"keys": STREAM_KEYS, "key_by_type": "true"},
                                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
                if response.status_code == 404:
                    continue
                response.raise_for_status()
                with_streams += 1
                samples += len(orjson.loads(response.content)["time"]["data"])
    finally:
        sim.config.latency_ms = latency
    return with_streams, samples


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _summarise(runs: list[Measurement]) -> Measurement:
    first = runs[0]
    return Measurement(
        first.name, _median([m.wall_s for m in runs]), _median([m.cpu_s for m in runs]),
        _median([m.rss_mib for m in runs]), round(_median([m.requests for m in runs])), first.samples,
        first.activities, _median([m.sim_cpu_s for m in runs]), _median([m.db_cpu_s for m in runs]),
        first.fingerprint, first.extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--runs", type=int, default=3, help="runs per contender; figures are medians")
    parser.add_argument("--days", type=int, default=730, help="history length the activities are spread over")
    parser.add_argument("--workers", type=int, default=8, help="concurrent requests of the peers")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma-separated subset of {', '.join(CONTENDERS)}")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="keep each contender's output in DIR")
    parser.add_argument("--ours-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for our runs (repeatable), e.g. MALLOC_ARENA_MAX=2")
    parser.add_argument("--rss-peaks", type=Path, metavar="DIR",
                        help="record where each contender's RSS grew (benchmarks/rss_peaks.py), a report each in DIR")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="profile our runs with py-spy (raw collapsed stacks in DIR; slows them down)")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if any("=" not in item for item in args.ours_env):
        parser.error("--ours-env: give NAME=VALUE")
    unknown = sorted(set(chosen) - set(CONTENDERS))
    if unknown:
        parser.error(f"--contenders: unknown {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")

    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days)
    config = SimulatorConfig(seed=3, start_date=start, end_date=end, activities=args.activities,
                             activity_seconds=3600, latency_ms=args.latency_ms, stream_cache_mb=2048,
                             read_limit=(1_000_000, 10_000_000), overall_limit=(1_000_000, 10_000_000))
    with tempfile.TemporaryDirectory() as tmp_name, start_embedded_postgres(Path(tmp_name) / "pg") as pg, \
            StravaSimulator(config) as sim:
        tmp = Path(tmp_name)
        with_streams, expected = _warm_up(sim)
        print(f"simulator: {args.activities} one-hour activities ({with_streams} with streams, {expected:,} "
              f"samples), {args.latency_ms:g} ms latency per request; {args.runs} run(s) each, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        session = Session(sim, pg.url, tmp, start.isoformat(), args.workers, args.py_spy, args.keep_logs,
                          args.rss_peaks)
        session.ours_env = dict(item.split("=", 1) for item in args.ours_env)
        results: dict[str, list[Measurement]] = {name: [] for name in chosen}
        for run in range(args.runs):
            for name in chosen:
                m = session.measure(name)
                results[name].append(m)
                print(f"  run {run + 1} {name:<12} {m.wall_s:7.1f} s wall {m.cpu_s:7.1f} s CPU "
                      f"{m.rss_mib:6.0f} MiB {m.requests:5d} requests {m.samples:>10,} samples", flush=True)
        summary = {name: _summarise(runs) for name, runs in results.items()}

    print()
    print(f"{'contender':<12} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'requests':>9} {'samples':>11} "
          f"{'activities':>10} {'sim CPU s':>10} {'db CPU s':>9}")
    for m in summary.values():
        print(f"{m.name:<12} {m.wall_s:8.1f} {m.cpu_s:8.1f} {m.rss_mib:13.0f} {m.requests:9d} {m.samples:11,} "
              f"{m.activities:10d} {m.sim_cpu_s:10.1f} {m.db_cpu_s:9.1f}")
    problems = [f"{m.name} loaded {m.samples:,} samples, the simulator served {expected:,}"
                for m in summary.values() if m.samples != expected]
    prints = {m.fingerprint for m in summary.values()}
    if len(prints) > 1:
        problems.append("contenders' samples differ: " + "; ".join(f"{m.name} {m.fingerprint}"
                                                                    for m in summary.values()))
    print("samples: " + ("identical in every contender" if not problems else "MISMATCH\n  " + "\n  ".join(problems)))

    peers = [summary[p] for p in PEERS if p in summary]
    if not peers:
        return
    best = min(peers, key=lambda m: m.wall_s)
    ours_mirror, ours_full = summary.get("ours_mirror"), summary.get("ours_full")
    for label, ours, target in (("mirror", ours_mirror, 0.8), ("full", ours_full, 1.0)):
        if ours is not None:
            print(f"ratio {label}: ours {ours.wall_s:.1f} s / best peer ({best.name}) {best.wall_s:.1f} s = "
                  f"{ours.wall_s / best.wall_s:.2f} (target <= {target}); CPU {ours.cpu_s / best.cpu_s:.2f}x, "
                  f"peak RSS {ours.rss_mib:.0f} vs {best.rss_mib:.0f} MiB (target <= 256)")
    headline = ours_mirror or ours_full
    if headline is None:
        return
    ours_rss = max(m.rss_mib for m in (ours_mirror, ours_full) if m is not None)
    if problems:
        sys.exit(1)
    ratio = headline.wall_s / best.wall_s
    print(f"RESULT ours_s={headline.wall_s:.1f} best_peer_s={best.wall_s:.1f} ratio={ratio:.2f} "
          f"ours_rss_mib={ours_rss:.0f} peer_rss_mib={best.rss_mib:.0f}")


if __name__ == "__main__":
    main()
