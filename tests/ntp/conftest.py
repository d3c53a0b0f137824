"""Fixtures for the NTP engine: real UDP responders on 127.0.0.1 and ::1, and a private chronyd."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import pytest

from ntpmon.ntp.check import ProbeConfig
from ntpmon.testing.chronyd import Chronyd, private_chronyd
from ntpmon.testing.ntpserver import NTPResponder, ResponderSettings

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


@contextlib.contextmanager
def responder_farm(answers: list[ResponderSettings]) -> Iterator[list[NTPResponder]]:
    """One responder per answer on 127.0.0.2, 127.0.0.3, ... all on one shared free port."""
    for _attempt in range(20):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(NTPResponder("127.0.0.2", 0, answers[0]))
            try:
                rest = [
                    stack.enter_context(NTPResponder(f"127.0.0.{i + 2}", first.port, a))
                    for i, a in enumerate(answers[1:], start=1)
                ]
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            yield [first, *rest]
            return
    raise RuntimeError("no shared free port for the responder farm")


def config_for(farm: list[NTPResponder], **extra: object) -> ProbeConfig:
    hosts = tuple(r.host for r in farm)
    fields = {"samples": 1, "base_checks": hosts, "port": farm[0].port, "allow_loopback": True}
    fields.update(extra)
    return ProbeConfig(**fields)


@pytest.fixture(scope="module")
def chronyd() -> Iterator[Chronyd]:
    with private_chronyd() as server:
        yield server
