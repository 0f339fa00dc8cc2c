"""Files that hold leases, audit trails or secrets: private to their owner.

A lease store or an audit file that others can write lets them forge or erase leases
and events; a secret file that others can read gives the credentials away. So the files
the library creates are created `0600` whatever the umask (SQLite gives its `-wal` and
`-shm` files the mode of the database), an existing store or audit file writable by the
group or by others is refused, and a secret file readable by others is reported once in
the log. On systems without POSIX modes (Windows) the checks do nothing.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO

__all__ = ["PRIVATE", "create_private", "open_private_append", "readable_by_others", "shared"]

PRIVATE = 0o600
"""The mode of every file the library creates."""
_POSIX = os.name == "posix"


def create_private(path: str | os.PathLike[str]) -> None:
    """Create `path` empty with mode 0600 if it does not exist yet; leave it otherwise."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))


def shared(path: str | os.PathLike[str]) -> str | None:
    """Why an existing file must not be trusted (group or others may write it), or None.

    Example:
        >>> shared("/nonexistent/leases.db") is None
        True
    """
    if not _POSIX:
        return None
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "everyone" if mode & stat.S_IWOTH else "its group"
        return (
            f"{os.fspath(path)} is writable by {who} (mode {stat.S_IMODE(mode):04o}), who "
            f"could forge or erase what it holds; make it private: chmod 600 {os.fspath(path)}"
        )
    return None


def open_private_append(path: Path) -> IO[str]:
    """`path` opened for appending text, created 0600 when new."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
    return os.fdopen(fd, "a", encoding="utf-8")


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether users other than the owner and its group may read the file."""
    if not _POSIX:
        return False
    try:
        return bool(Path(path).stat().st_mode & stat.S_IROTH)
    except OSError:
        return False
