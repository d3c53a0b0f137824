"""Fixtures for monitor-api tests: a CA per session, a running server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_testkit import RunningApi, running_api
from jwks_testkit import Keys, new_keys
from sqlalchemy import Engine

from ntpmon.api.ca import EmbeddedCA
from ntpmon.common.clock import FixedClock


@pytest.fixture(scope="session")
def ca() -> EmbeddedCA:
    return EmbeddedCA.create("test monitor CA")


@pytest.fixture(scope="session")
def foreign_ca() -> EmbeddedCA:
    return EmbeddedCA.create("someone else's CA")


@pytest.fixture(scope="session")
def keys() -> Keys:
    """An external issuer's signing keys (one set per session: RSA keys are slow to make)."""
    return new_keys()


@pytest.fixture
def api(db: Engine, clock: FixedClock, ca: EmbeddedCA) -> Iterator[RunningApi]:
    with running_api(db, clock, ca) as running:
        yield running
