"""A content-addressed store of verbatim files: ``<root>/<sha256[:2]>/<sha256>``.

The raw layer keeps every byte it was given (an export archive's CSVs and original activity files) so
that every typed table can be rebuilt without the original source. Addressing by SHA-256 makes storing
the same file twice free and a re-import of an unchanged archive a no-op. Files are written through a
private temporary file and renamed (never half a blob), mode 0600 in 0700 folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO

from strava_pipeline.storage.files import PRIVATE_FILE_MODE, TMP_SUFFIX, fsync_dir

__all__ = ["BlobStore"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
PRIVATE_DIR_MODE = 0o700


class BlobStore:
    """Verbatim files by SHA-256 under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        if not _SHA256.match(sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        """The blob's bytes; ``FileNotFoundError`` names the digest when it was never stored."""
        return self.path(sha256).read_bytes()

    def put(self, source: BinaryIO) -> tuple[str, int]:
        """Copy a stream into the store without holding it in memory; return (sha256, size).

        The copy is hashed as it is written, then renamed to its digest; a blob already stored is kept
        as it is (same digest, same bytes).
        """
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        tmp = self.root / f".incoming.{os.getpid()}.{secrets.token_hex(6)}{TMP_SUFFIX}"
        digest, size = hashlib.sha256(), 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            if target.is_file():
                tmp.unlink()
                return sha, size
            target.parent.mkdir(exist_ok=True, mode=PRIVATE_DIR_MODE)
            os.replace(tmp, target)
            fsync_dir(target.parent)
            return sha, size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
