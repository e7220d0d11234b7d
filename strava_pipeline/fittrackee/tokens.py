"""FitTrackee OAuth tokens, kept in the pipeline's token store (the same 0600 file as Strava's tokens).

The file is the one ``strava.tokens.TokenStore`` writes (``STRAVA_TOKEN_FILE``, default
``<data dir>/tokens.json``); FitTrackee records live under their own top-level key, so neither store ever
touches the other's records::

    {"format": "strava_pipeline.tokens/1",
     "clients": {...Strava records...},
     "fittrackee": {"https://fittrackee.example#<client id>": {
         "access_token": "...", "refresh_token": "...", "expires_at": 1700000000.0,
         "scope": "workouts:read workouts:write profile:read", "username": "jane", "updated_at": "..."}}}

The same rules as Strava's store apply, for the same reason (FitTrackee rotates the refresh token on every
refresh and revokes the old one): writes are atomic renames of a 0600 file, and every read-modify-write
holds the store's lock file (``<file>.lock``, shared with the Strava store, so the two never lose each
other's update); a refresh re-reads the record inside the lock so a token another process just obtained is
used instead of refreshed again.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from strava_pipeline.storage.files import PRIVATE_FILE_MODE, create_private_file, tighten_to_private, write_atomic

from .errors import RECONNECT_HINT, FitTrackeeAuthError, FitTrackeeError

__all__ = ["FitTrackeeTokenStore", "FitTrackeeTokens"]

#: The token store's format (written by ``strava.tokens`` too): a file either store creates is valid for both.
FORMAT = "strava_pipeline.tokens/1"
SECTION = "fittrackee"
#: Refresh this long before the access token expires (FitTrackee's live 10 days by default).
REFRESH_MARGIN_S = 300.0


def _scope_text(scope: Any) -> str | None:
    """FitTrackee answers the scope as a string or, in its documentation, a list."""
    if scope is None:
        return None
    if isinstance(scope, list | tuple):
        return " ".join(str(s) for s in scope)
    return str(scope)


@dataclass(frozen=True)
class FitTrackeeTokens:
    """One FitTrackee user's tokens for one OAuth2 app of one instance; the repr never shows the tokens."""

    access_token: str
    refresh_token: str
    expires_at: float
    scope: str | None = None
    username: str | None = None

    def __repr__(self) -> str:
        return (f"FitTrackeeTokens(access_token='***', refresh_token='***', expires_at={self.expires_at}, "
                f"scope={self.scope!r}, username={self.username!r})")

    __str__ = __repr__

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until the access token expires (negative when expired)."""
        return self.expires_at - (time.time() if now is None else now)

    def needs_refresh(self, now: float | None = None, *, margin: float = REFRESH_MARGIN_S) -> bool:
        """True without an access token or when it expires within ``margin`` seconds."""
        return not self.access_token or self.seconds_left(now) < margin

    def to_record(self) -> dict[str, Any]:
        """JSON record for the store (holds secrets: only for the 0600 file)."""
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": float(self.expires_at), "scope": self.scope, "username": self.username}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FitTrackeeTokens:
        """Inverse of :meth:`to_record`."""
        return cls(access_token=str(record.get("access_token") or ""), refresh_token=str(record["refresh_token"]),
                   expires_at=float(record.get("expires_at") or 0), scope=record.get("scope"),
                   username=record.get("username"))

    @classmethod
    def from_token_response(cls, payload: Mapping[str, Any], *, previous: FitTrackeeTokens | None = None,
                            now: float | None = None) -> FitTrackeeTokens:
        """Tokens from a ``POST /api/oauth/token`` answer (code exchange or refresh).

        FitTrackee sends ``expires_in`` (and, in some versions, ``expires_at``); a refresh answer keeps the
        scope and username of ``previous`` when it omits them.
        """
        try:
            access, refresh = str(payload["access_token"]), str(payload["refresh_token"])
        except (KeyError, TypeError):
            raise FitTrackeeError("FitTrackee's token answer has no access_token/refresh_token") from None
        expires_at = payload.get("expires_at")
        if expires_at is None:
            expires_at = (time.time() if now is None else now) + float(payload.get("expires_in") or 0)
        return cls(access_token=access, refresh_token=refresh, expires_at=float(expires_at),
                   scope=_scope_text(payload.get("scope")) or (previous.scope if previous else None),
                   username=previous.username if previous else None)


class FitTrackeeTokenStore:
    """The FitTrackee section of the token store, for one instance and OAuth2 app (``client_id``)."""

    def __init__(self, path: Path | str, *, instance_url: str, client_id: str, lock_timeout: float = 300.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.key = f"{instance_url.rstrip('/')}#{client_id}"
        self._lock_timeout = lock_timeout
        self._thread_lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(self.lock_path)
        tighten_to_private(self.path)
        self._file_lock = FileLock(str(self.lock_path), mode=PRIVATE_FILE_MODE, thread_local=False)

    def __repr__(self) -> str:
        return f"FitTrackeeTokenStore(path={str(self.path)!r}, key={self.key!r})"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across threads and processes (and with the Strava store); reentrant in a thread."""
        with self._thread_lock:
            try:
                self._file_lock.acquire(timeout=self._lock_timeout)
            except Timeout as exc:
                raise FitTrackeeError(f"could not lock the token store {self.lock_path} within "
                                      f"{self._lock_timeout:.0f}s (another strava-pipeline process holds it)") from exc
            try:
                yield
            finally:
                self._file_lock.release()

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": FORMAT, "clients": {}}
        tighten_to_private(self.path)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise FitTrackeeError(f"the token store {self.path} is not valid JSON; move it aside and "
                                  f"{RECONNECT_HINT}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("clients", {}), dict):
            raise FitTrackeeError(f"the token store {self.path} has an unknown format; move it aside and "
                                  f"{RECONNECT_HINT}")
        doc.setdefault("clients", {})
        return doc

    def _section(self, doc: dict[str, Any]) -> dict[str, Any]:
        section = doc.get(SECTION)
        if not isinstance(section, dict):
            section = doc[SECTION] = {}
        return section

    def load(self) -> FitTrackeeTokens | None:
        """The stored tokens, or None (reads need no lock: writes are atomic renames)."""
        with self._thread_lock:
            record = self._section(self._read()).get(self.key)
        if not isinstance(record, dict) or not record.get("refresh_token"):
            return None
        try:
            return FitTrackeeTokens.from_record(record)
        except (KeyError, TypeError, ValueError):
            raise FitTrackeeError(f"the token store {self.path} has a damaged FitTrackee record; "
                                  f"{RECONNECT_HINT}") from None

    def require(self) -> FitTrackeeTokens:
        """:meth:`load`, or a :class:`FitTrackeeAuthError` saying how to connect."""
        tokens = self.load()
        if tokens is None:
            raise FitTrackeeAuthError(f"no FitTrackee tokens for {self.key.split('#')[0]} in {self.path}; "
                                      f"{RECONNECT_HINT}")
        return tokens

    def save(self, tokens: FitTrackeeTokens) -> None:
        """Persist atomically, keeping every other record of the file (Strava's included)."""
        with self.lock():
            doc = self._read()
            record = tokens.to_record()
            record["updated_at"] = datetime.now(UTC).isoformat()
            self._section(doc)[self.key] = record
            doc["format"] = FORMAT
            write_atomic(self.path, json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n")

    def clear(self) -> None:
        """Forget these tokens (revoked access)."""
        with self.lock():
            doc = self._read()
            if self._section(doc).pop(self.key, None) is not None:
                write_atomic(self.path, json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n")
