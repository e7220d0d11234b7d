"""Rate limiter: header parsing (incl. real recorded header sets), window math, waiting before exhaustion,
429 handling, shared state across processes.  Clock and sleep are injected: nothing really sleeps."""

from __future__ import annotations

import json
import logging
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from strava_pipeline.strava import RateLimiter, StravaRateLimitError, parse_rate_headers, parse_rate_pair
from strava_pipeline_tests.recordings import RECORDINGS

from .conftest import FakeClock

READ_HEADERS = {
    "X-Ratelimit-Limit": "200,2000",
    "X-Ratelimit-Usage": "10,100",
    "X-Readratelimit-Limit": "100,1000",
}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def headers(read_usage: str, read_limit: str = "100,1000", overall: str = "200,2000") -> dict[str, str]:
    return {
        "X-Ratelimit-Limit": overall,
        "X-Ratelimit-Usage": read_usage,
        "X-Readratelimit-Limit": read_limit,
        "X-Readratelimit-Usage": read_usage,
    }


def recorded_response_headers(relative: str) -> list[dict[str, str]]:
    path = RECORDINGS / relative
    if not path.exists():
        pytest.skip(f"recording {relative} not available")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for item in doc["http_interactions"]:
        raw = item["response"]["headers"]
        out.append({k: (v[0] if isinstance(v, list) else v) for k, v in raw.items()})
    return out


# -- parsing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("200,2000", (200, 2000)),
        (" 66 , 209 ", (66, 209)),
        (",", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
        ("70", (70, None)),
        ("abc,5", (None, 5)),
        ("-1,5", (None, 5)),
        ("1,2,3", (1, 2)),
        ("²,3", (None, 3)),
    ],
)
def test_parse_rate_pair(value: str | None, expected: tuple[int | None, int | None]) -> None:
    assert parse_rate_pair(value) == expected


@given(st.text())
def test_parse_rate_pair_never_raises(value: str) -> None:
    first, second = parse_rate_pair(value)
    assert first is None or (isinstance(first, int) and first >= 0)
    assert second is None or (isinstance(second, int) and second >= 0)


def test_headers_matched_case_insensitively() -> None:
    parsed = parse_rate_headers(
        {"x-ratelimit-limit": "200,2000", "X-RATELIMIT-USAGE": "3,4", "X-ReadRateLimit-Limit": "100,1000"}
    )
    assert parsed["overall"] == {"limit": (200, 2000), "usage": (3, 4)}
    assert parsed["read"] == {"limit": (100, 1000), "usage": (None, None)}


def test_real_recorded_header_sets() -> None:
    # A real Oct 2025 POST: overall headers fine, X-Readratelimit-Usage is the garbled ",".
    (created,) = recorded_response_headers("strava-ruby-client/client/create_activity.yml")
    parsed = parse_rate_headers(created)
    assert parsed["overall"] == {"limit": (200, 2000), "usage": (66, 209)}
    assert parsed["read"] == {"limit": (100, 1000), "usage": (None, None)}
    # A real GET /athlete.
    athlete = recorded_response_headers("strava-ruby-client/client/athlete.yml")[0]
    assert parse_rate_headers(athlete)["read"] == {"limit": (100, 1000), "usage": (67, 210)}
    # A real streams response with no rate-limit headers at all.
    streams = recorded_response_headers("strava-ruby-client/client/activity_streams.yml")[0]
    assert all(v == {"limit": (None, None), "usage": (None, None)} for v in parse_rate_headers(streams).values())


