"""PyMySQL gets connect/read/write timeouts (issue 15, item 5): defaults when the DSN is
silent, the DSN's own values otherwise, in either DSN form, checked on a real connection."""

from __future__ import annotations

from typing import Any

import pytest

from ntpmon.db.config import DatabaseSettings, parse_dsn
from ntpmon.db.engine import DRIVER_TIMEOUTS, create_db_engine
from ntpmon.testing.databases import configured_test_dsn

pytestmark = pytest.mark.db


def effective(dsn: str) -> tuple[float | None, float | None, float | None]:
    """(connect, read, write) timeouts of a live connection made from ``dsn``."""
    url, args = parse_dsn(dsn)
    engine = create_db_engine(DatabaseSettings(url=url, connect_args=args))
    try:
        with engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            return raw.connect_timeout, raw._read_timeout, raw._write_timeout
    finally:
        engine.dispose()


def server_url() -> Any:
    return parse_dsn(configured_test_dsn())[0]


def test_defaults_when_the_dsn_says_nothing() -> None:
    dsn = server_url().render_as_string(hide_password=False)
    assert effective(dsn) == (
        DRIVER_TIMEOUTS["connect_timeout"],
        DRIVER_TIMEOUTS["read_timeout"],
        DRIVER_TIMEOUTS["write_timeout"],
    )


def test_url_query_wins_over_the_defaults() -> None:
    url = server_url().update_query_dict(
        {"connect_timeout": "3", "read_timeout": "7", "write_timeout": "9"}
    )
    assert effective(url.render_as_string(hide_password=False)) == (3, 7, 9)


def test_go_dsn_timeouts_win_over_the_defaults() -> None:
    url = server_url()
    auth = url.username + (f":{url.password}" if url.password else "")
    dsn = f"{auth}@tcp({url.host}:{url.port or 3306})/?timeout=4s&readTimeout=8s&writeTimeout=1m"
    assert effective(dsn) == (4, 8.0, 60.0)
