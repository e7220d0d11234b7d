"""Client-side throttling from Strava's rate-limit headers.

Strava limits each application per *bucket* (``overall``: every request; ``read``: every non-upload request)
and per *window* (15 minutes aligned to :00/:15/:30/:45 UTC, and the UTC day).  Each response carries
``X-RateLimit-Limit``/``X-RateLimit-Usage`` (overall) and ``X-ReadRateLimit-Limit``/``X-ReadRateLimit-Usage``
(read) as ``"<15min>,<daily>"``.  No ``Retry-After`` is sent with a 429, some responses carry no such
headers at all, and one real response carried ``","``.  So:

* limits and usage are learned from headers (never hard-coded) and the last known values are kept when a
  response has none or garbage;
* every :meth:`RateLimiter.acquire` counts the request locally, so the predicted usage of a window is
  ``max(usage last reported in this window, requests counted in this window)`` — concretely a reported usage
  raises the local counter, and each acquire increments it;
* with ``state_path`` that counter lives in a small JSON file under a file lock, so concurrent runs of the
  pipeline share one budget (each acquire increments the shared count);
* before a request that would take any window above ``limit - safety_margin`` we sleep until that window
  resets (or raise :class:`StravaRateLimitError` if the wait exceeds ``max_wait_seconds``);
* a 429 marks the window exhausted so the next :meth:`acquire` waits for its reset;
* every wait ends as soon as the process-wide :data:`SHUTDOWN` event is set (the CLI sets it on SIGINT/SIGTERM)
  and then raises :class:`StravaInterrupted`, as does any later :meth:`acquire`: a wait can last until the next
  quarter hour or day, and an interrupted command must not outlive its threads' waits nor start new requests;
* a state file that cannot be read as a valid state (truncated, damaged by a crash, not UTF-8, wrong
  types, missing parts) is never taken as "nothing used": that would forget what other processes spent.
  The limiter keeps what it can still trust (readable parts of the file, its own last view of the budget),
  marks the current 15-minute windows used up, logs one warning naming the file and rewrites it with that
  state, so every process waits for the next quarter hour: at most one window is lost, never Strava's
  budget.  The day is not assumed used up (that would cost a day); the next reported usage corrects it.
  An empty file is simply new, and a valid state for another ``window_seconds`` is ignored.

Window length is configurable (``window_seconds``; the day is ``96 * window_seconds``) so tests can compress
time consistently with the simulator; windows are aligned to multiples of their length since the epoch,
which for 900 s is exactly Strava's quarter hours and UTC midnight.

State file format (JSON)::

    {"format": "strava_pipeline.ratelimit/1", "window_seconds": 900,
     "limits": {"overall": [200, 2000], "read": [100, 1000]},          # null where never seen
     "windows": {"overall": {"15min": {"index": 1900000, "count": 12, "reported": 10, "exhausted": false},
                             "daily": {...}},
                 "read": {...}},
     "updated_at": 1700000000.0}

``index`` is ``floor(epoch / window_length)``; a stored window whose index is not the current one is reset.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import StravaRateLimitError

__all__ = [
    "BUCKETS",
    "SHUTDOWN",
    "WINDOWS",
    "LimiterEvent",
    "RateLimitSnapshot",
    "RateLimiter",
    "StravaInterrupted",
    "WindowUsage",
    "add_observer",
    "parse_rate_headers",
    "parse_rate_pair",
]

STATE_FORMAT = "strava_pipeline.ratelimit/1"
BUCKETS: tuple[str, ...] = ("overall", "read")
WINDOWS: tuple[str, ...] = ("15min", "daily")
WINDOWS_PER_DAY = 96
_HEADER_NAMES: dict[str, tuple[str, str]] = {
    "overall": ("x-ratelimit-limit", "x-ratelimit-usage"),
    "read": ("x-readratelimit-limit", "x-readratelimit-usage"),
}

Pair = tuple[int | None, int | None]

#: Set once the process is shutting down (SIGINT/SIGTERM): every limiter wait ends and raises.
SHUTDOWN = threading.Event()

#: Longest single wait on :data:`SHUTDOWN`: the deadline is re-checked against the (wall) clock in between,
#: since ``Event.wait`` measures monotonic time and a suspended machine or a clock step would skew it.
_WAIT_SLICE_SECONDS = 30.0


class StravaInterrupted(KeyboardInterrupt):
    """The process is shutting down: a request was refused, or its wait for a rate-limit window cut short.

    A ``KeyboardInterrupt`` (not an ``Exception``) so that no ``except Exception`` retries or swallows it, and
    Dagster treats it as an interruption rather than a step failure.
    """

    def __init__(self, message: str = "interrupted while waiting for the Strava rate limit") -> None:
        super().__init__(message)


#: How often a limiter checks that the files it holds open are still the ones at their paths.
_REOPEN_CHECK_SECONDS = 1.0


class _SharedStateFile:
    """The state file and its lock file, held open between requests.

    Opening, locking and closing both files for every read-modify-write took eight system calls, twice per
    request, all under the limiter's lock; each returns to Python only once it has the GIL back, which a busy
    main thread holds for up to the switch interval (5 ms), so the fetch threads queued behind one another
    (``benchmarks/fetch_contention.py``). Held open, a cycle is four: lock, read, write, unlock.

    Still the same files for every process: at most once a second (and in a forked child) both paths are
    checked against the open descriptors, and a file removed or replaced is opened anew, so a limiter never
    keeps counting in a file nobody else reads. The lock is the same ``flock`` on the same ``.lock`` file as
    before, and as the ``filelock`` package of older versions, so their processes still exclude this one;
    blocking, where filelock polled every 50 ms: the lock is held for one read-modify-write of a small file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._fds: list[int] = []  # [lock, state] while open; shared with the finaliser, which closes them
        self._pid = 0
        self._checked_at = -math.inf
        weakref.finalize(self, _close_all, self._fds)

    @contextlib.contextmanager
    def locked(self) -> Iterator[tuple[int, bytes]]:
        """Hold the lock; yield the state file's descriptor and its whole content."""
        lock_fd, state_fd = self._open()
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            yield state_fd, _read_all(state_fd)
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _open(self) -> tuple[int, int]:
        now = time.monotonic()
        if self._fds and self._pid == os.getpid() and now - self._checked_at < _REOPEN_CHECK_SECONDS:
            return self._fds[0], self._fds[1]
        if self._fds and self._pid == os.getpid() and self._still_at_paths():
            self._checked_at = now
            return self._fds[0], self._fds[1]
        _close_all(self._fds)  # in a forked child these are the parent's: closing them releases nothing of it
        self._fds.append(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600))
        self._fds.append(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._pid, self._checked_at = os.getpid(), now
        return self._fds[0], self._fds[1]

    def _still_at_paths(self) -> bool:
        try:
            return all(_same_file(fd, path) for fd, path in zip(self._fds, (self.lock_path, self.path), strict=True))
        except OSError:
            return False


def _same_file(fd: int, path: Path) -> bool:
    held, named = os.fstat(fd), os.stat(path)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _close_all(fds: list[int]) -> None:
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


def parse_rate_pair(value: str | None) -> Pair:
    """Parse ``"15min,daily"`` into two ints; any part that is missing or not a non-negative int is None.

    ``"200,2000"`` → ``(200, 2000)``; ``","`` → ``(None, None)``; ``None`` → ``(None, None)``; ``"70"`` →
    ``(70, None)``; ``"abc,5"`` → ``(None, 5)``.
    """
    if value is None:
        return (None, None)
    parts = [p.strip() for p in str(value).split(",")]
    out: list[int | None] = []
    for i in range(2):
        token = parts[i] if i < len(parts) else ""
        out.append(int(token) if token.isascii() and token.isdigit() else None)
    return (out[0], out[1])


def parse_rate_headers(headers: Mapping[str, str]) -> dict[str, dict[str, Pair]]:
    """Extract ``{"overall"|"read": {"limit": pair, "usage": pair}}`` from response headers,
    case-insensitively."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    result: dict[str, dict[str, Pair]] = {}
    for bucket, (limit_name, usage_name) in _HEADER_NAMES.items():
        result[bucket] = {
            "limit": parse_rate_pair(lower.get(limit_name)),
            "usage": parse_rate_pair(lower.get(usage_name)),
        }
    return result


@dataclass(frozen=True)
class WindowUsage:
    """Usage of one bucket in one window as the limiter predicts it."""

    bucket: str
    window: str
    limit: int | None
    usage: int
    reported_usage: int | None
    exhausted: bool
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        """Requests left before the hard limit (ignores the safety margin), None if the limit is unknown."""
        return None if self.limit is None else max(0, self.limit - self.usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "window": self.window,
            "limit": self.limit,
            "usage": self.usage,
            "reported_usage": self.reported_usage,
            "exhausted": self.exhausted,
            "resets_at": self.resets_at.isoformat(),
        }


@dataclass(frozen=True)
class RateLimitSnapshot:
    """Limits and predicted usage for each bucket (overall, read) × window (15min, daily)."""

    taken_at: datetime
    window_seconds: float
    windows: tuple[WindowUsage, ...]

    def get(self, bucket: str, window: str) -> WindowUsage:
        for w in self.windows:
            if w.bucket == bucket and w.window == window:
                return w
        raise KeyError((bucket, window))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what :meth:`TokenStore.update_usage` stores)."""
        return {
            "taken_at": self.taken_at.isoformat(),
            "window_seconds": self.window_seconds,
            "windows": [w.to_dict() for w in self.windows],
        }

    def __str__(self) -> str:
        parts = [
            f"{w.bucket} {w.window} {w.usage}/{w.limit if w.limit is not None else '?'}"
            + (" (exhausted)" if w.exhausted else "")
            for w in self.windows
        ]
        return ", ".join(parts)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


_READ_SIZE = 65536


def _read_all(fd: int) -> bytes:
    """The whole content of an open file, from the start: one ``pread`` for a state (about 700 bytes)."""
    chunks, offset = [], 0
    while chunk := os.pread(fd, _READ_SIZE, offset):
        chunks.append(chunk)
        offset += len(chunk)
        if len(chunk) < _READ_SIZE:
            break
    return b"".join(chunks)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _limits_problem(pair: Any) -> str | None:
    if not isinstance(pair, list) or len(pair) != 2 or not all(v is None or _is_count(v) for v in pair):
        return f"is {_short(pair)}, expected [15min, daily] (ints or null)"
    return None


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"is {_short(entry)}, expected an object"
    checks = {
        "index": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "count": _is_count,
        "reported": lambda v: v is None or _is_count(v),
        "exhausted": lambda v: isinstance(v, bool),
    }
    for key, ok in checks.items():
        if key not in entry:
            return f"has no {key!r}"
        if not ok(entry[key]):
            return f"has {key!r} = {_short(entry[key])}"
    return None


_MISSING = object()


def _short(value: Any) -> str:
    text = "missing" if value is _MISSING else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, or ``_MISSING`` where a level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _state_problem(state: Any) -> str | None:
    """What keeps a parsed state file from being a valid state (see the module docstring), or None."""
    if not isinstance(state, dict):
        return f"expected a JSON object, found {_short(state)}"
    if state.get("format") != STATE_FORMAT:
        return f"'format' is {_short(_get(state, 'format'))}, expected {STATE_FORMAT!r}"
    ws = _get(state, "window_seconds")
    if not (isinstance(ws, int | float) and not isinstance(ws, bool) and math.isfinite(ws) and ws > 0):
        return f"'window_seconds' is {_short(ws)}"
    for bucket in BUCKETS:
        if problem := _limits_problem(_get(state, "limits", bucket)):
            return f"'limits.{bucket}' {problem}"
        for window in WINDOWS:
            if problem := _entry_problem(_get(state, "windows", bucket, window)):
                return f"'windows.{bucket}.{window}' {problem}"
    return None


@dataclass(frozen=True)
class LimiterEvent:
    """What a limiter just did, for the observers of this process (a command's progress display).

    ``kind``: ``"request"`` (one request let through and counted: exactly one per attempt that may reach
    Strava), ``"response"`` (an answer observed; ``status`` 0 when none came), or ``"wait"`` (a wait for a
    window starts; ``resume_at`` in epoch seconds, ``bucket``/``window`` the one that blocks). ``snapshot``:
    the predicted usage and limits right after it (None for a wait).
    """

    kind: str
    snapshot: RateLimitSnapshot | None = None
    status: int | None = None
    resume_at: float | None = None
    bucket: str | None = None
    window: str | None = None


_OBSERVERS: list[Callable[[LimiterEvent], None]] = []
_OBSERVERS_LOCK = threading.Lock()


def add_observer(callback: Callable[[LimiterEvent], None]) -> Callable[[], None]:
    """Call ``callback`` with every :class:`LimiterEvent` of every limiter in this process; returns the undo.

    Every request of the process passes through a limiter, so this is the one place that sees them all
    (runs, the backfill's prefetcher, sensors), as they happen. Callbacks run on the requesting thread,
    outside the limiter's locks; they must be quick, and an exception in one is logged, never raised.
    """
    with _OBSERVERS_LOCK:
        _OBSERVERS.append(callback)

    def remove() -> None:
        with _OBSERVERS_LOCK:
            if callback in _OBSERVERS:
                _OBSERVERS.remove(callback)

    return remove


def _notify(event: LimiterEvent, log: logging.Logger) -> None:
    for callback in list(_OBSERVERS):
        try:
            callback(event)
        except Exception:  # an observer's bug must never fail or slow a request
            log.debug("rate-limit observer %r failed", callback, exc_info=True)


class RateLimiter:
    """Throttle requests to stay inside Strava's limits; see the module docstring for the model.

    ``clock``/``sleep`` are injectable so tests never really sleep.  ``max_wait_seconds``: if a required
    wait is longer, raise :class:`StravaRateLimitError` naming the reset time instead (a cron run should
    fail fast rather than sleep until midnight); None means always wait.  ``reset_slack_seconds`` is added
    to every wait so that a small clock difference with Strava does not make us resume a moment too early
    (default: 2 s, or 2 % of a compressed window). ``shutdown`` (default: the process-wide :data:`SHUTDOWN`)
    ends every wait and refuses further requests once set, raising :class:`StravaInterrupted`; with the default
    ``sleep`` waits are ``shutdown.wait(...)``, an injected ``sleep`` is called as given (shutdown is checked
    around it).
    """

    def __init__(
        self,
        *,
        state_path: Path | str | None = None,
        safety_margin: int = 2,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
        max_wait_seconds: float | None = None,
        window_seconds: float = 900,
        reset_slack_seconds: float | None = None,
        shutdown: threading.Event | None = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.safety_margin = max(0, int(safety_margin))
        self.window_seconds = float(window_seconds)
        self.max_wait_seconds = max_wait_seconds
        self.reset_slack_seconds = (
            min(2.0, self.window_seconds * 0.02) if reset_slack_seconds is None else max(0.0, reset_slack_seconds)
        )
        self._clock = clock
        self._sleep = sleep
        self._shutdown = SHUTDOWN if shutdown is None else shutdown
        self._log = logger or logging.getLogger("strava_pipeline.strava")
        self._lock = threading.RLock()
        self._tls = threading.local()
        self.state_path = Path(state_path) if state_path is not None else None
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _SharedStateFile(self.state_path) if self.state_path is not None else None
        self._memory_state: dict[str, Any] = self._empty_state()
        self._unreadable_seen: bytes | None = None  # the damaged content last warned about
        self._announce_lock = threading.Lock()
        self._announced_resume: float | None = None  # the reset time the last WARNING announced
        self.wait_count = 0  # number of waits (for tests and diagnostics)
        self.waited_seconds = 0.0

    # -- window math -----------------------------------------------------------------------------------------

    def window_length(self, window: str) -> float:
        """Length of ``"15min"`` or ``"daily"`` in seconds (daily = 96 windows)."""
        return self.window_seconds if window == "15min" else self.window_seconds * WINDOWS_PER_DAY

    def window_index(self, window: str, now: float) -> int:
        """Which window ``now`` falls in, counted from the epoch."""
        return math.floor(now / self.window_length(window))

    def window_reset(self, window: str, now: float) -> float:
        """Epoch seconds at which the window containing ``now`` ends."""
        return (self.window_index(window, now) + 1) * self.window_length(window)

    # -- state -----------------------------------------------------------------------------------------------

    def _empty_state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "window_seconds": self.window_seconds,
            "limits": {b: [None, None] for b in BUCKETS},
            "windows": {
                b: {w: {"index": None, "count": 0, "reported": None, "exhausted": False} for w in WINDOWS}
                for b in BUCKETS
            },
        }

    def _parse_file_state(self, raw: bytes, now: float) -> dict[str, Any]:
        if not raw:
            return self._empty_state()  # just created
        try:
            state = json.loads(raw)
        except UnicodeDecodeError as exc:
            state, problem = None, f"not UTF-8 ({exc})"
        except ValueError as exc:
            state, problem = None, f"not valid JSON ({exc})"
        except RecursionError:
            state, problem = None, "not valid JSON (nested too deeply)"
        else:
            problem = _state_problem(state)
        if problem is None:
            self._unreadable_seen = None
            if float(state["window_seconds"]) != self.window_seconds:
                return self._empty_state()  # written for a compressed clock: its counts mean nothing here
            return state
        return self._recover(state, problem, raw, now)

    def _recover(self, found: Any, problem: str, raw: bytes, now: float) -> dict[str, Any]:
        """The safest state consistent with what we know when the file is unreadable (see the module docstring).

        Usage is the larger of this limiter's last view and whatever parts of the file are still readable;
        the current 15-minute windows are marked exhausted because other processes may have spent them since.
        """
        state = copy.deepcopy(self._memory_state)
        self._roll(state, now)
        ours = isinstance(found, dict) and found.get("format") == STATE_FORMAT
        ours = ours and found.get("window_seconds") == self.window_seconds
        for bucket in BUCKETS:
            pair = _get(found, "limits", bucket) if ours else _MISSING
            if _limits_problem(pair) is None:
                known = state["limits"][bucket]
                state["limits"][bucket] = [f if f is not None else k for f, k in zip(pair, known, strict=True)]
            for window in WINDOWS:
                entry = state["windows"][bucket][window]
                saved = _get(found, "windows", bucket, window) if ours else _MISSING
                if _entry_problem(saved) is None and saved["index"] == entry["index"]:
                    entry["count"] = max(entry["count"], saved["count"])
                    if saved["reported"] is not None:
                        entry["reported"] = max(entry["reported"] or 0, saved["reported"])
                    entry["exhausted"] = entry["exhausted"] or saved["exhausted"]
            state["windows"][bucket]["15min"]["exhausted"] = True
        # One warning per damaged content: the rewrite makes the next read valid, a new corruption is news.
        level = logging.DEBUG if raw == self._unreadable_seen else logging.WARNING
        self._unreadable_seen = raw
        self._log.log(
            level,
            "rate-limit state file %s is unreadable: %s; assuming the current 15-minute windows are used up "
            "(until %s UTC) instead of forgetting the shared budget, and rewriting it",
            self.state_path,
            problem,
            f"{_utc(self.window_reset('15min', now)):%Y-%m-%d %H:%M:%S}",
        )
        return state

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        """Yield the current state (rolled to the current windows) under thread + file lock; save it on
        exit.

        The file is rewritten in place, not replaced: every reader holds the same lock, so nobody sees a
        half-written state, and a rename over an existing file makes ext4 flush it first (measured: 1.6 ms
        per request on a quiet disk, tens of ms while a backfill writes Parquet and PostgreSQL, with every
        request of every thread queueing behind it). The JSON is padded with spaces to the old length
        (still valid JSON), so one ``pwrite`` replaces it and the file never holds a stale tail.
        """
        with self._lock:
            if self.state_path is None:
                self._roll(self._memory_state, self._clock())
                yield self._memory_state
                return
            with self._file.locked() as (fd, raw):  # type: ignore[union-attr]
                now = self._clock()
                state = self._parse_file_state(raw, now)
                self._roll(state, now)
                yield state
                state["updated_at"] = self._clock()
                data = json.dumps(state, sort_keys=True).encode("utf-8")
                os.pwrite(fd, data.ljust(len(raw)), 0)
                self._memory_state = state

    def _roll(self, state: dict[str, Any], now: float) -> None:
        for bucket in BUCKETS:
            for window in WINDOWS:
                entry = state["windows"][bucket][window]
                idx = self.window_index(window, now)
                if entry.get("index") != idx:
                    entry.update(index=idx, count=0, reported=None, exhausted=False)

    # -- public API ------------------------------------------------------------------------------------------

    def acquire(self, buckets: Sequence[str] = BUCKETS) -> None:
        """Count one request against ``buckets``, first waiting for a reset if it would go over the budget.

        A read (every request this client makes) counts against both ``overall`` and ``read``. Raises
        :class:`StravaInterrupted` once the process is shutting down (see the module docstring).
        """
        while True:
            if self._shutdown.is_set():
                raise StravaInterrupted("interrupted: no more Strava requests")
            with self._state() as state:
                now = self._clock()
                blockers = self._blockers(state, buckets, now)
                if not blockers:
                    for bucket in buckets:
                        for window in WINDOWS:
                            state["windows"][bucket][window]["count"] += 1
                    self._tls.acquired = (self.window_index("15min", now), self.window_index("daily", now))
                    granted = self._snapshot_from(state, now) if _OBSERVERS else None
            if not blockers:
                if granted is not None:
                    _notify(LimiterEvent("request", snapshot=granted), self._log)
                return
            # Wait for the blocker that resets last (a daily block implies waiting past the 15-min reset too).
            bucket, window, usage, limit, reset_at = max(blockers, key=lambda b: b[4])
            resume_at = reset_at + self.reset_slack_seconds
            wait = max(0.0, resume_at - now)
            limit_text = "?" if limit is None else str(limit)
            if self.max_wait_seconds is not None and wait > self.max_wait_seconds:
                raise StravaRateLimitError(
                    f"Strava {bucket} rate limit for the {window} window is used up ({usage}/{limit_text}); "
                    f"the budget resets at {_utc(reset_at):%Y-%m-%d %H:%M:%S} UTC, in {wait:.0f}s, "
                    f"which is longer than the allowed wait of {self.max_wait_seconds:.0f}s",
                    resets_at=_utc(reset_at),
                )
            self._log.log(
                self._wait_log_level(resume_at),
                "Strava rate limit: %s %s window at %s/%s (margin %d); waiting %.1fs, resuming at %s UTC",
                bucket,
                window,
                usage,
                limit_text,
                self.safety_margin,
                wait,
                f"{_utc(resume_at):%Y-%m-%d %H:%M:%S}",
            )
            self.wait_count += 1
            self.waited_seconds += wait
            if _OBSERVERS:
                _notify(LimiterEvent("wait", resume_at=resume_at, bucket=bucket, window=window), self._log)
            self._wait(wait, resume_at)

    def _wait(self, wait: float, resume_at: float) -> None:
        """Sleep ``wait`` seconds (until ``resume_at`` on the clock), ending early if shutdown is set."""
        if self._sleep is not time.sleep:  # an injected sleep (tests' fake clocks): keep that seam as it is
            self._sleep(wait)
        else:
            remaining = wait
            while remaining > 0 and not self._shutdown.wait(min(remaining, _WAIT_SLICE_SECONDS)):
                remaining = resume_at - self._clock()
        if self._shutdown.is_set():
            raise StravaInterrupted()

    def _wait_log_level(self, resume_at: float) -> int:
        """WARNING for the first request to wait for a given reset, DEBUG for the others.

        A backfill fetches with several threads, and all of them hit the same window at once: one line
        saying "waiting until 12:15" tells the user everything, eight identical ones bury it.
        """
        with self._announce_lock:
            first = self._announced_resume != resume_at
            self._announced_resume = resume_at
        return logging.WARNING if first else logging.DEBUG

    def _blockers(
        self, state: Mapping[str, Any], buckets: Sequence[str], now: float
    ) -> list[tuple[str, str, int, int | None, float]]:
        blockers = []
        for bucket in buckets:
            limits = state["limits"][bucket]
            for wi, window in enumerate(WINDOWS):
                entry = state["windows"][bucket][window]
                limit = limits[wi]
                usage = max(int(entry["count"]), int(entry["reported"] or 0))
                over = False
                if entry["exhausted"]:
                    over = True
                elif limit is not None:
                    # Never let usage exceed limit - margin, but always allow at least one request per window.
                    cap = max(1, limit - self.safety_margin)
                    over = usage + 1 > cap
                if over:
                    blockers.append((bucket, window, usage, limit, self.window_reset(window, now)))
        return blockers

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        """Learn limits/usage from a response; a 429 marks the window exhausted so acquire() waits for its
        reset.

        A usage value is only applied if the request was acquired in the window that is still current: a reply
        arriving just after a reset reports the previous window's usage and must not block the new one.
        """
        parsed = parse_rate_headers(headers)
        acquired = getattr(self._tls, "acquired", None)
        self._tls.acquired = None
        with self._state() as state:
            now = self._clock()
            current = (self.window_index("15min", now), self.window_index("daily", now))
            same = [True, True] if acquired is None else [acquired[0] == current[0], acquired[1] == current[1]]
            for bucket in BUCKETS:
                limit_pair = parsed[bucket]["limit"]
                usage_pair = parsed[bucket]["usage"]
                for wi, window in enumerate(WINDOWS):
                    if limit_pair[wi] is not None:
                        state["limits"][bucket][wi] = limit_pair[wi]
                    usage = usage_pair[wi]
                    if usage is not None and same[wi]:
                        entry = state["windows"][bucket][window]
                        entry["reported"] = max(int(entry["reported"] or 0), usage)
                        entry["count"] = max(int(entry["count"]), usage)
            if status == 429:
                self._mark_exhausted(state, parsed, same)
            answered = self._snapshot_from(state, now) if _OBSERVERS else None
        if answered is not None:
            _notify(LimiterEvent("response", snapshot=answered, status=status), self._log)

    def _mark_exhausted(self, state: dict[str, Any], parsed: Mapping[str, Any], same: list[bool]) -> None:
        marked = False
        for bucket in BUCKETS:
            for wi, window in enumerate(WINDOWS):
                limit = state["limits"][bucket][wi]
                usage = parsed[bucket]["usage"][wi]
                if same[wi] and limit is not None and usage is not None and usage >= limit:
                    state["windows"][bucket][window]["exhausted"] = True
                    marked = True
        if not marked and same[0]:
            # No usable headers: assume the short window (the common case); if the day is really used up the
            # retry after the reset gets another 429 and the caller's bounded retries end it.
            for bucket in BUCKETS:
                state["windows"][bucket]["15min"]["exhausted"] = True
        self._log.warning("Strava answered 429 Too Many Requests; %s", self._describe(state))

    def _describe(self, state: Mapping[str, Any]) -> str:
        return str(self._snapshot_from(state, self._clock()))

    def _snapshot_from(self, state: Mapping[str, Any], now: float) -> RateLimitSnapshot:
        items = []
        for bucket in BUCKETS:
            for wi, window in enumerate(WINDOWS):
                entry = state["windows"][bucket][window]
                items.append(
                    WindowUsage(
                        bucket=bucket,
                        window=window,
                        limit=state["limits"][bucket][wi],
                        usage=max(int(entry["count"]), int(entry["reported"] or 0)),
                        reported_usage=entry["reported"],
                        exhausted=bool(entry["exhausted"]),
                        resets_at=_utc(self.window_reset(window, now)),
                    )
                )
        return RateLimitSnapshot(taken_at=_utc(now), window_seconds=self.window_seconds, windows=tuple(items))

    def snapshot(self) -> RateLimitSnapshot:
        """Current limits and predicted usage per bucket × window (shared state included)."""
        with self._state() as state:
            return self._snapshot_from(state, self._clock())
