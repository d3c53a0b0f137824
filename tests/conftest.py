"""Shared fixtures.

``db`` runs a test once on MariaDB (``TEST_DATABASE_DSN``) and once on SQLite, each time on an
empty schema in a database of its own. A database that cannot be reached fails the test: a
skipped database test would hide exactly the drift these tests exist to catch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Engine

from ntpmon.common.clock import FixedClock
from ntpmon.testing.databases import (
    empty_tables,
    temporary_mysql_database,
    temporary_sqlite_database,
)

# Property tests explore new inputs on every developer run; in CI they replay a fixed set, so
# a submission passes or fails on its own code, not on the day's random draw.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DIALECTS = ("mariadb", "sqlite")


@pytest.fixture(scope="session", params=DIALECTS)
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One database per dialect per test session (per xdist worker)."""
    if request.param == "mariadb":
        with temporary_mysql_database() as engine:
            yield engine
    else:
        with temporary_sqlite_database(tmp_path_factory.mktemp("sqlite")) as engine:
            yield engine


@pytest.fixture
def db(db_engine: Engine) -> Iterator[Engine]:
    """An engine on an empty ntpmon schema; parametrised over MariaDB and SQLite."""
    empty_tables(db_engine)
    yield db_engine


@pytest.fixture
def clock() -> FixedClock:
    """A clock fixed at 2026-11-26 12:00:00.123456 UTC (fractional on purpose)."""
    return FixedClock(datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
