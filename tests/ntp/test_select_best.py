"""Best-sample selection (spec agent.md §11.3, scenario 19.7.1) and the address filter (§11.2)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntpmon.ntp.check import Sample, address_rejection, select_best
from ntpmon.pb.monitor.v2.monitor_manager_pb2 import ServerStatus

OK, TIMEOUT, BAD = "ok", "timeout", "bad"


def sample(kind: str, rtt_ms: float | None = None) -> Sample:
    """(error?, no_response, rtt) as the scenario table writes them."""
    status = ServerStatus(ip_bytes=bytes([192, 0, 2, 1]), no_response=kind == TIMEOUT)
    if rtt_ms is not None:
        status.rtt.FromNanoseconds(int(rtt_ms * 1_000_000))
    error = {OK: None, TIMEOUT: "network: i/o timeout", BAD: "bad stratum 16"}[kind]
    if error:
        status.error = error
    return Sample(status=status, response=None, error=error)


@pytest.mark.parametrize(
    ("samples", "expected_index"),
    [
        ([(OK, 50)], 0),
        ([(TIMEOUT,)], 0),
        ([(TIMEOUT,), (OK, 45), (OK, 55), (TIMEOUT,)], 1),
        ([(TIMEOUT,), (BAD, 30)], 1),
        ([(OK, 100), (OK, 25), (OK, 75)], 1),
        ([(BAD, 80), (BAD, 40), (BAD, 60)], 1),
        ([(TIMEOUT,), (BAD, 20), (OK, 200), (TIMEOUT,)], 2),
        ([(TIMEOUT,), (TIMEOUT,), (TIMEOUT,)], 0),
        ([(OK, None), (OK, 50)], 0),  # an absent rtt blocks the comparison
        ([(OK, 50), (OK, 50)], 0),  # ties keep the earlier sample
        ([(BAD, 30), (TIMEOUT,)], 0),  # a reply beats no reply
        ([(OK, 10), (BAD, 1)], 0),  # an error never replaces a good sample
    ],
)
def test_select_best(samples: list[tuple], expected_index: int) -> None:
    built = [sample(*spec) for spec in samples]
    assert select_best(built) is built[expected_index]


def test_select_best_keeps_the_error_of_a_reply() -> None:
    best = select_best([sample(TIMEOUT), sample(BAD, 30)])
    assert best.error == "bad stratum 16"
    assert not best.status.no_response


def test_select_best_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one"):
        select_best([])


@pytest.mark.parametrize(
    ("ip", "rejection", "devel_rejection"),
    [
        ("127.0.0.1", "loopback address", None),
        ("127.255.0.9", "loopback address", None),
        ("::1", "loopback address", None),
        ("::ffff:127.0.0.1", "loopback address", None),  # IPv4-mapped is unmapped first
        ("192.168.1.1", "private address", None),
        ("10.1.2.3", "private address", None),
        ("172.16.0.1", "private address", None),
        ("172.31.255.255", "private address", None),
        ("fd00::1", "private address", None),
        ("224.0.0.1", "multicast address", "multicast address"),
        ("ff02::1", "multicast address", "multicast address"),
        ("8.8.8.8", None, None),
        ("2001:db8::1", None, None),
        # Go's IsPrivate is narrow: these are probed although Python calls them private.
        ("100.64.0.1", None, None),
        ("169.254.1.1", None, None),
        ("192.0.2.1", None, None),
        ("172.32.0.1", None, None),
        ("0.0.0.0", None, None),
        ("fe80::1", None, None),
        (None, "invalid IP", "invalid IP"),
    ],
)
def test_address_rejection(
    ip: str | None, rejection: str | None, devel_rejection: str | None
) -> None:
    addr = ipaddress.ip_address(ip) if ip else None
    assert address_rejection(addr) == rejection
    assert address_rejection(addr, allow_loopback=True) == devel_rejection


SAMPLE_SPECS = st.lists(
    st.tuples(st.sampled_from([OK, TIMEOUT, BAD]), st.none() | st.integers(1, 500)),
    min_size=1,
    max_size=6,
)


@given(SAMPLE_SPECS)
def test_select_best_properties(specs: list[tuple[str, int | None]]) -> None:
    built = [sample(kind, None if kind == TIMEOUT else rtt) for kind, rtt in specs]
    best = select_best(built)
    good = [s for s in built if s.error is None]
    if good:
        assert best.error is None
        if all(s.status.HasField("rtt") for s in good):
            lowest = min(s.status.rtt.ToNanoseconds() for s in good)
            assert best.status.rtt.ToNanoseconds() == lowest
            # ties keep the earliest
            assert best is next(s for s in good if s.status.rtt.ToNanoseconds() == lowest)
    elif any(not s.status.no_response for s in built):
        assert not best.status.no_response
    else:
        assert best is built[0]
