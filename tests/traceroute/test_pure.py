"""The pure parts of the traceroute: sock_extended_err parsing, hop assembly, the JSON form."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from datetime import UTC, datetime

import pytest

from ntpmon.traceroute import errqueue as eq
from ntpmon.traceroute.errqueue import ErrKind
from ntpmon.traceroute.result import (
    Hop,
    HopChange,
    ProbeOutcome,
    StopReason,
    TraceFormatError,
    TraceResult,
    assemble_hops,
    from_json,
    path_changes,
    stamping_of,
    stop_reason,
    to_json,
)


def sockaddr_in(address: str) -> bytes:
    return struct.pack("=H2s4s8x", socket.AF_INET, b"\0\0", ipaddress.IPv4Address(address).packed)


def sockaddr_in6(address: str) -> bytes:
    packed = ipaddress.IPv6Address(address).packed
    return struct.pack("=H2s4s16sI", socket.AF_INET6, b"\0\0", b"\0" * 4, packed, 0)


def extended_err(err: int, origin: int, icmp_type: int, code: int, offender: bytes) -> bytes:
    return struct.pack("=IBBBBII", err, origin, icmp_type, code, 0, 0, 0) + offender


def test_ipv4_time_exceeded_names_the_router() -> None:
    data = extended_err(errno.EHOSTUNREACH, 2, 11, 0, sockaddr_in("198.51.100.7"))
    err = eq.parse_extended_err(data)
    assert err.offender == "198.51.100.7"
    assert err.kind is ErrKind.TIME_EXCEEDED
    assert (err.errno, err.origin, err.type, err.code) == (errno.EHOSTUNREACH, 2, 11, 0)


def test_ipv6_port_unreachable_is_the_destination() -> None:
    data = extended_err(errno.ECONNREFUSED, 3, 1, 4, sockaddr_in6("2001:db8::123"))
    err = eq.parse_extended_err(data)
    assert err.offender == "2001:db8::123"
    assert err.kind is ErrKind.PORT_UNREACHABLE


def test_ipv4_mapped_offender_is_shown_as_ipv4() -> None:
    data = extended_err(errno.EHOSTUNREACH, 3, 3, 0, sockaddr_in6("::ffff:192.0.2.9"))
    assert eq.parse_extended_err(data).offender == "192.0.2.9"


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "kind"),
    [
        (2, 3, 3, ErrKind.PORT_UNREACHABLE),
        (2, 3, 1, ErrKind.UNREACHABLE),
        (2, 3, 13, ErrKind.UNREACHABLE),
        (2, 12, 0, ErrKind.OTHER_ICMP),
        (3, 3, 0, ErrKind.TIME_EXCEEDED),
        (3, 1, 0, ErrKind.UNREACHABLE),
        (3, 2, 0, ErrKind.OTHER_ICMP),
        (4, 0, 0, ErrKind.TX_STAMP),
        (1, 0, 0, ErrKind.LOCAL),
    ],
)
def test_classification(origin: int, icmp_type: int, code: int, kind: ErrKind) -> None:
    assert eq.classify(origin, icmp_type, code) is kind


def test_timestamp_and_local_errors_have_no_offender() -> None:
    stamp = eq.parse_extended_err(extended_err(errno.ENOMSG, 4, 0, 0, b"\0" * 16))
    assert stamp.offender is None
    assert stamp.kind is ErrKind.TX_STAMP
    local = eq.parse_extended_err(extended_err(errno.EMSGSIZE, 1, 0, 0, sockaddr_in("192.0.2.1")))
    assert local.offender is None


def test_short_or_unknown_data() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        eq.parse_extended_err(b"\0" * 15)
    assert eq.parse_sockaddr(b"\0\0") is None
    assert eq.parse_sockaddr(struct.pack("=H", socket.AF_INET) + b"\0" * 4) is None
    no_offender = eq.parse_extended_err(extended_err(errno.EHOSTUNREACH, 2, 11, 0, b""))
    assert no_offender.offender is None


def test_found_among_ancillary_data_of_either_family() -> None:
    v4 = extended_err(errno.EHOSTUNREACH, 2, 11, 0, sockaddr_in("192.0.2.1"))
    v6 = extended_err(errno.EHOSTUNREACH, 3, 3, 0, sockaddr_in6("2001:db8::1"))
    timestamping = (socket.SOL_SOCKET, 37, b"\0" * 48)
    found4 = eq.extended_err_from_ancillary([timestamping, (eq.SOL_IP, eq.IP_RECVERR, v4)])
    found6 = eq.extended_err_from_ancillary([(eq.SOL_IPV6, eq.IPV6_RECVERR, v6)])
    assert found4 is not None
    assert found4.offender == "192.0.2.1"
    assert found6 is not None
    assert found6.offender == "2001:db8::1"
    assert eq.extended_err_from_ancillary([timestamping]) is None
    assert eq.extended_err_from_ancillary([(eq.SOL_IP, eq.IP_RECVERR, b"short")]) is None


# -- hop assembly ---------------------------------------------------------------------------------
def te(ttl: int, who: str, rtt_us: int = 100, *, kernel: bool = True) -> ProbeOutcome:
    return ProbeOutcome(ttl, who, ErrKind.TIME_EXCEEDED, rtt_us * 1000, kernel)


def lost(ttl: int) -> ProbeOutcome:
    return ProbeOutcome(ttl, None, None, None)


def reply(ttl: int, who: str, rtt_us: int = 300) -> ProbeOutcome:
    return ProbeOutcome(ttl, who, None, rtt_us * 1000, True)


def test_hops_in_ttl_order_with_gaps_and_lost_probes() -> None:
    outcomes = [
        te(1, "192.0.2.1", 10),
        lost(1),
        te(1, "192.0.2.1", 12),
        *(lost(2) for _ in range(3)),
        reply(3, "203.0.113.5"),
        reply(3, "203.0.113.5", 310),
        lost(3),
    ]
    hops = assemble_hops(reversed(outcomes))
    assert [h.ttl for h in hops] == [1, 2, 3]
    assert [h.address for h in hops] == ["192.0.2.1", None, "203.0.113.5"]
    assert hops[0].rtts_us == (12, None, 10)
    assert hops[1].gap
    assert hops[1].rtts_us == (None, None, None)
    assert [h.reached for h in hops] == [False, False, True]


def test_most_frequent_responder_wins_and_others_are_kept() -> None:
    hop = assemble_hops([te(4, "192.0.2.8"), te(4, "192.0.2.9"), te(4, "192.0.2.9")])[0]
    assert hop.address == "192.0.2.9"
    assert hop.others == ("192.0.2.8",)
    tie = assemble_hops([te(4, "192.0.2.8"), te(4, "192.0.2.9")])[0]
    assert tie.address == "192.0.2.8"


def test_hops_after_the_destination_or_an_unreachable_are_cut() -> None:
    reached = assemble_hops([te(1, "192.0.2.1"), reply(2, "203.0.113.5"), reply(3, "203.0.113.5")])
    assert len(reached) == 2
    unreachable = ProbeOutcome(2, "198.51.100.1", ErrKind.UNREACHABLE, 5000, True)
    ended = assemble_hops([te(1, "192.0.2.1"), unreachable, te(3, "198.51.100.9")])
    assert [h.address for h in ended] == ["192.0.2.1", "198.51.100.1"]
    assert ended[-1].note == "unreachable"
    assert not ended[-1].reached
    port = ProbeOutcome(2, "203.0.113.5", ErrKind.PORT_UNREACHABLE, 5000, True)
    assert assemble_hops([port])[0].reached


def test_stop_rules() -> None:
    gap = Hop(1, None, (None,))
    hop = Hop(1, "192.0.2.1", (5,))
    rules = {"max_hops": 30, "max_silent": 3, "out_of_time": False}
    assert stop_reason([hop], **rules) is None
    assert stop_reason([Hop(2, "203.0.113.5", (1,), reached=True)], **rules) == StopReason.REACHED
    assert stop_reason([Hop(2, "a", (1,), note="unreachable")], **rules) == StopReason.UNREACHABLE
    assert stop_reason([hop, gap, gap], **rules) is None
    assert stop_reason([hop, gap, gap, gap], **rules) == StopReason.SILENT
    assert stop_reason([Hop(30, "192.0.2.1", (5,))], **rules) == StopReason.MAX_HOPS
    assert stop_reason([hop], **{**rules, "out_of_time": True}) == StopReason.TIME_BUDGET
    assert stop_reason([], **rules) is None


def test_stamping_summary() -> None:
    assert stamping_of([te(1, "a"), lost(2)]) == "kernel"
    assert stamping_of([te(1, "a"), te(2, "b", kernel=False)]) == "mixed"
    assert stamping_of([te(1, "a", kernel=False)]) == "user"
    assert stamping_of([lost(1)]) == "user"


# -- JSON ------------------------------------------------------------------------------------------
def sample() -> TraceResult:
    return TraceResult(
        target="203.0.113.5",
        port=123,
        started=datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=UTC),
        hops=(
            Hop(1, "192.0.2.1", (10, None, 12), others=("192.0.2.2",)),
            Hop(2, None, (None, None, None)),
            Hop(3, "203.0.113.5", (300, 310, None), reached=True),
        ),
        stop=StopReason.REACHED,
        stamping="kernel",
        source="192.0.2.100",
    )


def test_json_round_trip() -> None:
    doc = to_json(sample())
    assert doc["reached"] is True
    assert doc["hops"][1] == {"ttl": 2, "addr": None, "rtt_us": [None, None, None]}
    assert from_json(doc) == sample()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"v": 2}, "format"),
        ({"target": "example.org"}, "not an address"),
        ({"stop": "bored"}, "stop reason"),
        ({"started": "yesterday"}, "ISO 8601"),
        ({"started": "2026-11-26T12:00:00"}, "time zone"),
        ({"hops": [{"ttl": 0, "addr": None}]}, "ttl"),
        ({"hops": [{"ttl": 1, "addr": "x"}]}, "not an address"),
        ({"hops": [{"ttl": 1, "addr": None, "rtt_us": [-1]}]}, "rtt_us"),
        ({"hops": [{"ttl": 1, "addr": None, "rtt_us": [None] * 11}]}, "at most"),
        ({"hops": [{"ttl": 2, "addr": None}, {"ttl": 1, "addr": None}]}, "increasing"),
        ({"hops": [{"ttl": i, "addr": None} for i in range(1, 70)]}, "at most 64"),
        ({"hops": [{"ttl": 1, "addr": None, "note": "<b>"}]}, "note"),
        ({"port": True}, "port"),
        ({"stamping": "sundial"}, "stamping"),
    ],
)
def test_malformed_documents_are_refused(patch: dict[str, object], message: str) -> None:
    doc = {**to_json(sample()), **patch}
    with pytest.raises(TraceFormatError, match=message):
        from_json(doc)
    with pytest.raises(TraceFormatError):
        from_json(["not", "an", "object"])


def test_path_changes_ignore_gaps_but_not_new_or_lost_hops() -> None:
    before = ("192.0.2.1", "198.51.100.1", "203.0.113.5")
    assert path_changes(before, before) == []
    assert path_changes(before, ("192.0.2.1", None, "203.0.113.5")) == []
    assert path_changes(before, ("192.0.2.1", "198.51.100.9", "203.0.113.5")) == [
        HopChange(2, "198.51.100.1", "198.51.100.9")
    ]
    assert path_changes(before, ("192.0.2.1", "198.51.100.1", "198.51.100.2", "203.0.113.5")) == [
        HopChange(3, "203.0.113.5", "198.51.100.2"),
        HopChange(4, None, "203.0.113.5"),
    ]
