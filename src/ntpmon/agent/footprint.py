"""Process settings that keep the long-running ``monitor`` small (docs/agent.md, Footprint).

glibc gives a thread its own malloc arena when the others are busy, up to eight per core; the
probe threads of every batch come and go, and each arena keeps the memory it once held. Two
arenas are plenty for a process that mostly waits. The systemd unit sets
``MALLOC_ARENA_MAX=2`` too; the process sets it for itself so a manual run behaves the same.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


def limit_malloc_arenas(environ: Mapping[str, str], arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas unless ``MALLOC_ARENA_MAX`` already did; True when applied.

    Call it before worker threads start: arenas made earlier stay.
    """
    if environ.get("MALLOC_ARENA_MAX"):
        return False  # glibc read it at start-up; the operator's value wins
    try:
        import ctypes  # only the monitor process needs it

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl has no arenas to cap)
        return False


def settle_after_start_up() -> None:
    """Collect the import-time garbage, then exempt the survivors from later collections.

    Everything alive now (modules, classes, configuration) lives as long as the process; the
    cyclic collector need not walk it again every time probe threads allocate.
    """
    gc.collect()
    gc.freeze()