def test_garbled_and_missing_headers_keep_last_known_values(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe(headers("50,500"), 200)
    for h in ({}, {"X-Readratelimit-Usage": ",", "X-Readratelimit-Limit": ","}, {"x-ratelimit-usage": "x,y"}):
        limiter.acquire()
        limiter.observe(h, 200)
    snap = limiter.snapshot()
    read15 = snap.get("read", "15min")
    assert read15.limit == 100 and snap.get("read", "daily").limit == 1000
    assert read15.reported_usage == 50
    assert read15.usage == 53  # 50 reported (incl. the first request) + 3 counted locally since
    assert snap.get("overall", "daily").usage == 503


# -- window math ---------------------------------------------------------------------------------------------


def test_quarter_hour_windows_align_to_utc() -> None:
    limiter = RateLimiter()
    t = epoch("2026-03-01T12:14:59.999")
    assert limiter.window_index("15min", t) + 1 == limiter.window_index("15min", epoch("2026-03-01T12:15:00"))
    assert limiter.window_reset("15min", t) == epoch("2026-03-01T12:15:00")
    assert limiter.window_reset("15min", epoch("2026-03-01T12:15:00")) == epoch("2026-03-01T12:30:00")
    assert limiter.window_reset("15min", epoch("2026-03-01T12:59:00")) == epoch("2026-03-01T13:00:00")


def test_daily_window_resets_at_utc_midnight() -> None:
    limiter = RateLimiter()
    assert limiter.window_reset("daily", epoch("2026-03-01T23:59:59")) == epoch("2026-03-02T00:00:00")
    assert limiter.window_reset("daily", epoch("2026-03-02T00:00:00")) == epoch("2026-03-03T00:00:00")
    assert limiter.window_index("daily", epoch("2026-03-01T00:00:00")) == limiter.window_index(
        "daily", epoch("2026-03-01T23:59:59.9")
    )


def test_window_seconds_compression() -> None:
    limiter = RateLimiter(window_seconds=2)
    assert limiter.window_length("15min") == 2
    assert limiter.window_length("daily") == 192
    assert limiter.window_reset("15min", 1001.5) == 1002
    assert limiter.window_reset("daily", 1001.5) == 1152  # 6 * 192
    with pytest.raises(ValueError):
        RateLimiter(window_seconds=0)


def test_counts_reset_when_the_window_rolls(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe(headers("40,400"), 200)
    fake_clock.advance(900)
    snap = limiter.snapshot()
    assert snap.get("read", "15min").usage == 0
    assert snap.get("read", "daily").usage == 400


# -- waiting -------------------------------------------------------------------------------------------------


def test_waits_before_exhaustion_and_logs_one_line(fake_clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    fake_clock.now = epoch("2026-03-01T12:10:00")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep, safety_margin=2)
    limiter.acquire()
    limiter.observe(headers("97,500"), 200)
    limiter.acquire()  # 97 -> 98 = limit - margin: still allowed
    assert fake_clock.sleeps == []
    with caplog.at_level(logging.WARNING, logger="strava_pipeline.strava"):
        limiter.acquire()  # 98 -> 99 would pass the margin: wait for 12:15
    assert len(fake_clock.sleeps) == 1
    assert fake_clock.sleeps[0] == pytest.approx(300 + limiter.reset_slack_seconds)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "read 15min" in message and "98/100" in message and "12:15:02" in message and "waiting" in message
    # The request after the wait is counted in the new window.
    assert limiter.snapshot().get("read", "15min").usage == 1


def test_requests_waiting_for_the_same_reset_are_announced_once(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake_clock.now = epoch("2026-03-01T12:10:00")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep, safety_margin=2)
    limiter.acquire()
    limiter.observe(headers("98,500"), 200)
    waiting: list[float] = []

    def sleep(seconds: float) -> None:
        if not waiting:  # a second request arrives while the first waits for the same reset
            waiting.append(seconds)
            limiter.acquire()
        fake_clock.sleep(seconds)

    limiter._sleep = sleep
    with caplog.at_level(logging.DEBUG, logger="strava_pipeline.strava"):
        limiter.acquire()
        waits = [r for r in caplog.records if "waiting" in r.getMessage()]
        assert [r.levelno for r in waits] == [logging.WARNING, logging.DEBUG]
        # A later window's wait is news again.
        limiter.observe(headers("98,500"), 200)
        limiter.acquire()
    waits = [r for r in caplog.records if "waiting" in r.getMessage()]
    assert [r.levelno for r in waits] == [logging.WARNING, logging.DEBUG, logging.WARNING]


def test_zero_margin_allows_exactly_the_limit(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep, safety_margin=0)
    limiter.acquire()
    limiter.observe(headers("1,1", read_limit="5,1000"), 200)
    for _ in range(4):
        limiter.acquire()
    assert fake_clock.sleeps == []
    limiter.acquire()
    assert len(fake_clock.sleeps) == 1


def test_tiny_limit_still_allows_one_request_per_window(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep, safety_margin=5)
    limiter.acquire()
    limiter.observe(headers("1,1", read_limit="2,1000"), 200)
    limiter.acquire()  # a new window after one wait
    assert len(fake_clock.sleeps) == 1


def test_daily_exhaustion_waits_until_midnight(fake_clock: FakeClock) -> None:
    fake_clock.now = epoch("2026-03-01T20:00:00")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe(headers("5,998"), 200)
    limiter.acquire()
    assert fake_clock.now >= epoch("2026-03-02T00:00:00")
    assert fake_clock.sleeps[0] == pytest.approx(4 * 3600 + limiter.reset_slack_seconds)


def test_max_wait_seconds_fails_fast_naming_the_reset(fake_clock: FakeClock) -> None:
    fake_clock.now = epoch("2026-03-01T20:00:00")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep, max_wait_seconds=900)
    limiter.acquire()
    limiter.observe(headers("5,999"), 200)
    with pytest.raises(StravaRateLimitError) as info:
        limiter.acquire()
    assert info.value.resets_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert "2026-03-02 00:00:00 UTC" in str(info.value) and "daily" in str(info.value)
    assert fake_clock.sleeps == []


def test_missing_headers_are_counted_locally(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep, safety_margin=0)
    limiter.acquire()
    limiter.observe(headers("1,1", read_limit="10,1000"), 200)
    for _ in range(9):
        limiter.acquire()
        limiter.observe({}, 200)  # e.g. streams responses carry no rate-limit headers
    assert fake_clock.sleeps == []
    limiter.acquire()
    assert len(fake_clock.sleeps) == 1


def test_429_without_headers_waits_for_the_quarter_hour(fake_clock: FakeClock) -> None:
    fake_clock.now = epoch("2026-03-01T12:01:00")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe({"Content-Type": "application/json"}, 429)
    limiter.acquire()
    assert fake_clock.now == pytest.approx(epoch("2026-03-01T12:15:00") + limiter.reset_slack_seconds)


def test_429_with_daily_usage_over_limit_waits_for_the_day(fake_clock: FakeClock) -> None:
    fake_clock.now = epoch("2026-03-01T12:01:00")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe(headers("30,1001"), 429)
    limiter.acquire()
    assert fake_clock.now >= epoch("2026-03-02T00:00:00")


def test_usage_reported_for_the_previous_window_is_not_carried_over(fake_clock: FakeClock) -> None:
    fake_clock.now = epoch("2026-03-01T12:14:59.5")
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    fake_clock.now = epoch("2026-03-01T12:15:00.2")  # the reply arrives after the reset
    limiter.observe(headers("99,500"), 200)
    assert limiter.snapshot().get("read", "15min").usage == 0
    limiter.acquire()
    assert fake_clock.sleeps == []


def test_snapshot_is_json_serialisable(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe(headers("7,70"), 200)
    snap = limiter.snapshot()
    data = json.loads(json.dumps(snap.to_dict()))
    assert {(w["bucket"], w["window"]) for w in data["windows"]} == {
        ("overall", "15min"),
        ("overall", "daily"),
        ("read", "15min"),
        ("read", "daily"),
    }
    assert snap.get("read", "15min").remaining == 93
    assert "read 15min 7/100" in str(snap)


# -- shared state --------------------------------------------------------------------------------------------


def test_two_limiters_share_one_budget_through_the_state_file(tmp_path: Path, fake_clock: FakeClock) -> None:
    state = tmp_path / "rate.json"
    a = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep, safety_margin=0)
    b = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep, safety_margin=0)
    a.acquire()
    a.observe(headers("1,1", read_limit="6,1000"), 200)
    for _ in range(3):
        a.acquire()
        b.acquire()
    # 7 requests against a limit of 6 shared by both: the 7th (b's last) waited for the next window.
    assert len(fake_clock.sleeps) == 1
    assert a.snapshot().get("read", "daily").usage == 7
    assert a.snapshot().get("read", "15min").usage == 1
    saved = json.loads(state.read_text())
    assert saved["limits"]["read"] == [6, 1000]


