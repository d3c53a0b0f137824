"""Where the ClickHouse client comes from: a server over HTTP, or chDB in this process.

``http(s)://user:password@host:8123/database`` is a ClickHouse server (production).
``chdb:///path/to/dir`` is chDB, ClickHouse's engine as a library, keeping its data in that
directory (``make run`` and tests). Both give clickhouse-connect's ``Client``, so every query
and insert is the same code on both.

chDB lets one process at a time open a directory. So a chDB archive is opened for each use
and closed after it (about 50 ms), and opening waits a while for another process (the
exporter, the status pages) to finish with it. A server connection is opened once and kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ntpmon.common.errors import NtpmonError
from ntpmon.db.clickhouse import ClickHouseClient, create_tables

CHDB_SCHEME = "chdb://"
BUSY_MARK = "EmbeddedServer"
"""chDB's error when another process has the directory open."""


class ArchiveError(NtpmonError):
    """ClickHouse cannot be reached or refused a statement (one line, with the DSN)."""


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class Archive:
    """Hands out a ClickHouse client for a DSN; tables are created on first use."""

    def __init__(self, dsn: str, *, busy_wait: float = 10.0) -> None:
        if not dsn.startswith((CHDB_SCHEME, "http://", "https://", "clickhouse://")):
            raise ArchiveError(f"unsupported ClickHouse DSN {describe_dsn(dsn)!r}")
        self.dsn = dsn
        self.embedded = dsn.startswith(CHDB_SCHEME)
        self.busy_wait = busy_wait
        self._lock = threading.Lock()
        self._shared: ClickHouseClient | None = None
        self._ready = False

    def _open(self) -> ClickHouseClient:
        import clickhouse_connect  # heavy; only programs that use ClickHouse pay for it

        deadline = time.monotonic() + self.busy_wait
        while True:
            try:
                client: ClickHouseClient = clickhouse_connect.get_client(dsn=self.dsn)
                break
            except Exception as exc:
                busy = self.embedded and BUSY_MARK in str(exc)
                if busy and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ArchiveError(f"ClickHouse {describe_dsn(self.dsn)}: {first}") from exc
        if not self._ready:
            create_tables(client)
            self._ready = True
        return client

    @contextmanager
    def session(self) -> Iterator[ClickHouseClient]:
        """A client for one unit of work: an export pass, one page's query."""
        if self.embedded:
            with self._lock:  # one chDB connection per directory and process
                client = self._open()
                try:
                    yield client
                finally:
                    client.close()
            return
        with self._lock:
            if self._shared is None:
                self._shared = self._open()
            client = self._shared
        yield client

    def close(self) -> None:
        with self._lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None
