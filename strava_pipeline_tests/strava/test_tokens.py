"""Token store: 0600 files whatever the umask, atomic saves, seed-only-if-empty, redacted reprs, and
cross-process refresh serialisation (two processes, one refresh on the wire)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from strava_pipeline.strava import StravaAuthError, StravaClient, Tokens, TokenStore

from .conftest import MiniStrava

TOKENS = Tokens(
    access_token="acc-SECRET-1",
    refresh_token="ref-SECRET-1",
    expires_at=2_000_000_000,
    scope="read,activity:read_all",
    athlete_id=7,
    athlete_name="Jane Doe",
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the most permissive umask: our modes must not depend on it
    try:
        yield
    finally:
        os.umask(old)


def test_files_are_0600_whatever_the_umask(store_path: Path, open_umask: None) -> None:
    store = TokenStore(store_path)
    assert mode(store.lock_path) == 0o600
    store.save(TOKENS)
    assert mode(store_path) == 0o600
    assert mode(store.lock_path) == 0o600
    assert [p.name for p in store_path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_existing_wider_files_are_tightened(store_path: Path) -> None:
    TokenStore(store_path).save(TOKENS)
    os.chmod(store_path, 0o644)
    os.chmod(store_path.with_name(store_path.name + ".lock"), 0o666)
    store = TokenStore(store_path)
    assert mode(store_path) == 0o600 and mode(store.lock_path) == 0o600
    os.chmod(store_path, 0o640)
    assert store.load() == TOKENS
    assert mode(store_path) == 0o600


def test_round_trip_and_other_records_kept(store_path: Path) -> None:
    a = TokenStore(store_path, client_id="111")
    b = TokenStore(store_path, client_id="222")
    a.save(TOKENS)
    b.save(TOKENS.with_updates(refresh_token="other"))
    assert a.load() == TOKENS
    assert b.load().refresh_token == "other"
    a.update_usage({"windows": []})
    assert a.load() == TOKENS and a.load_usage() == {"windows": []}
    doc = json.loads(store_path.read_text())
    assert set(doc["clients"]) == {"111", "222"}


def test_crash_between_write_and_replace_leaves_the_old_file(store_path: Path) -> None:
    """A process killed after writing the temp file but before os.replace: the store is intact."""
    TokenStore(store_path).save(TOKENS)
    before = store_path.read_bytes()
    code = f"""
