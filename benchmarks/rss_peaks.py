"""Run a command's Python entry point in this process and say where its resident memory grew.

A sampler thread reads the RSS every ``--interval`` seconds; each time it passes the highest value seen by
``--step`` MiB, the main thread's Python stack is recorded. At exit the growth events are printed in order
(RSS, seconds since start, the innermost frames of our code and the library below them), so the peak of a
backfill can be attributed to the asset, IO-manager call or transform that was running when it happened.
Heap that native code (polars, Arrow, psycopg) allocates is included, which ``tracemalloc`` would miss.

    .venv/bin/python benchmarks/rss_peaks.py [--step 16] -- strava-pipeline backfill --select ...

``peers.py --rss-peaks DIR`` runs our contenders this way (with the environment it gives them).
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
import threading
import time
import traceback

import psutil


def _stack(frame: object, ours: str = "strava_pipeline", depth: int = 6) -> str:
    frames = traceback.extract_stack(frame)  # type: ignore[arg-type]
    mine = [i for i, f in enumerate(frames) if ours in f.filename]
    if not mine:
        chosen = frames[-depth:]
    else:
        last = mine[-1]
        chosen = [*(frames[i] for i in mine[-depth:]), *frames[last + 1 : last + 3]]
    return " < ".join(f"{f.name} ({f.filename.rsplit('/', 2)[-1]}:{f.lineno})" for f in reversed(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=float, default=16, help="MiB of growth between two recorded stacks")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between RSS samples")
    parser.add_argument("--out", help="write the report here instead of stderr")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS... (a console script)")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    program = shutil.which(command[0]) or command[0]

    me = psutil.Process(os.getpid())
    main_id = threading.main_thread().ident
    began = time.perf_counter()
    events: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def sample() -> None:
        peak = 0.0
        while not stop.is_set():
            rss = me.memory_info().rss / 2**20
            if rss >= peak + args.step:
                peak = rss
                frame = sys._current_frames().get(main_id)  # type: ignore[arg-type]
                events.append((rss, time.perf_counter() - began, _stack(frame) if frame else "?"))
            stop.wait(args.interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sys.argv = [program, *command[1:]]
    code = 0
    try:
        runpy.run_path(program, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        stop.set()
        sampler.join()
        lines = [f"{rss:7.0f} MiB {t:7.1f} s  {where}" for rss, t, where in events]
        report = "RSS growth (MiB, seconds, main thread's stack innermost first):\n" + "\n".join(lines) + "\n"
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(report)
        else:
            sys.stderr.write(report)
    sys.exit(code)


if __name__ == "__main__":
    main()
