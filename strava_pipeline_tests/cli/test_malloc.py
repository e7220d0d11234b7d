"""The CLI keeps freed stream bodies and payloads from staying resident in glibc's heap."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

#: Frees one large block (so glibc raises its mmap threshold), then lands ~100 MiB of stream-body-sized
#: buffers with one heap block after them (so the heap cannot just shrink), frees the bodies and prints
#: how much of them stayed resident, in MiB.
SCRIPT = """
import os, sys
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
if sys.argv[1] == "tuned":
    from strava_pipeline.cli import tune_malloc
    tune_malloc()
big = bytearray(8 << 20)
del big
before = rss()
bodies = [bytes(400 << 10) for _ in range(250)]
after_them = bytes(200 << 10)
del bodies
print(round(rss() - before))
"""


def _resident_after_free(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's allocator")
def test_freed_stream_bodies_go_back_to_the_system() -> None:
    assert _resident_after_free("untuned") > 20  # glibc's default: a good part of them stays resident
    assert _resident_after_free("tuned") < 10
