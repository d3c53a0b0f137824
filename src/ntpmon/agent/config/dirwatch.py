"""Changes in one directory from Linux inotify, read in the caller's own thread (agent.md §8.2).

The config manager watches the state directory for ``state.json`` being written or renamed.
watchdog did that with three threads of its own and ~0.9 MB resident of imports (its
``ctypes.util`` alone pulls in shutil, tempfile, subprocess, bz2 and lzma); the kernel interface
is two calls and a ``read``. The descriptor is non-blocking, so the manager polls it beside its
own wake-up pipe and timers. Without inotify (not Linux) :class:`DirWatch` raises
:class:`InotifyUnavailableError` and the manager falls back to watchdog.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from pathlib import Path

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000  # events were lost
IN_IGNORED = 0x00008000  # the watch is gone (directory removed or unmounted)
IN_ISDIR = 0x40000000
WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
_READ_SIZE = 64 * 1024  # many times the largest event (header + NAME_MAX + 1)


class InotifyUnavailableError(OSError):
    """This C library has no inotify (not Linux)."""


@dataclass(frozen=True, slots=True)
class DirEvent:
    """One inotify event: the ``IN_*`` bits and the entry's name (empty for the directory)."""

    mask: int
    name: str


class DirWatch:
    """A non-blocking inotify descriptor watching one directory, not recursively.

    Raises :class:`InotifyUnavailableError` without inotify, ``OSError`` when the directory cannot
    be watched (missing, no permission, the user's inotify limits reached).
    """

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except AttributeError:
            raise InotifyUnavailableError("inotify is not available") from None
        init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
        add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        add_watch.restype = ctypes.c_int
        fd = init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise _os_error("inotify_init1")
        if add_watch(fd, os.fsencode(directory), WATCHED) < 0:
            error = _os_error(str(directory))
            os.close(fd)
            raise error
        self._fd: int | None = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the watch is closed")
        return self._fd

    def read(self) -> list[DirEvent]:
        """The events queued now; empty when there are none."""
        try:
            data = os.read(self.fileno(), _READ_SIZE)
        except BlockingIOError:
            return []
        events: list[DirEvent] = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            name = os.fsdecode(data[start : start + length].rstrip(b"\0"))
            events.append(DirEvent(mask, name))
            offset = start + length
        return events

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _os_error(what: str) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, os.strerror(errno), what)
