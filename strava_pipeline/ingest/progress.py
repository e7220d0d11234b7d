"""What ingestion tells whoever watches this process: stream requests planned, and stream requests made.

A headless command runs Dagster in its own process, so its progress display can listen here while the
runs and the backfill's prefetcher work (the rate limiter's observers report the requests themselves).
Nothing listens in a UI run: emitting then costs one empty-list check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["StreamsFetched", "StreamsPlanned", "emit", "planned", "watching"]

_log = logging.getLogger("strava_pipeline.ingest")


@dataclass(frozen=True)
class StreamsPlanned:
    """A batch's streams were planned (by a run, or ahead by the prefetcher): ``keys`` still need a request."""

    keys: tuple[str, ...]
    reused: int
    cached: int


@dataclass(frozen=True)
class StreamsFetched:
    """One activity's streams were requested and landed (``rejected``: the body could not be stored)."""

    key: str
    rejected: bool = False


Event = StreamsPlanned | StreamsFetched
_listeners: list[Callable[[Event], None]] = []
_lock = threading.Lock()


def emit(event: Event) -> None:
    """Tell every listener; a listener's failure is logged, never raised into the fetch that emitted it."""
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:
            _log.debug("progress listener %r failed", listener, exc_info=True)


def planned(keys: Iterable[str], *, reused: int, cached: int) -> None:
    """Emit a :class:`StreamsPlanned` (only built when someone listens)."""
    if _listeners:
        emit(StreamsPlanned(tuple(keys), reused, cached))


@contextmanager
def watching(listener: Callable[[Event], None]) -> Iterator[None]:
    """Call ``listener`` with every event of this process while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
