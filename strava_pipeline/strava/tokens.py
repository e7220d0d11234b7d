"""OAuth token records and their on-disk store.

Why this is careful: Strava rotates refresh tokens, and "once a new refresh token is returned, the older
refresh token is invalidated immediately".  Losing the newest refresh token (a torn write, a crash between
receiving it and saving it, two processes refreshing at once) disconnects the athlete until a human
re-authorises.  Hence:

* the file is written atomically (temp file in the same directory, fsync, ``os.replace``, fsync of the
  directory);
* the file and its lock file are 0600 whatever the umask (they hold credentials);
* refreshes are serialised across threads and processes with :meth:`TokenStore.lock`, and the caller
  re-reads the store inside the lock so a token another process just obtained is used rather than refreshed
  again.

File format (JSON, one object)::

    {"format": "strava_pipeline.tokens/1",
     "clients": {"<client_id or 'default'>": {
                  "access_token": "...", "refresh_token": "...", "expires_at": 1700000000,
                  "scope": "read,activity:read_all", "athlete_id": 123, "athlete_name": "Jane Doe",
                  "token_type": "Bearer", "updated_at": "2026-01-01T00:00:00+00:00", "usage": {...}}}}
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from strava_pipeline.storage.files import PRIVATE_FILE_MODE, create_private_file, tighten_to_private, write_atomic

from .errors import RECONNECT_HINT, StravaAuthError, StravaError

__all__ = ["TokenStore", "Tokens"]

logger = logging.getLogger("strava_pipeline.strava")

FORMAT = "strava_pipeline.tokens/1"
DEFAULT_CLIENT_KEY = "default"


@dataclass(frozen=True)
class Tokens:
    """One athlete's OAuth credentials for one Strava application.

    ``expires_at`` is epoch seconds (Strava's own field).  ``scope`` is the *granted* scope (the athlete may
    untick boxes), ``None`` when unknown (e.g. a store seeded from a bare refresh token).  An empty
    ``access_token`` means "none yet": the client refreshes before the first call.  The repr never shows the
    tokens.
    """

    access_token: str
    refresh_token: str
    expires_at: int
    scope: str | None = None
    athlete_id: int | None = None
    athlete_name: str | None = None
    token_type: str = "Bearer"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return (
            f"Tokens(access_token={_redact(self.access_token)}, refresh_token={_redact(self.refresh_token)}, "
            f"expires_at={self.expires_at}, scope={self.scope!r}, athlete_id={self.athlete_id!r}, "
            f"athlete_name={self.athlete_name!r})"
        )

    __str__ = __repr__

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until the access token expires (negative when expired)."""
        return self.expires_at - (time.time() if now is None else now)

    def needs_refresh(self, now: float | None = None, *, margin: float = 3600) -> bool:
        """True if there is no access token or under ``margin`` seconds are left.

        Strava only issues a new access token when the current one has an hour or less left, so refreshing
        earlier would just return the same token; refreshing at the hour mark gives a fresh six-hour token.
        """
        return not self.access_token or self.seconds_left(now) < margin

    def granted_scopes(self) -> frozenset[str] | None:
        """The granted scopes as a set, or None when unknown."""
        if self.scope is None:
            return None
        return frozenset(s.strip() for s in self.scope.replace(" ", ",").split(",") if s.strip())

    def to_record(self) -> dict[str, Any]:
        """JSON-serialisable record for the store (contains secrets: only for the 0600 file)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": int(self.expires_at),
            "scope": self.scope,
            "athlete_id": self.athlete_id,
            "athlete_name": self.athlete_name,
            "token_type": self.token_type,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Tokens:
        """Inverse of :meth:`to_record`."""
        return cls(
            access_token=str(record.get("access_token") or ""),
            refresh_token=str(record["refresh_token"]),
            expires_at=int(record.get("expires_at") or 0),
            scope=record.get("scope"),
            athlete_id=record.get("athlete_id"),
            athlete_name=record.get("athlete_name"),
            token_type=str(record.get("token_type") or "Bearer"),
        )

    @classmethod
    def from_oauth_response(
        cls, payload: Mapping[str, Any], *, previous: Tokens | None = None, scope: str | None = None
    ) -> Tokens:
        """Build tokens from a ``POST /oauth/token`` body.

        A refresh response carries no ``athlete`` and no ``scope``; those are kept from ``previous`` (the
        scope of a refreshed token is the scope originally granted).  ``scope`` (from the authorisation
        redirect) wins.
        """
        athlete = payload.get("athlete") if isinstance(payload.get("athlete"), Mapping) else None
        athlete_id = athlete.get("id") if athlete else None
        athlete_name = None
        if athlete:
            athlete_name = " ".join(str(p) for p in (athlete.get("firstname"), athlete.get("lastname")) if p) or None
        expires_at = payload.get("expires_at")
        if expires_at is None and payload.get("expires_in") is not None:
            expires_at = int(time.time()) + int(payload["expires_in"])
        return cls(
            access_token=str(payload["access_token"]),
            refresh_token=str(payload["refresh_token"]),
            expires_at=int(expires_at or 0),
            scope=scope or payload.get("scope") or (previous.scope if previous else None),
            athlete_id=athlete_id if athlete_id is not None else (previous.athlete_id if previous else None),
            athlete_name=athlete_name or (previous.athlete_name if previous else None),
            token_type=str(payload.get("token_type") or "Bearer"),
        )

    def with_updates(self, **changes: Any) -> Tokens:
        """A copy with fields changed (frozen dataclass helper)."""
        return replace(self, **changes)


def _redact(secret: str) -> str:
    return "''" if not secret else "'***'"


class TokenStore:
    """A 0600 JSON file holding OAuth tokens (and the last seen API usage) per Strava application.

    ``seed_refresh_token`` (e.g. from ``STRAVA_REFRESH_TOKEN`` on a headless server) is used only while the
    store holds no record for this client: once a rotated token has been saved, the stored one always wins,
    because the seed is by then invalid (Strava invalidates the old refresh token on rotation).

    ``client_id`` scopes the record (several Strava apps can share a file); without it one ``"default"``
    record is used.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        seed_refresh_token: str | None = None,
        client_id: str | int | None = None,
        lock_timeout: float = 300.0,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.client_key = str(client_id) if client_id is not None else DEFAULT_CLIENT_KEY
        self._seed = seed_refresh_token.strip() if seed_refresh_token and seed_refresh_token.strip() else None
        self._thread_lock = threading.RLock()
        self._lock_timeout = lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(self.lock_path)
        tighten_to_private(self.path)
        # thread_local=False: our RLock already admits one thread at a time, and reentrancy must work across
        # the nested lock()/save() calls of that thread.
        self._file_lock = FileLock(str(self.lock_path), mode=PRIVATE_FILE_MODE, thread_local=False)

    def __repr__(self) -> str:
        return f"TokenStore(path={str(self.path)!r}, client={self.client_key!r})"

    # -- locking ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock across threads and processes; reentrant within a thread.

        Hold it for the whole read-refresh-save sequence of a token refresh.
        """
        with self._thread_lock:
            try:
                self._file_lock.acquire(timeout=self._lock_timeout)
            except Timeout as exc:
                raise StravaError(
                    f"could not lock the token store {self.lock_path} within {self._lock_timeout:.0f}s "
                    "(another strava-pipeline process is holding it)"
                ) from exc
            try:
                yield
            finally:
                self._file_lock.release()

    # -- file access -----------------------------------------------------------------------------------------

    def _read_document(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": FORMAT, "clients": {}}
        tighten_to_private(self.path)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise StravaError(
                f"the token store {self.path} is not valid JSON; move it aside and {RECONNECT_HINT}"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("clients"), dict):
            raise StravaError(f"the token store {self.path} has an unknown format; move it aside and {RECONNECT_HINT}")
        return doc

    def _write_document(self, doc: dict[str, Any]) -> None:
        doc["format"] = FORMAT
        write_atomic(self.path, json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n")

    def _record(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        record = doc["clients"].get(self.client_key)
        return record if isinstance(record, dict) else None

    # -- public API ------------------------------------------------------------------------------------------

    def load(self) -> Tokens | None:
        """The stored tokens; else tokens made from the seed refresh token (not yet saved); else None.

        Reading needs no lock: writes are atomic renames, so we see a whole old or whole new file.
        """
        with self._thread_lock:
            record = self._record(self._read_document())
        if record is not None and record.get("refresh_token"):
            try:
                return Tokens.from_record(record)
            except (KeyError, TypeError, ValueError):
                raise StravaError(
                    f"the token store {self.path} has a damaged record; move it aside and {RECONNECT_HINT}"
                ) from None
        if self._seed is not None:
            return Tokens(access_token="", refresh_token=self._seed, expires_at=0)
        return None

    def save(self, tokens: Tokens) -> None:
        """Persist ``tokens`` atomically (other clients' records and the usage snapshot are kept)."""
        with self.lock():
            doc = self._read_document()
            record = self._record(doc) or {}
            record.update(tokens.to_record())
            record["updated_at"] = datetime.now(UTC).isoformat()
            doc["clients"][self.client_key] = record
            self._write_document(doc)

    def clear(self) -> None:
        """Forget this client's tokens (after deauthorisation).  The seed is not used again by this object."""
        with self.lock():
            doc = self._read_document()
            if doc["clients"].pop(self.client_key, None) is not None:
                self._write_document(doc)
            self._seed = None

    def update_usage(self, snapshot: Any) -> None:
        """Remember the last seen API usage (a :class:`RateLimitSnapshot` or a mapping) for ``auth
        --status``."""
        data = snapshot.to_dict() if hasattr(snapshot, "to_dict") else dict(snapshot)
        with self.lock():
            doc = self._read_document()
            record = self._record(doc) or {}
            record["usage"] = data
            doc["clients"][self.client_key] = record
            self._write_document(doc)

    def load_usage(self) -> dict[str, Any] | None:
        """The usage snapshot saved by :meth:`update_usage`, if any."""
        with self._thread_lock:
            record = self._record(self._read_document())
        usage = record.get("usage") if record else None
        return usage if isinstance(usage, dict) else None

    def require(self) -> Tokens:
        """:meth:`load`, raising a helpful :class:`StravaAuthError` when there is nothing to use."""
        tokens = self.load()
        if tokens is None:
            raise StravaAuthError(
                f"no Strava tokens in {self.path} and no STRAVA_REFRESH_TOKEN seed; "
                "run `strava-pipeline auth` to connect an athlete"
            )
        return tokens
