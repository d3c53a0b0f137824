"""A database with an agent, a scorer and log_scores rows; a chDB archive in a temporary dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ntpmon.analytics.archive import Archive


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    """A real ClickHouse engine (chDB, in process) keeping its data under ``tmp_path``."""
    return Archive(f"chdb://{tmp_path / 'clickhouse'}")
