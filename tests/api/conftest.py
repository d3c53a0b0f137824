"""Fixtures for monitor-api tests: a CA per session, a running server per test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from api_testkit import RunningApi, loopback_options, running_api, serving
from jwks_testkit import JwksServer, Keys, jwks_document, new_keys
from sqlalchemy import Engine

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.clock import FixedClock
from ntpmon.testing.bufcli import buf_binary

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"


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


@pytest.fixture(scope="session")
def buf_schema(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``buf`` and the repo's proto built into an image once, so no call compiles it again."""
    binary = buf_binary()
    image = tmp_path_factory.mktemp("buf") / "monitor.binpb"
    built = subprocess.run(
        [str(binary), "build", str(PROTO_DIR), "-o", str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary, image


@pytest.fixture
def monitor_api(db: Engine, clock: FixedClock, tmp_path: Path) -> Iterator[MonitorApiServer]:
    """A whole ``monitor-api server`` on loopback ports (embedded CA, own JWTs)."""
    with serving(loopback_options(db, tmp_path / "data", clock=clock)) as server:
        yield server


@pytest.fixture
def issuer(ca: EmbeddedCA, keys: Keys, tmp_path: Path) -> Iterator[JwksServer]:
    """An external JWT issuer serving its JWKS over HTTPS on loopback (certificate of ``ca``)."""
    running = JwksServer(ca, tmp_path, jwks_document(keys.published()))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Closes the clients a test opened."""
    with ExitStack() as closing:
        yield closing
