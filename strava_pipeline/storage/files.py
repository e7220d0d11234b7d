"""Replacing a file atomically: readers see the old complete file or the new one, never half of either.

Every file the product writes in place (Parquet days, the token store, landing-cache documents, the
report) goes through ``write_atomic``: a private temporary file in the same directory, fsync, rename over
the destination, fsync of the directory (without it a crash can forget the rename on some filesystems).
Temporary names start with ``.`` and end with ``.tmp``, which no reader ever opens, so a kill leaves
nothing that is read as data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "TMP_SUFFIX", "create_private_file", "fsync_dir",
           "keep_created_files_private", "tighten_to_private", "write_atomic"]

#: The athlete's data is private: files readable and writable by their owner only.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
#: The process umask that makes every file and folder created without an explicit mode private too: the
#: product's own (Parquet folders, Dagster's run logs and compute logs, the report) and its libraries'.
PRIVATE_UMASK = 0o077
TMP_SUFFIX = ".tmp"


def keep_created_files_private() -> None:
    """Set the process umask so nothing this process creates is readable by other local users.

    Called first by every entry point (the CLI, the Dagster code location): explicit modes cover our own
    writes, but folders made with ``parents=True``, Dagster's storage and libraries' files follow the umask.
    """
    os.umask(PRIVATE_UMASK)


def tighten_to_private(path: Path) -> None:
    """Make an existing file 0600 if group or others may read or write it (a credentials file copied with
    the wrong mode, or made by an older version); warns, naming the file, when it does."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        logger.warning("tightening permissions of %s to 0600 (it was %o)", path, mode)
        os.chmod(path, PRIVATE_FILE_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 whatever the umask, or tighten it if it exists (e.g. a lock file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten_to_private(path)
    else:
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
        finally:
            os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (a no-op where the filesystem cannot fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(
    path: Path,
    content: bytes | str | Callable[[Path], None],
    *,
    mode: int = PRIVATE_FILE_MODE,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``content``: bytes, text (UTF-8), or a function that writes a file at the path
    it is given (e.g. ``frame.write_parquet``).

    The file gets ``mode`` whatever the umask. ``durable=False`` skips the fsyncs (still atomic, but a power
    cut may roll back to the previous version): for state that is only an optimisation.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # os.open's mode is filtered by the umask; fchmod is not
            if not callable(content):
                view = memoryview(content.encode("utf-8") if isinstance(content, str) else content)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        if callable(content):
            content(tmp)  # writes into the private file just created (its mode is kept)
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)