def test_state_file_rewritten_in_place_stays_valid_and_private(tmp_path: Path, fake_clock: FakeClock) -> None:
    """The shared file is overwritten in place; a shorter state must not leave the old one's tail behind."""
    state = tmp_path / "rate.json"
    a = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    a.acquire()
    a.observe(headers("12345,123456", read_limit="1000000,10000000", overall="2000000,20000000"), 200)
    long_size = state.stat().st_size
    fake_clock.advance(2 * 86400)  # a new day: every counter rolls back to small numbers
    b = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    b.acquire()
    saved = json.loads(state.read_text())
    assert saved["windows"]["read"]["daily"]["count"] == 1
    assert saved["limits"]["read"] == [1000000, 10000000]
    assert state.stat().st_size == long_size  # padded, not truncated: one write replaces it
    assert state.stat().st_mode & 0o777 == 0o600
    assert b.snapshot().get("read", "daily").usage == 1


def test_state_for_another_window_length_is_ignored(tmp_path: Path, fake_clock: FakeClock) -> None:
    state = tmp_path / "rate.json"
    a = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    a.acquire()
    b = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep, window_seconds=2)
    assert b.snapshot().get("read", "15min").usage == 0


def test_acquires_from_several_processes_are_all_counted(tmp_path: Path) -> None:
    state = tmp_path / "rate.json"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(3)
        with ctx.Pool(3) as pool:
            results = pool.map(
                _acquire_many, [(str(state), 20, barrier), (str(state), 20, barrier), (str(state), 20, barrier)]
            )
    assert results == [20, 20, 20]
    snap = RateLimiter(state_path=state).snapshot()
    if snap.get("read", "15min").usage < 60:
        # The three processes may straddle a real quarter-hour boundary; the day then still holds them all.
        assert snap.get("read", "daily").usage == 60
    else:
        assert snap.get("read", "15min").usage == 60