import os, sys
from pathlib import Path
sys.path.insert(0, {str(Path.cwd())!r})
from strava_pipeline.strava import TokenStore, Tokens
os.replace = lambda *a, **k: os._exit(9)   # die at the worst moment
TokenStore(Path({str(store_path)!r})).save(Tokens("new-acc", "new-ref", 2_100_000_000))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 9, result.stderr.decode()
    assert store_path.read_bytes() == before
    assert TokenStore(store_path).load() == TOKENS
    leftovers = [p for p in store_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert all(mode(p) == 0o600 for p in leftovers)  # a crash leaves at most a 0600 temp file


def test_failed_replace_cleans_up_and_raises(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TokenStore(store_path)
    store.save(TOKENS)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("strava_pipeline.storage.files.os.replace", boom)  # the token store writes through it
    with pytest.raises(OSError):
        store.save(TOKENS.with_updates(refresh_token="lost"))
    monkeypatch.undo()
    assert store.load() == TOKENS
    assert not [p for p in store_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_seed_only_seeds_an_empty_store(store_path: Path) -> None:
    assert TokenStore(store_path).load() is None
    seeded = TokenStore(store_path, seed_refresh_token=" seed-1 ")
    tokens = seeded.load()
    assert tokens is not None and tokens.refresh_token == "seed-1" and tokens.needs_refresh()
    assert not store_path.exists()  # loading a seed writes nothing
    seeded.save(Tokens("acc", "rotated-2", 2_000_000_000))
    # The env var still holds the (now invalid) seed: the stored, newer token must win.
    assert TokenStore(store_path, seed_refresh_token="seed-1").load().refresh_token == "rotated-2"


def test_require_explains_what_to_do(store_path: Path) -> None:
    with pytest.raises(StravaAuthError, match="strava-pipeline auth"):
        TokenStore(store_path).require()


def test_corrupt_store_is_reported_without_contents(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store_path.write_text('{"clients": {"default": {"refresh_token": "ref-SECRET-9"')
    with pytest.raises(Exception, match="not valid JSON") as info:
        TokenStore(store_path).load()
    assert "SECRET" not in str(info.value)


def test_tokens_repr_redacts_secrets() -> None:
    for text in (repr(TOKENS), str(TOKENS), f"{TOKENS}", repr([TOKENS])):
        assert "SECRET" not in text
        assert "***" in text and "Jane Doe" in text
    assert "''" in repr(Tokens("", "r", 0))


def test_tokens_refresh_margin() -> None:
    now = 1_000_000.0
    assert not Tokens("a", "r", int(now + 3601)).needs_refresh(now)
    assert Tokens("a", "r", int(now + 3599)).needs_refresh(now)
    assert Tokens("", "r", int(now + 99999)).needs_refresh(now)
    assert Tokens("a", "r", 0, scope="read, activity:read_all").granted_scopes() == {"read", "activity:read_all"}


def test_oauth_response_parsing_keeps_previous_scope_and_athlete() -> None:
    exchanged = Tokens.from_oauth_response(
        {"access_token": "a", "refresh_token": "r", "expires_at": 5, "athlete": {"id": 9, "firstname": "Ann"}},
        scope="read,activity:read",
    )
    assert (exchanged.athlete_id, exchanged.athlete_name, exchanged.scope) == (9, "Ann", "read,activity:read")
    refreshed = Tokens.from_oauth_response(
        {"access_token": "a2", "refresh_token": "r2", "expires_at": 6}, previous=exchanged
    )
    assert (refreshed.athlete_id, refreshed.scope, refreshed.refresh_token) == (9, "read,activity:read", "r2")


def test_lock_excludes_other_threads_and_is_reentrant(store_path: Path) -> None:
    store = TokenStore(store_path)
    events: list[str] = []
    with store.lock():
        with store.lock():  # reentrant (save() inside a refresh takes it again)
            store.save(TOKENS)

        def other() -> None:
            with store.lock():
                events.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        events.append("main")
    thread.join(5)
    assert events == ["main", "other"]


# -- refresh serialisation across processes (real HTTP against a tiny rotating token server) ---------------


def _refresh_and_fetch(args: tuple[str, str, str, object]) -> int:
    from strava_pipeline_tests.strava._workers import refresh_and_fetch

    return refresh_and_fetch(args)  # type: ignore[arg-type]


def test_two_processes_needing_a_refresh_cause_one_refresh(tmp_path: Path, mini_strava: MiniStrava) -> None:
    grant = mini_strava.issue()
    store_path = tmp_path / "tokens.json"
    # An expired access token: both processes must refresh before their first call.
    TokenStore(store_path).save(Tokens("expired", grant["refresh_token"], 0))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        args = (mini_strava.base_url, str(store_path), str(tmp_path / "rate.json"), barrier)
        with ctx.Pool(2) as pool:
            results = pool.map_async(_refresh_and_fetch, [args, args]).get(timeout=120)  # a dead worker fails fast
    assert results == [42, 42]
    assert mini_strava.token_calls == 1, mini_strava.log  # the second process adopted the first's token
    stored = TokenStore(store_path).load()
    assert stored is not None and stored.refresh_token in mini_strava.refresh_tokens
    assert grant["refresh_token"] not in mini_strava.refresh_tokens  # strictly rotated


def test_rotated_token_persisted_before_use_and_old_one_dead(tmp_path: Path, mini_strava: MiniStrava) -> None:
    grant = mini_strava.issue()
    store = TokenStore(tmp_path / "tokens.json", seed_refresh_token=grant["refresh_token"])
    client = StravaClient(base_url=mini_strava.base_url, client_id="1", client_secret="mini-secret", token_store=store)
    assert client.get_athlete().json()["id"] == 42
    stored = TokenStore(tmp_path / "tokens.json", seed_refresh_token=grant["refresh_token"]).load()
    assert stored is not None and stored.refresh_token != grant["refresh_token"]
    # A second client that (wrongly) uses the old seed is told to reconnect; nothing secret in the message.
    stale = StravaClient(
        base_url=mini_strava.base_url,
        client_id="1",
        client_secret="mini-secret",
        token_store=TokenStore(tmp_path / "other.json", seed_refresh_token=grant["refresh_token"]),
    )
    with pytest.raises(StravaAuthError, match="run `strava-pipeline auth` to reconnect") as info:
        stale.get_athlete()
    assert grant["refresh_token"] not in str(info.value) and "mini-secret" not in str(info.value)
    client.close()
    stale.close()


def test_wrong_client_secret_is_named_without_leaking(tmp_path: Path, mini_strava: MiniStrava) -> None:
    grant = mini_strava.issue()
    client = StravaClient(
        base_url=mini_strava.base_url,
        client_id="1",
        client_secret="WRONG-secret",
        token_store=TokenStore(tmp_path / "t.json", seed_refresh_token=grant["refresh_token"]),
    )
    with pytest.raises(StravaAuthError, match="STRAVA_CLIENT_SECRET") as info:
        client.get_athlete()
    assert "WRONG-secret" not in str(info.value)
