"""Fixtures for the NTP engine: real UDP responders on 127.0.0.1 and ::1, and a private chronyd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ntpmon.agent.monitor.check import ProbeConfig
from ntpmon.testing.chronyd import Chronyd, private_chronyd
from ntpmon.testing.ntpserver import NTPResponder

FAMILIES = ("127.0.0.1", "::1")


@pytest.fixture(params=FAMILIES, ids=("ipv4", "ipv6"))
def responder(request: pytest.FixtureRequest) -> Iterator[NTPResponder]:
    """A well-behaved responder on an ephemeral port, once per address family."""
    with NTPResponder(request.param) as server:
        yield server


def loopback_config(server: NTPResponder, samples: int = 1, **extra: object) -> ProbeConfig:
    """The devel-only probe configuration that may reach a loopback responder."""
    return ProbeConfig(samples=samples, port=server.port, allow_loopback=True, **extra)


def no_sleep(_seconds: float) -> None:
    """Spacing between samples is tested once with the real clock; elsewhere it only costs time."""


@pytest.fixture(scope="module")
def chronyd() -> Iterator[Chronyd]:
    with private_chronyd() as server:
        yield server
