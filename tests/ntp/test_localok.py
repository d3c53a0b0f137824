"""The local clock check (spec agent.md §12, scenarios 19.8) against real UDP responders."""

from __future__ import annotations

import ipaddress

import pytest

from ntpmon.agent.daemon.localok import (
    CHECK_INTERVAL_S,
    LocalOK,
    failure_threshold,
    format_duration,
    host_passes,
    resolve_first,
)
from ntpmon.ntp.check import ProbeConfig
from ntpmon.pb.monitor.v2.monitor_manager_pb2 import ServerStatus
from ntpmon.testing.ntpserver import NTPResponder, ResponderSettings

from .conftest import config_for, no_sleep, responder_farm

MS = 1_000_000


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("n", "threshold"), [(0, -1), (1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (7, 3)]
)
def test_failure_threshold(n: int, threshold: int) -> None:
    assert failure_threshold(n) == threshold


def _status(offset_ns: int | None, leap: int = 0) -> ServerStatus:
    status = ServerStatus(leap=leap)
    if offset_ns is not None:
        status.offset.FromNanoseconds(offset_ns)
    return status


@pytest.mark.parametrize(
    ("status", "error", "passes", "reason"),
    [
        (_status(9 * MS), None, True, None),
        (_status(-11 * MS), None, False, "offset too large: -11ms"),
        (_status(10 * MS), None, True, None),  # exactly 10 ms passes
        (_status(-10 * MS), None, True, None),
        (_status(10 * MS + 1), None, False, "offset too large: 10.000001ms"),
        (_status(0, leap=3), None, False, "NotInSync"),
        (_status(50 * MS, leap=3), None, False, "offset too large: 50ms"),
        (_status(None), "network: i/o timeout", False, "network: i/o timeout"),
        (_status(1 * MS), "DENY", False, "DENY"),
        (None, "loopback address", False, "loopback address"),
        (_status(None), None, False, "no offset"),
    ],
)
def test_host_passes(
    status: ServerStatus | None, error: str | None, passes: bool, reason: str | None
) -> None:
    assert host_passes(status, error) == (passes, reason)


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (-11 * MS, "-11ms"), (1_500_000_000, "1.5s")],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@pytest.mark.parametrize(
    ("answers", "verdict"),
    [
        ([{}], True),
        ([{"offset": 0.05}], False),
        ([{}, {}, {}], True),
        ([{}, {}, {"offset": 0.05}], True),
        ([{}, {"offset": -0.05}, {"offset": 0.05}], False),
        # 5 ms either side of the 10 ms limit: a loaded machine adds a millisecond of noise
        ([{"offset": 0.005}, {"offset": -0.005}, {}, {"offset": 0.015}, {"offset": 0.02}], True),
        ([{}, {}, {"leap": 3}, {"leap": 3}], False),
        ([{}, {"kiss": "DENY"}, {"stratum": 16}], False),
    ],
    ids=[
        "one-good",
        "one-off",
        "all-good",
        "one-of-three-off",
        "two-of-three-off",
        "two-of-five-off",
        "half-unsynchronised",
        "kiss-and-bad-stratum",
    ],
)
def test_majority_verdict(answers: list[dict], verdict: bool) -> None:
    with responder_farm([ResponderSettings(**a) for a in answers]) as farm:
        cfg = config_for(farm)
        assert LocalOK(lambda: cfg, 4).check() is verdict
        assert all(r.requests == 1 for r in farm)


def test_no_base_checks_or_no_config_is_false() -> None:
    assert LocalOK(lambda: ProbeConfig(base_checks=()), 4).check() is False
    assert LocalOK(lambda: None, 4).check() is False


def test_cached_for_180_seconds_then_reevaluated_with_the_current_config() -> None:
    """Scenario 19.8.3, plus the IMPROVE: the current config is read at each evaluation."""
    clock = ManualClock()
    with responder_farm([ResponderSettings(), ResponderSettings()]) as farm:
        current = {"cfg": config_for(farm[:1])}
        local_ok = LocalOK(lambda: current["cfg"], 4, monotonic=clock, sleep=no_sleep)
        assert local_ok.next_check_in() == 0
        assert local_ok.check() is True
        farm[0].configure(offset=0.5)
        clock.now += CHECK_INTERVAL_S - 1
        assert local_ok.check() is True  # cached: no probe
        assert farm[0].requests == 1
        assert 0 < local_ok.next_check_in() <= CHECK_INTERVAL_S
        clock.now += 1
        assert local_ok.next_check_in() == 0
        assert local_ok.check() is False  # re-evaluated: the clock now disagrees
        assert farm[0].requests == 2
        current["cfg"] = config_for(farm[1:])
        clock.now += CHECK_INTERVAL_S
        assert local_ok.check() is True  # new base checks picked up
        assert farm[1].requests == 1 and farm[0].requests == 2


def test_unresolvable_hosts_are_excluded_not_failures() -> None:
    """Scenario 19.8.4: only usable hosts count towards n."""
    with responder_farm([ResponderSettings(), ResponderSettings(offset=0.05)]) as farm:
        names = ("::1", "fd00::53", "lookup-fails", farm[0].host, farm[1].host, "localhost")
        cfg = config_for(farm, base_checks=names)

        def resolve(
            host: str, version: int
        ) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
            # The system resolver for everything but the one name whose lookup must fail
            # (a real failing lookup would query the network's DNS server).
            return None if host == "lookup-fails" else resolve_first(host, version)

        # Usable: 127.0.0.2 (good), 127.0.0.3 (off), localhost → 127.0.0.1 (no responder there:
        # connection refused). n = 3, threshold 1, failures 2 → false.
        assert LocalOK(lambda: cfg, 4, resolve=resolve).check() is False
        # Without localhost: n = 2, threshold 0, failures 1 → false; with only the good host, true.
        good_only = config_for(farm, base_checks=("::1", "lookup-fails", farm[0].host))
        assert LocalOK(lambda: good_only, 4, resolve=resolve).check() is True


def test_other_family_literals_are_not_usable() -> None:
    assert resolve_first("::1", 4) is None
    assert resolve_first("127.0.0.1", 6) is None
    assert resolve_first("::1", 6) == ipaddress.ip_address("::1")
    assert resolve_first("localhost", 4) == ipaddress.ip_address("127.0.0.1")


def test_ipv6_worker() -> None:
    with NTPResponder("::1") as server:
        cfg = ProbeConfig(samples=1, base_checks=(b"::1",), port=server.port, allow_loopback=True)
        assert LocalOK(lambda: cfg, 6).check() is True
        assert server.requests == 1


def test_loopback_base_checks_fail_without_the_devel_flag() -> None:
    with responder_farm([ResponderSettings()]) as farm:
        cfg = config_for(farm, allow_loopback=False)
        assert LocalOK(lambda: cfg, 4).check() is False
        assert farm[0].requests == 0


def test_bad_ip_version_is_refused() -> None:
    with pytest.raises(ValueError, match="ip_version"):
        LocalOK(lambda: None, 5)
