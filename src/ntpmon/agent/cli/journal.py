"""journald priorities for stderr lines (agent.md §14, [IMPROVE] over a native journal client).

When systemd connects stderr to the journal it sets ``JOURNAL_STREAM=<dev>:<inode>``; a line
starting with ``<N>`` then gets priority N, so warnings and errors show up as such.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def stderr_is_journal(environ: Mapping[str, str], fd: int = 2) -> bool:
    """Whether ``fd`` is the stream systemd named in ``JOURNAL_STREAM``."""
    value = environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class JournalPrefix(logging.Formatter):
    """Prefixes each line of another formatter with its sd-daemon priority."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self._formatter = formatter

    def format(self, record: logging.LogRecord) -> str:
        level = max(k for k in PRIORITIES if k <= max(record.levelno, logging.DEBUG))
        return f"<{PRIORITIES[level]}>{self._formatter.format(record)}"


def use_journal_priorities(environ: Mapping[str, str]) -> bool:
    """Wrap the stderr handlers' formatters when stderr goes to the journal."""
    if not stderr_is_journal(environ):
        return False
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.formatter is not None:
            handler.setFormatter(JournalPrefix(handler.formatter))
    return True
