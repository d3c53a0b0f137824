"""Against a real peer: Debian's chronyd on loopback (a private instance on a free port)."""

from __future__ import annotations

from ntpmon.ntp import sntp
from ntpmon.ntp.check import ProbeConfig, check_host
from ntpmon.testing.chronyd import Chronyd

from .conftest import no_sleep

MS = 1_000_000


def test_chronyd_offset_is_measured_within_a_millisecond_with_kernel_timestamps(
    chronyd: Chronyd,
) -> None:
    # chronyd and we read the same system clock, so the true offset is zero: what we measure
    # is our error. Kernel timestamps keep it far below the 1 ms this asserts.
    for _ in range(20):
        response = sntp.query(chronyd.host, port=chronyd.port)
        assert response.stamping == "kernel"
        assert abs(response.clock_offset_ns) < 1 * MS
        assert response.stratum == 1
        assert response.leap == 0
        assert response.kiss_code == ""
        assert response.uncertainty_ns >= response.rtt_ns // 2
        assert (
            response.provable_error_ns == 0 or abs(response.clock_offset_ns) > response.rtt_ns // 2
        )


def test_user_space_fallback_reports_itself(chronyd: Chronyd) -> None:
    response = sntp.query(chronyd.host, port=chronyd.port, stamping=sntp.Stamping.USER)
    assert response.stamping == "user"
    assert abs(response.clock_offset_ns) < 100 * MS


def test_check_host_against_chronyd(chronyd: Chronyd) -> None:
    cfg = ProbeConfig(samples=3, ip="127.0.0.1", port=chronyd.port, allow_loopback=True)
    status, response, error = check_host(chronyd.host, cfg, sleep=no_sleep)
    assert error is None and response is not None and status is not None
    assert not status.no_response
    assert abs(status.offset.ToNanoseconds()) < 1 * MS
    assert status.stratum == 1
    assert response.stamping == "kernel"
