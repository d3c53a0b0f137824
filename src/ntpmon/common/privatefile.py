"""Writing files that hold secrets: mode 0600 from the moment they exist, replaced atomically.

Why not ``write_text`` then ``chmod``: between the two the file is readable under the umask
(0644 for a typical 022), and anyone who opens it in that window keeps the descriptor.
``O_CREAT | O_TRUNC`` with mode 0600 is no better for a file that already exists: the old
mode is kept. So a new temporary file is created with ``O_EXCL`` (never someone else's file
or symlink) and mode 0600, set again with ``fchmod`` because a umask can only remove bits (a
umask of 0o277 would leave 0400), written, synced and renamed over the target: readers see
the old secret or the new one, never a torn or an exposed one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_MODE = 0o600
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_all(fd: int, content: bytes) -> None:
    """Finish a write that os.write may have done only in part."""
    view = memoryview(content)
    written = 0
    while written < len(view):
        written += os.write(fd, view[written:])


def fsync_dir(directory: Path) -> None:
    """Make a rename itself durable; best effort (some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_private(path: Path, content: bytes | str) -> None:
    """Replace ``path`` with ``content`` (str is UTF-8), mode 0600 throughout; OSError on failure.

    The temporary file is ``<name>.tmp`` beside the target; one left by a writer killed
    mid-write is removed first. A failed write leaves the old file untouched and no tmp file.
    """
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, _CREATE, PRIVATE_MODE)
    try:
        try:
            os.fchmod(fd, PRIVATE_MODE)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
