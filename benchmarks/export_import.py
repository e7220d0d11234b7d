"""Importing Strava's bulk export archive end to end, against what the same history costs through the API.

Why: a new user's whole history through the API is bounded by Strava's read limits (100 per 15 min,
1,000 per day), i.e. days for a few thousand activities; the archive the user downloads once holds the
same recordings. The issue's target: 1,000 one-hour activities imported in at most 60 s on a 2-core
machine with a peak RSS under 1 GiB, with zero API requests.

What is measured. The simulator writes the athlete's archive (N one-hour activities spread over
``--days``, the default format mix: mostly ``.fit.gz``, some GPX/TCX); writing it is not timed (its time is
printed apart). Then a fresh child process does exactly what ``strava-pipeline import PATH`` does, without
Strava credentials: ``pipeline_environment`` (migrations), the persistent ``dagster_instance`` (its
tables in the same PostgreSQL database) and ``run_import``: staging (copy into the raw blob store, decode
every original file, the archive index) and the Dagster runs of the archive assets, writing
both stores (Parquet and PostgreSQL). The clock covers all of that, as the command pays it; the progress
lines give the staging part and each run. The simulator keeps running with its URL configured, so a
request the import should not make would land in its request log, which must stay empty.

Peak RSS is sampled (every 50 ms, psutil) over the child's whole process tree: the sum over the import
process and every descendant (decoding workers if staging starts any, multiprocessing's helper, Dagster's
compute-log ``tail`` processes and their watchers), with the breakdown at the peak and the peak PSS; the
PostgreSQL server (started by this script, shared like a user's running database) is sampled apart and
not counted.

Verified afterwards: every activity of the archive is in ``strava.activities`` and in Parquet, and the
``source = 'export'`` samples of ``strava.activity_streams`` (and of Parquet) equal, per activity, the
manifest's samples of the files the archive holds whole. The decoders used are the import's own count
(``report.staged.decoders``: files read by each).

Beside it, the API cost of the same history under Strava's default read limits: 1 athlete + 1 zones + one
per bike/shoe + ceil(N/200)+1 listing pages + one streams request per non-manual activity, in hours at
100 reads per 15 min and in days at 1,000 reads per day (see benchmarks/api_cost.py for the measured bound).

``--sample`` samples the import process's stack every 5 ms (seconds by part: staging, asset code, IO
manager, Dagster; and the hottest functions) without cProfile's distortion of Python loops; ``--profile``
writes a cProfile (neither sees inside worker processes).

    .venv/bin/python benchmarks/export_import.py [--activities 1000] [--days 730] [--sample] [--profile PATH]

Last line: ``RESULT seconds=<s> samples_per_s=<n> peak_rss_mib=<m> api_requests=<r>``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import math
import multiprocessing as mp
import os
import pstats
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
import psycopg
from pipeline_env import pipeline_env

from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import start_embedded_postgres
from strava_pipeline.storage.parquet_store import ParquetStore

NO_CREDENTIALS = {"STRAVA_CLIENT_ID": "", "STRAVA_CLIENT_SECRET": "", "STRAVA_REFRESH_TOKEN": ""}
#: Strava's default read limits: per 15 minutes and per day (UTC).
READS_PER_WINDOW, WINDOW_MINUTES, READS_PER_DAY = 100, 15, 1000
PAGE_SIZE = 200


class StackSampler:
    """A sampling profiler of one thread (``sys._current_frames`` every few ms): unlike cProfile it does not
    slow Python loops down, so its seconds are those of a normal run. Native code that holds the GIL delays
    samples, so read the shares as approximate."""

    def __init__(self, thread_id: int, interval: float = 0.005) -> None:
        self.thread_id, self.interval = thread_id, interval
        self.cumulative: Counter[str] = Counter()
        self.own: Counter[str] = Counter()
        self.buckets: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    #: (substring of a frame key, bucket), innermost match of the first rule that matches wins.
    BUCKETS = (
        ("(stage_archive)", "staging (copy, decode, index)"),
        ("io_manager.py", "IO manager (Parquet + PostgreSQL reads and writes)"),
        ("defs/checks.py", "asset checks"),
        ("defs/assets/", "asset computations"),
        ("(run_backfill)", "Dagster's own work in the runs (planning, events, storage)"),
    )

    @classmethod
    def _bucket(cls, stack: list[str]) -> str:
        for needle, bucket in cls.BUCKETS:
            if any(needle in key for key in stack):
                return bucket
        return "set-up and the rest (migrations, instance, imports)"

    @staticmethod
    def _key(code: Any) -> str:
        path = code.co_filename
        for marker in ("site-packages/", "/strava_pipeline/"):
            if marker in path:
                path = ("" if marker == "site-packages/" else "strava_pipeline/") + path.split(marker, 1)[1]
                break
        return f"{path}:{code.co_firstlineno}({code.co_name})"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.thread_id)
            if frame is None:
                continue
            self.samples += 1
            self.own[self._key(frame.f_code)] += 1
            stack: list[str] = []
            while frame is not None:
                stack.append(self._key(frame.f_code))
                frame = frame.f_back
            self.cumulative.update(set(stack))
            self.buckets[self._bucket(stack)] += 1

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def top(self, seconds: float, n: int = 25) -> dict[str, list[tuple[str, float]]]:
        """Functions by share of the samples, scaled to ``seconds``: ours by cumulative time, any by own time."""
        scale = seconds / max(self.samples, 1)
        ours = [(k, c * scale) for k, c in self.cumulative.most_common() if k.startswith("strava_pipeline/")][:n]
        return {"buckets": [(k, c * scale) for k, c in self.buckets.most_common()], "cumulative": ours,
                "own": [(k, c * scale) for k, c in self.own.most_common(n)]}


def run_import_child(env: dict[str, str], archive: str, profile: str | None, sample: bool, queue: mp.Queue) -> None:
    """Child process: what ``strava-pipeline import PATH`` does, timed from the environment set-up on."""
    os.environ.update(env)
    from strava_pipeline.cli.importing import run_import
    from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
    from strava_pipeline.settings import Settings

    profiler = cProfile.Profile() if profile else None
    sampler = StackSampler(threading.get_ident()) if sample else None
    if profiler is not None:
        profiler.enable()
    if sampler is not None:
        sampler.__enter__()
    began = time.perf_counter()
    steps: list[tuple[float, str]] = []

    def progress(message: str) -> None:
        steps.append((time.perf_counter() - began, message))

    with pipeline_environment(Settings.from_env()) as settings, dagster_instance() as instance:
        progress("database migrated, Dagster instance ready")
        report = run_import(settings, Path(archive), instance=instance, progress=progress)
    elapsed = time.perf_counter() - began
    if sampler is not None:
        sampler.__exit__()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    staged = report.staged
    queue.put({
        "seconds": elapsed, "steps": steps,
        "staged": {"activities": staged.activities, "statuses": dict(staged.statuses), "samples": staged.samples,
                   "decoders": dict(staged.decoders), "days": len(staged.days), "refused": len(staged.refused),
                   "already_imported": staged.already_imported},
        "runs": len(report.backfill.run_ids) if report.backfill is not None else 0,
        "self_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sampled": sampler.top(elapsed) if sampler is not None else None,
    })


class TreeRss:
    """Samples the summed RSS (and PSS) of a process and all its descendants in a thread; keeps the peaks.

    RSS counts pages shared between the processes (libraries, a forked parent's memory) once per process,
    so the sum is an upper bound; PSS splits shared pages among their sharers (what the tree really holds).
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.started = time.perf_counter()
        self.peak_bytes = self.peak_pss_bytes = 0
        self.peak_at = 0.0
        self.peak_parts: list[tuple[str, int]] = []
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _label(self, proc: psutil.Process) -> str:
        if proc.pid == self.pid:
            return "main"
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            return "gone"
        if "resource_tracker" in cmdline:
            return "resource tracker"
        if "watch_orphans" in cmdline:
            return "Dagster log watcher"
        if proc.name() == "tail":
            return "Dagster log tail"
        return "worker" if "multiprocessing" in cmdline else proc.name()

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        parts: list[tuple[str, int]] = []
        pss = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info()
                parts.append((self._label(proc), info.rss))
                pss += getattr(info, "pss", info.rss)
        total = sum(rss for _, rss in parts)
        self.peak_processes = max(self.peak_processes, len(parts))
        self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_parts = total, parts
            self.peak_at = time.perf_counter() - self.started

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20

    def describe_peak(self) -> str:
        parts = ", ".join(f"{label} {rss / 2**20:.0f}" for label, rss in sorted(self.peak_parts, key=lambda p: -p[1]))
        return (f"at {self.peak_at:.1f} s after the process started: {parts} MiB; "
                f"peak PSS {self.peak_pss_bytes / 2**20:.0f} MiB")


def _postmaster_pid(pg_data_dir: Path) -> int | None:
    try:
        return int((pg_data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _run_child(env: dict[str, str], archive: Path, profile: str | None,
               sample: bool) -> tuple[dict[str, Any], TreeRss]:
    """The import in a fresh spawned process (its own RSS), sampled while it runs; a crash is an error."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=run_import_child, args=(env, str(archive), profile, sample, queue))
    proc.start()
    assert proc.pid is not None
    with TreeRss(proc.pid) as rss:
        while True:
            try:
                result = queue.get(timeout=2)
                break
            except Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"the import exited with code {proc.exitcode} without a result") from None
    proc.join()
    return result, rss


def api_cost(sim: StravaSimulator) -> dict[str, Any]:
    """What the same history costs through the API (the bound of benchmarks/api_cost.py, one listing)."""
    summaries = sim.activities()
    gear = len(sim.app.dataset.athlete.gear)
    listing = math.ceil(len(summaries) / PAGE_SIZE) + 1
    streams = sum(1 for s in summaries if not s["manual"])
    requests = 1 + 1 + gear + listing + streams
    window_hours = requests / READS_PER_WINDOW * WINDOW_MINUTES / 60
    return {"requests": requests, "gear": gear, "listing": listing, "streams": streams,
            "hours_15min": window_hours, "days_daily": requests / READS_PER_DAY,
            "utc_days": math.ceil(requests / READS_PER_DAY)}


def verify(manifest: Any, database_url: str, parquet_dir: Path) -> list[str]:
    """Problems found (empty: every activity in both stores, export samples as the manifest says)."""
    problems: list[str] = []
    truth = {a.activity_id for a in manifest.activities}
    expected = {a.activity_id: a.samples for a in manifest.activities if a.filename and not a.broken}
    with psycopg.connect(database_url) as conn:
        in_pg = {r[0] for r in conn.execute("SELECT activity_id FROM strava.activities")}
        pg_samples = dict(conn.execute("SELECT activity_id, count(*) FROM strava.activity_streams "
                                       "WHERE source = 'export' GROUP BY 1").fetchall())
        other = conn.execute("SELECT count(*) FROM strava.activity_streams WHERE source <> 'export'").fetchone()[0]
    store = ParquetStore(parquet_dir)
    in_parquet = set(store.read("activities", columns=["activity_id"]).get_column("activity_id").to_list())
    streams = store.read("activity_streams", columns=["activity_id", "source"])
    pq_samples = dict(Counter(streams.filter(streams.get_column("source") == "export")
                              .get_column("activity_id").to_list()))
    for name, found in (("strava.activities", in_pg), ("Parquet activities", in_parquet)):
        if found != truth:
            problems.append(f"{name}: {len(truth - found)} archive activities missing, {len(found - truth)} extra")
    for name, samples in (("strava.activity_streams", pg_samples), ("Parquet activity_streams", pq_samples)):
        if samples != expected:
            wrong = sum(1 for a in set(expected) | set(samples) if samples.get(a) != expected.get(a))
            problems.append(f"{name}: {sum(samples.values())} export samples, manifest {sum(expected.values())} "
                            f"({wrong} activities differ)")
    if other:
        problems.append(f"strava.activity_streams: {other} samples not from the export")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=730, help="history length the activities are spread over")
    parser.add_argument("--profile", metavar="PATH",
                        help="write a cProfile of the import process to PATH and print its top functions "
                             "(the decoding workers are not profiled; slows the import down)")
    parser.add_argument("--sample", action="store_true",
                        help="sample the import process's stack every 5 ms and print where the time goes")
    args = parser.parse_args()

    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days)
    config = SimulatorConfig(seed=3, start_date=start, end_date=end, activities=args.activities,
                             activity_seconds=3600, read_limit=(1_000_000, 10_000_000),
                             overall_limit=(1_000_000, 10_000_000))
    with tempfile.TemporaryDirectory() as tmp, start_embedded_postgres(Path(tmp) / "pg") as pg, \
            StravaSimulator(config) as sim:
        began = time.perf_counter()
        manifest = sim.write_export(Path(tmp) / "downloads")
        built = time.perf_counter() - began
        summary = manifest.summary()
        formats = ", ".join(f"{n} {f}" for f, n in summary["formats"].items())
        size_mib = manifest.path.stat().st_size / 2**20
        print(f"archive: {summary['activities']} one-hour activities, {summary['files']} files ({formats}), "
              f"{summary['manual']} manual, {size_mib:.1f} MiB; written in {built:.1f} s (not timed)")

        name = f"import_{uuid.uuid4().hex[:8]}"
        database_url = create_database(pg.url, name)
        try:
            env = {**pipeline_env(sim, tmp, start - timedelta(days=1), database_url), **NO_CREDENTIALS}
            sim.clear_request_log()
            pg_pid = _postmaster_pid(Path(tmp) / "pg")
            pg_rss = TreeRss(pg_pid) if pg_pid else None
            if pg_rss is not None:
                pg_rss.__enter__()
            try:
                result, rss = _run_child(env, manifest.path, args.profile, args.sample)
            finally:
                if pg_rss is not None:
                    pg_rss.__exit__()
            requests_made = sim.request_log
            seconds = result["seconds"]
            staged = result["staged"]

            previous = 0.0
            for at, message in result["steps"]:
                print(f"  {at:7.1f} s (+{at - previous:5.1f})  {message}")
                previous = at
            stage_end = next((at for at, m in result["steps"] if "samples" in m and "activities" in m), None)
            ready = result["steps"][0][0] if result["steps"] else 0.0

            problems = verify(manifest, database_url, Path(tmp) / "data" / "parquet")
            samples = sum(a.samples for a in manifest.activities if a.filename and not a.broken)
            cost = api_cost(sim)
            rss_mib = rss.peak_mib
            print(f"import:   {seconds:8.1f} s wall ({staged['activities']} activities, {staged['samples']} samples, "
                  f"{staged['days']} days in {result['runs']} Dagster runs)")
            if stage_end is not None:
                print(f"  set-up (migrations, Dagster instance) {ready:.1f} s, staging {stage_end - ready:.1f} s, "
                      f"Dagster runs (both stores) {seconds - stage_end:.1f} s")
            print(f"  statuses {staged['statuses']}, refused {staged['refused']}")
            used = ", ".join(f"{d} for {n} files" for d, n in staged["decoders"].items())
            print(f"  {samples / seconds:10.0f} samples/s   decoders: {used or 'none'}")
            print(f"  peak RSS {rss_mib:6.0f} MiB (process tree, up to {rss.peak_processes} processes; "
                  f"{rss.describe_peak()})")
            print(f"  import process alone (getrusage): {result['self_maxrss_mib']:.0f} MiB"
                  + (f"; PostgreSQL server (not counted) {pg_rss.peak_mib:.0f} MiB" if pg_rss is not None else ""))
            print(f"  requests to the simulator during the import: {len(requests_made)}"
                  + ("" if not requests_made else f" ({sorted({e.path for e in requests_made})[:5]})"))
            binding = "the daily limit" if cost["requests"] > READS_PER_DAY else f"the {WINDOW_MINUTES}-min limit"
            print(f"the same history through the API: {cost['requests']} requests (athlete 1 + zones 1 + gear "
                  f"{cost['gear']} + listing {cost['listing']} + streams {cost['streams']}): "
                  f"{cost['hours_15min']:.1f} h at {READS_PER_WINDOW} reads per {WINDOW_MINUTES} min; "
                  f"{cost['days_daily']:.2f} days of quota ({cost['days_daily'] * 24:.0f} h, spanning "
                  f"{cost['utc_days']} UTC day{'s' if cost['utc_days'] != 1 else ''}) at {READS_PER_DAY:,} reads "
                  f"per day; binding: {binding}")
            target_ok = seconds <= 60 and rss_mib < 1024
            print(f"target (1,000 activities <= 60 s, peak RSS < 1 GiB): "
                  f"{'met' if target_ok else 'NOT met'}" + ("" if args.activities == 1000 else " (scaled run)"))
            if problems or requests_made:
                for problem in problems:
                    print(f"VERIFY FAILED: {problem}")
                if requests_made:
                    print("VERIFY FAILED: the import made requests")
            else:
                print("verified: every archive activity in PostgreSQL and Parquet, export samples equal the "
                      "manifest's, zero requests")
            if result["sampled"]:
                print("sampled (import process, main thread), seconds by part:")
                for key, secs in result["sampled"]["buckets"]:
                    print(f"  {secs:6.1f} s  {key}")
                print("our functions by cumulative seconds:")
                for key, secs in result["sampled"]["cumulative"]:
                    print(f"  {secs:6.1f} s  {key}")
                print("by own seconds (the innermost Python frame; native calls count to their caller):")
                for key, secs in result["sampled"]["own"]:
                    print(f"  {secs:6.1f} s  {key}")
            if args.profile:
                print(f"cProfile of the import process ({args.profile}), top by cumulative time:")
                pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)
        finally:
            drop_database(pg.url, name)
    print(f"RESULT seconds={seconds:.1f} samples_per_s={samples / seconds:.0f} peak_rss_mib={rss_mib:.0f} "
          f"api_requests={cost['requests']}")
    if problems or requests_made:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