def test_a_state_file_removed_and_created_anew_is_the_one_counted_in(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limiter holds its files open between requests; when they are replaced (a data folder deleted while a
    long-lived process runs, another process starting afresh) it counts in the new ones, never in a file
    nobody else reads."""
    import strava_pipeline.strava.rate_limiter as rate_limiter

    monkeypatch.setattr(rate_limiter, "_REOPEN_CHECK_SECONDS", 0.0)  # check on every request, not once a second
    state = tmp_path / "rate.json"
    long_lived = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    long_lived.acquire()
    state.unlink()
    state.with_name("rate.json.lock").unlink()
    newcomer = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    newcomer.acquire()
    long_lived.acquire()
    assert newcomer.snapshot().get("read", "15min").usage == 2
    assert json.loads(state.read_text())["windows"]["read"]["daily"]["count"] == 2


def test_a_forked_child_is_excluded_while_its_parent_holds_the_lock(tmp_path: Path) -> None:
    """Descriptors inherited through ``fork`` share the parent's lock (an flock belongs to the open file, not
    the process): a child must open the files anew, or it would read and write while the parent does."""
    import fcntl
    import os

    from strava_pipeline.strava.rate_limiter import _SharedStateFile

    shared = _SharedStateFile(tmp_path / "rate.json")
    with shared.locked():
        pid = os.fork()
        if pid == 0:  # the child: try the lock without blocking, report through the exit status
            code = 2
            try:
                lock_fd, _ = shared._open()
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                code = 1  # got in beside the parent
            except BlockingIOError:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _acquire_many(args: tuple[str, int, object]) -> int:
    from strava_pipeline_tests.strava._workers import acquire_many

    return acquire_many(args)  # type: ignore[arg-type]


# -- unreadable state file -----------------------------------------------------------------------------------
#
# Rule under test: a state file that cannot be read as a valid state is never taken as "nothing used yet".
# The limiter keeps whatever it can still trust (readable parts of the file, its own last view of the
# budget), marks the current 15-minute windows used up (other processes may have spent them), logs one
# warning naming the file and rewrites the file with that state, so every process waits for the next
# quarter hour instead of overspending.  The day is not assumed used up (that would lose a day).


def _valid_state_file(path: Path, clock: FakeClock) -> dict:
    """Let a limiter write a real state (read usage 50/100 and 500/1000 at 12:10) and return it as parsed."""
    writer = RateLimiter(state_path=path, clock=clock, sleep=clock.sleep)
    writer.acquire()
    writer.observe(headers("50,500"), 200)
    return json.loads(path.read_bytes())


def _with(state: dict, *keys: str, value: object) -> bytes:
    """``state`` as JSON with the nested entry at ``keys`` set to ``value``."""
    state = json.loads(json.dumps(state))
    node = state
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return json.dumps(state).encode()


CORRUPT_STATES = {
    "truncated JSON": lambda s: json.dumps(s).encode()[: len(json.dumps(s)) // 2],
    "empty object": lambda s: b"{}",
    "windows empty, nothing else": lambda s: b'{"windows": {}}',
    "windows empty": lambda s: _with(s, "windows", value={}),
    "windows missing": lambda s: json.dumps({k: v for k, v in s.items() if k != "windows"}).encode(),
    "string count": lambda s: _with(s, "windows", "read", "15min", "count", value="12"),
    "limits not a pair": lambda s: _with(s, "limits", "read", value="100,1000"),
    "not UTF-8": lambda s: json.dumps(s).encode().replace(b'"count"', b'"c\xe9\xffount"', 1),
    "zeros after a crash": lambda s: b"\x00" * len(json.dumps(s)),
    "only blanks": lambda s: b" " * 40,
    "a list": lambda s: b"[1, 2]",
    "another format": lambda s: _with(s, "format", value="strava_pipeline.ratelimit/99"),
}


def _file_warnings(caplog: pytest.LogCaptureFixture, path: Path) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and str(path) in r.getMessage()]


@pytest.mark.parametrize("corrupt", list(CORRUPT_STATES.values()), ids=list(CORRUPT_STATES))
def test_unreadable_state_file_waits_for_the_next_window_and_warns_once(
    tmp_path: Path, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture, corrupt
) -> None:
    fake_clock.now = epoch("2026-03-01T12:10:00")
    state = tmp_path / "rate.json"
    state.write_bytes(corrupt(_valid_state_file(state, fake_clock)))
    # Another process (a limiter that never saw the budget) finds the file in this state.
    limiter = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    with caplog.at_level(logging.WARNING, logger="strava_pipeline.strava"):
        limiter.acquire()
        # The 12:10 window may already be spent by whoever wrote the file: wait for 12:15, never count from 0.
        assert fake_clock.sleeps == [pytest.approx(300 + limiter.reset_slack_seconds)]
        for _ in range(3):
            limiter.acquire()
            limiter.observe({}, 200)
        limiter.snapshot()
    (warning,) = _file_warnings(caplog, state)
    assert "rate-limit state" in warning.getMessage()
    saved = json.loads(state.read_bytes())  # rewritten as a valid state for every later reader
    assert saved["format"] == "strava_pipeline.ratelimit/1"
    assert saved["windows"]["read"]["15min"]["count"] == 4


def test_unreadable_state_file_is_refused_until_the_next_window_for_every_reader(
    tmp_path: Path, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake_clock.now = epoch("2026-03-01T12:10:00")
    state = tmp_path / "rate.json"
    state.write_bytes(CORRUPT_STATES["empty object"](_valid_state_file(state, fake_clock)))
    first = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep, max_wait_seconds=60)
    later = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep, max_wait_seconds=60)
    with caplog.at_level(logging.WARNING, logger="strava_pipeline.strava"):
        for limiter in (first, first, later):
            with pytest.raises(StravaRateLimitError) as info:
                limiter.acquire()
            assert info.value.resets_at == datetime(2026, 3, 1, 12, 15, tzinfo=UTC)
        assert len(_file_warnings(caplog, state)) == 1  # the repaired file carries the verdict, silently
        fake_clock.now = epoch("2026-03-01T12:15:00")
        later.acquire()  # the next window is a fresh budget
    assert fake_clock.sleeps == []
    assert later.snapshot().get("read", "15min").usage == 1


def test_unreadable_state_file_keeps_the_usage_this_limiter_saw(
    tmp_path: Path, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake_clock.now = epoch("2026-03-01T12:10:00")
    state = tmp_path / "rate.json"
    limiter = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    limiter.acquire()
    limiter.observe(headers("50,500"), 200)
    state.write_bytes(state.read_bytes()[:-40])  # e.g. a half-finished write
    with caplog.at_level(logging.WARNING, logger="strava_pipeline.strava"):
        snap = limiter.snapshot()
        assert snap.get("read", "15min").usage == 50 and snap.get("read", "15min").exhausted
        assert snap.get("read", "daily").usage == 500 and snap.get("read", "daily").limit == 1000
        limiter.acquire()
    assert fake_clock.sleeps == [pytest.approx(300 + limiter.reset_slack_seconds)]
    assert limiter.snapshot().get("read", "daily").usage == 501  # the day's known usage was not forgotten
    assert len(_file_warnings(caplog, state)) == 1
    # A later corruption is news again.
    state.write_bytes(b"{}")
    with caplog.at_level(logging.WARNING, logger="strava_pipeline.strava"):
        assert limiter.snapshot().get("read", "daily").usage == 501
    assert len(_file_warnings(caplog, state)) == 2


def test_readable_parts_of_a_damaged_state_are_kept(tmp_path: Path, fake_clock: FakeClock) -> None:
    fake_clock.now = epoch("2026-03-01T12:10:00")
    state = tmp_path / "rate.json"
    saved = _valid_state_file(state, fake_clock)
    state.write_bytes(_with(saved, "windows", "read", "15min", "count", value="12"))
    snap = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep).snapshot()
    assert snap.get("read", "daily").usage == 500 and snap.get("overall", "15min").usage == 50
    assert snap.get("read", "15min").limit == 100 and snap.get("read", "15min").exhausted


def test_new_empty_state_file_starts_a_fresh_budget_silently(
    tmp_path: Path, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "rate.json"
    state.touch()
    limiter = RateLimiter(state_path=state, clock=fake_clock, sleep=fake_clock.sleep)
    with caplog.at_level(logging.WARNING, logger="strava_pipeline.strava"):
        limiter.acquire()
    assert fake_clock.sleeps == [] and caplog.records == []


def test_the_state_lock_excludes_processes_locking_it_with_filelock_as_older_versions_did(tmp_path: Path) -> None:
    import fcntl
    import os

    from filelock import FileLock, Timeout

    from strava_pipeline.strava.rate_limiter import _SharedStateFile

    state = tmp_path / "rate.json"
    RateLimiter(state_path=state).acquire()
    lock_path = tmp_path / "rate.json.lock"
    assert lock_path.exists() and lock_path.stat().st_mode & 0o777 == 0o600
    with _SharedStateFile(state).locked(), pytest.raises(Timeout):  # an older version's process cannot get in ...
        FileLock(str(lock_path), thread_local=False).acquire(timeout=0)
    with FileLock(str(lock_path), thread_local=False):  # ... nor this one while an older one holds it
        fd = os.open(lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
