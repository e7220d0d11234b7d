"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the seconds go, by function.

``peers.py --py-spy DIR`` records our runs with ``py-spy record --format raw --threads --rate R`` (idle
threads are not sampled, so the figures are CPU time); this prints, per thread (``--threads``) or over all
of them, the functions with the most inclusive and self time, samples divided by the rate.

    .venv/bin/python benchmarks/profile_summary.py DIR/ours_mirror_*.txt [--rate 50] [--top 40]
        [--match streams.py] [--threads]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _function(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    return f"{m['name']} ({m['file']})"


def summarise(path: Path, rate: float, top: int, match: str | None, by_thread: bool, max_threads: int = 6
              ) -> None:
    inclusive: dict[str, Counter[str]] = {}
    exclusive: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        frames = m["stack"].split(";")
        thread = "all"
        if frames and frames[0].startswith(("thread (", "process ")):
            head = [f for f in frames if f.startswith(("thread (", "process "))]
            frames = frames[len(head):]
            if by_thread:  # "thread (1234): ThreadPoolExecutor-12_3" -> "ThreadPoolExecutor": one pool, one row
                thread = re.sub(r"^thread \(\d+\): ", "", head[-1])
                thread = re.sub(r"[-_]\d+(_\d+)?$", "", thread)
        count = int(m["count"])
        totals[thread] += count
        functions = [_function(f) for f in frames]
        inc = inclusive.setdefault(thread, Counter())
        for fn in set(functions):
            inc[fn] += count
        if functions:
            exclusive.setdefault(thread, Counter())[functions[-1]] += count
    for thread, total in totals.most_common(max_threads):
        print(f"== {thread}: {total / rate:.1f} s sampled")
        rows = [(fn, n) for fn, n in inclusive[thread].most_common() if match is None or match in fn]
        print(f"  inclusive (top {top}):")
        for fn, n in rows[:top]:
            print(f"    {n / rate:8.1f} s  {100 * n / total:5.1f} %  {fn}")
        rows = [(fn, n) for fn, n in exclusive.get(thread, Counter()).most_common() if match is None or match in fn]
        print(f"  self (top {top}):")
        for fn, n in rows[:top]:
            print(f"    {n / rate:8.1f} s  {100 * n / total:5.1f} %  {fn}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--rate", type=float, default=50, help="py-spy's --rate (samples per second)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", help="only functions whose name or file contains this")
    parser.add_argument("--threads", action="store_true", help="one summary per thread")
    args = parser.parse_args()
    summarise(args.profile, args.rate, args.top, args.match, args.threads)


if __name__ == "__main__":
    main()
