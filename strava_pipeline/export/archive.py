"""Reading a Strava export archive (``export_<id>.zip`` or its unpacked folder) safely and as a stream.

An archive can hold many GB of original uploads: members are opened one at a time and streamed, never
read whole into memory. Member names come from a file a user downloaded, so each is checked before it
is used: an absolute path, a ``..`` component, a drive letter or a NUL makes the member *refused* (listed
with the reason, never opened), so nothing is ever read from or written to outside the archive. Inside an
unpacked folder, symbolic links are refused too.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

__all__ = ["Archive", "ArchiveError", "ArchiveMember", "member_name_problem", "open_archive"]

ACTIVITIES_CSV = "activities.csv"


class ArchiveError(ValueError):
    """The path is not a readable export archive (names the path and what is wrong)."""


@dataclass(frozen=True)
class ArchiveMember:
    """One file of the archive: its name relative to the archive root (``/``-separated) and size."""

    name: str
    size: int
    #: Why the member may not be used (unsafe name, link); None when it is fine.
    refused: str | None = None


def member_name_problem(name: str) -> str | None:
    """Why an archive member name is unsafe to use, or None when it stays inside the archive."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "path leaves the archive ('..')"
    return None


class Archive:
    """An opened archive: its members and a way to stream each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._root: Path | None = None
        if path.is_dir():
            self._root = path.resolve()
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ArchiveError(f"{path}: not a zip archive ({exc})") from None
        else:
            raise ArchiveError(f"{path}: no such file or folder")
        self._members = self._list()
        self._root_prefix = self._common_prefix()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _list(self) -> dict[str, ArchiveMember]:
        members: dict[str, ArchiveMember] = {}
        if self._zip is not None:
            for info in self._zip.infolist():
                if info.is_dir():
                    continue
                members[info.filename] = ArchiveMember(info.filename, info.file_size,
                                                       member_name_problem(info.filename))
            return members
        assert self._root is not None
        for file in sorted(self._root.rglob("*")):
            name = file.relative_to(self._root).as_posix()
            if file.is_symlink():
                members[name] = ArchiveMember(name, 0, "symbolic link")
            elif file.is_file():
                members[name] = ArchiveMember(name, file.stat().st_size)
        return members

    def _common_prefix(self) -> str:
        """Archives re-zipped by users often wrap everything in one folder: find ``activities.csv``'s."""
        candidates = [n for n, m in self._members.items() if m.refused is None
                      and PurePosixPath(n).name == ACTIVITIES_CSV]
        if not candidates:
            return ""
        shortest = min(candidates, key=lambda n: n.count("/"))
        return shortest[: -len(ACTIVITIES_CSV)]

    @property
    def members(self) -> list[ArchiveMember]:
        """Every file of the archive, refused ones included (with their reason)."""
        return list(self._members.values())

    def relative(self, name: str) -> str:
        """A member's name relative to the archive root (where ``activities.csv`` lies)."""
        return name[len(self._root_prefix):] if name.startswith(self._root_prefix) else name

    def find(self, relative_name: str) -> ArchiveMember | None:
        """The member a path relative to the archive root names (as activities.csv's ``Filename`` does)."""
        member = self._members.get(self._root_prefix + relative_name)
        return member if member is not None and member.refused is None else None

    @contextmanager
    def open(self, member: ArchiveMember) -> Iterator[BinaryIO]:
        """Stream one member (never a refused one)."""
        if member.refused is not None:
            raise ArchiveError(f"{self.path}: member {member.name!r} refused: {member.refused}")
        if self._zip is not None:
            with self._zip.open(member.name) as handle:
                yield handle  # type: ignore[misc]
            return
        assert self._root is not None
        with open(self._root / member.name, "rb") as handle:
            yield handle


def open_archive(path: Path) -> Archive:
    """Open a zip archive or an unpacked archive folder; ``ArchiveError`` when it is neither."""
    return Archive(Path(path).expanduser())
