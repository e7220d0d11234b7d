"""A write-ahead cache for fetched bytes that have not reached a committed partition yet.

A run that fetches hundreds of documents and then fails (a dead database, a crash, a later request
that exhausts its retries) must not have spent its API budget for nothing. Each document is written
here the moment it arrives (temp file + rename, so a crash never leaves a torn entry); the next attempt
reads it back instead of asking again, and entries are discarded once their partition has landed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from strava_pipeline.storage.files import write_atomic

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


class LandingCache:
    """Byte documents by key under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise ValueError(f"landing cache key {key!r} must be letters, digits, '.', '_' or '-'")
        return self.root / key

    def put(self, key: str, body: bytes) -> None:
        """Store a document durably before anything else is done with it."""
        write_atomic(self._path(key), body)

    def get(self, key: str) -> bytes | None:
        """The stored document, or None."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def discard(self, keys: Iterable[str]) -> None:
        """Forget documents whose partition has been committed."""
        for key in keys:
            self._path(key).unlink(missing_ok=True)
