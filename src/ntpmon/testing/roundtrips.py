"""Count the requests a piece of code sends to the database (tests and benchmarks).

On PyMySQL every command is one request/response round trip: statements, ``COMMIT`` and
pings alike, whether they came through SQLAlchemy or as driver SQL
(:mod:`ntpmon.db.driversql`, which statement events do not see), so they are counted at the
driver. Other drivers (SQLite, in-process) count the statements SQLAlchemy executes plus its
commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymysql.connections import Connection as PyMySQLConnection
from sqlalchemy import Engine, event

COM_PING = 0x0E


def _first_word(sql: Any) -> str:
    text = sql if isinstance(sql, str) else bytes(sql).decode(errors="replace")
    return text.split(None, 1)[0].upper() if text.strip() else ""


@contextmanager
def counting_round_trips(engine: Engine) -> Iterator[Counter[str]]:
    """Count requests by their first SQL word (``PING`` for a ping) while the block runs."""
    counts: Counter[str] = Counter()
    if engine.dialect.driver == "pymysql":
        original = PyMySQLConnection._execute_command

        def counted(self: PyMySQLConnection, command: int, sql: Any) -> Any:
            counts["PING" if command == COM_PING else _first_word(sql)] += 1
            return original(self, command, sql)

        PyMySQLConnection._execute_command = counted  # type: ignore[method-assign]
        try:
            yield counts
        finally:
            PyMySQLConnection._execute_command = original  # type: ignore[method-assign]
        return

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        counts[_first_word(sql)] += 1

    def commit(_conn: Any) -> None:
        counts["COMMIT"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
