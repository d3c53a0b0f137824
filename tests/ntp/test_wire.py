"""Packet encoding and the fixed-point arithmetic (pure functions, spec agent.md §11.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntpmon.ntp import sntp, wire

S = wire.NS_PER_S
U64 = st.integers(min_value=0, max_value=wire.MASK64)
BASE_NS = int(datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()) * S


@pytest.mark.parametrize(
    ("q32", "ns"),
    [
        (0, 0),
        (1 << 32, S),
        (0x8000_0000, 500_000_000),
        (1, 0),  # 0.23 ns rounds down
        (3, 1),  # 0.70 ns rounds up
        (-(1 << 32), -S),
        (-3, -1),  # negatives convert by magnitude
        ((5 << 32) | 0x4000_0000, 5_250_000_000),
    ],
)
def test_q32_interval_to_ns(q32: int, ns: int) -> None:
    assert wire.q32_interval_to_ns(q32) == ns


@pytest.mark.parametrize(
    ("q16", "ns"),
    [
        (0, 0),
        (0x0001_0000, S),
        (0x8000, 500_000_000),
        (1, 15_259),
        (0xFFFF_FFFF, 65_535_999_984_741),
    ],
)
def test_q16_to_ns(q16: int, ns: int) -> None:
    assert wire.q16_to_ns(q16) == ns


@pytest.mark.parametrize(
    ("exponent", "ns"),
    [
        (0, S),
        (6, 64 * S),
        (-20, 953),
        (-1, 500_000_000),
        (-128, 0),
        (63, 0),
        (127, 0),
        (17, 131_072 * S),
    ],
)
def test_log2_seconds_to_ns(exponent: int, ns: int) -> None:
    assert wire.log2_seconds_to_ns(exponent) == ns


@pytest.mark.parametrize(
    ("unix_ns", "ntp_value"),
    [
        (0, wire.UNIX_TO_NTP_S << 32),
        (500_000_000, (wire.UNIX_TO_NTP_S << 32) | 0x8000_0000),
        # 2036-02-07 06:28:16 UTC is the end of era 0: NTP time wraps to zero.
        (2_085_978_496 * S, 0),
        (2_085_978_497 * S, 1 << 32),
    ],
)
def test_unix_ntp_conversion(unix_ns: int, ntp_value: int) -> None:
    assert wire.unix_ns_to_ntp(unix_ns) == ntp_value
    assert wire.ntp_to_unix_ns(ntp_value) == unix_ns


@given(st.integers(min_value=0, max_value=2**32 * S - 1))
def test_unix_ntp_round_trip_within_a_nanosecond(unix_ns: int) -> None:
    assert abs(wire.ntp_to_unix_ns(wire.unix_ns_to_ntp(unix_ns)) - unix_ns) <= 1


@given(U64)
def test_every_ntp_timestamp_maps_to_1970_through_2106(value: int) -> None:
    unix_ns = wire.ntp_to_unix_ns(value)
    assert 0 <= unix_ns < 2**32 * S


@given(
    st.builds(
        wire.Packet,
        leap=st.integers(0, 3),
        version=st.integers(0, 7),
        mode=st.integers(0, 7),
        stratum=st.integers(0, 255),
        poll=st.integers(-128, 127),
        precision=st.integers(-128, 127),
        root_delay=st.integers(0, 2**32 - 1),
        root_dispersion=st.integers(0, 2**32 - 1),
        reference_id=st.integers(0, 2**32 - 1),
        reference_ts=U64,
        origin_ts=U64,
        receive_ts=U64,
        transmit_ts=U64,
    )
)
def test_encode_decode_round_trip(packet: wire.Packet) -> None:
    data = wire.encode(packet)
    assert len(data) == wire.PACKET_LEN
    assert wire.decode(data) == packet


@given(st.binary(min_size=48, max_size=120))
def test_decode_encode_round_trip_of_any_header(data: bytes) -> None:
    assert wire.encode(wire.decode(data)) == data[:48]


@pytest.mark.parametrize(
    "bad", [{"leap": 4}, {"version": 8}, {"mode": -1}, {"stratum": 256}, {"poll": 128}]
)
def test_encode_refuses_out_of_range_fields(bad: dict) -> None:
    with pytest.raises((ValueError, OverflowError)):
        wire.encode(wire.Packet(**bad))


def test_build_request_is_a_48_byte_client_packet_with_a_random_nonce() -> None:
    packet, nonce = sntp.build_request()
    other_packet, other_nonce = sntp.build_request()
    assert len(packet) == 48
    assert packet[0] == 0x23  # LI 0, version 4, mode 3
    assert packet[1:4] == b"\x00\x00\x20"  # stratum 0, poll 0, precision 0x20
    assert packet[4:40] == bytes(36)
    assert int.from_bytes(packet[40:48], "big") == nonce
    assert nonce != other_nonce and packet != other_packet


@given(U64, U64, U64, U64)
def test_offset_truncates_toward_zero(org: int, rec: int, xmt: int, dst: int) -> None:
    # Mirroring the timestamps negates both halves exactly; only truncation toward zero (not
    # Python's floor division) keeps the result antisymmetric.
    a, b = wire.s64(rec - org), wire.s64(xmt - dst)
    if -(2**62) < a < 2**62 and -(2**62) < b < 2**62:
        assert wire.clock_offset(rec, org, dst, xmt) == -wire.clock_offset(org, rec, xmt, dst)


def test_truncation_is_visible_in_nanoseconds() -> None:
    # diff = -(2·0x8000_0001): half = -0x8000_0001 truncated; floor would give the same, so
    # use an odd diff whose floor crosses a ns rounding boundary: -3 units -> -1 unit -> 0 ns.
    assert wire.clock_offset(0, 0, 0, 3) == 0
    assert wire.clock_offset(0, 0, 3, 0) == 0


def _reply(
    nonce: int, *, rec_ns: int, xmt_ns: int, stratum: int = 2, refid: int = 0, mode: int = 4
) -> bytes:
    return wire.encode(
        wire.Packet(
            leap=0,
            version=4,
            mode=mode,
            stratum=stratum,
            reference_id=refid,
            origin_ts=nonce,
            receive_ts=wire.unix_ns_to_ntp(rec_ns),
            transmit_ts=wire.unix_ns_to_ntp(xmt_ns),
        )
    )


def test_parse_response_offset_and_rtt() -> None:
    """Scenario 19.7.2: T1 = 0, rec = 105 ms, xmt = 106 ms, T4 = 11 ms."""
    nonce = 0x0123_4567_89AB_CDEF
    data = _reply(nonce, rec_ns=BASE_NS + 105_000_000, xmt_ns=BASE_NS + 106_000_000)
    resp = sntp.parse_response(data, nonce=nonce, t1_ns=BASE_NS, t4_ns=BASE_NS + 11_000_000)
    assert resp.clock_offset_ns == pytest.approx(100_000_000, abs=1)
    assert resp.rtt_ns == pytest.approx(10_000_000, abs=1)
    assert resp.provable_error_ns == pytest.approx(95_000_000, abs=1)
    assert resp.time == datetime.fromtimestamp((BASE_NS + 106_000_000) / S, UTC)


def test_parse_response_negative_rtt_is_zero() -> None:
    nonce = 42
    data = _reply(nonce, rec_ns=BASE_NS + 105_000_000, xmt_ns=BASE_NS + 125_000_000)
    resp = sntp.parse_response(data, nonce=nonce, t1_ns=BASE_NS, t4_ns=BASE_NS + 11_000_000)
    assert resp.rtt_ns == 0
    assert resp.min_error_ns == pytest.approx(114_000_000, abs=1)  # xmt − dst


@pytest.mark.parametrize(
    ("stratum", "refid", "kiss"),
    [
        (0, b"DENY", "DENY"),
        (0, b"RATE", "RATE"),
        (0, bytes([0x41, 0x43, 0x53, 0x00]), ""),
        (0, bytes([0xC0, 0xA8, 0x00, 0x01]), ""),
        (1, b"DENY", ""),
    ],
)
def test_kiss_code(stratum: int, refid: bytes, kiss: str) -> None:
    nonce = 7
    data = _reply(
        nonce, rec_ns=BASE_NS, xmt_ns=BASE_NS, stratum=stratum, refid=int.from_bytes(refid, "big")
    )
    resp = sntp.parse_response(data, nonce=nonce, t1_ns=BASE_NS, t4_ns=BASE_NS)
    assert resp.kiss_code == kiss


@pytest.mark.parametrize(
    ("refid", "text"),
    [
        (0x494E4954, "0x494e4954, INIT"),
        (0, "0x0, \0\0\0\0"),
        (0xC0A80001, "0xc0a80001"),
        (0x7F7F0101, "0x7f7f0101, \x7f\x7f\x01\x01"),
    ],
)
def test_reference_id_text(refid: int, text: str) -> None:
    assert wire.reference_id_text(refid) == text


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: b"", "EOF"),
        (lambda d: d[:47], "unexpected EOF"),
        (lambda d: d[:1], "unexpected EOF"),
        (lambda d: bytes([0x23]) + d[1:], "invalid mode in response"),
        (lambda d: d[:40] + bytes(8), "invalid transmit time in response"),
        (lambda d: d[:24] + bytes(8) + d[32:], "server response didn't match request"),
        (lambda d: d[:32] + d[40:48] + d[32:40], "server clock ticked backwards"),
        # Order: a wrong mode is reported before a zero transmit time and a bad origin.
        (lambda d: bytes([0x23]) + d[1:24] + bytes(24), "invalid mode in response"),
        (lambda d: d[:24] + bytes(24), "invalid transmit time in response"),
    ],
)
def test_parse_response_errors_in_spec_order(mutate, error: str) -> None:
    nonce = 0xDEADBEEF
    good = _reply(nonce, rec_ns=BASE_NS + 1_000, xmt_ns=BASE_NS + 2_000)
    with pytest.raises(sntp.NTPProtocolError) as excinfo:
        sntp.parse_response(mutate(good), nonce=nonce, t1_ns=BASE_NS, t4_ns=BASE_NS + 3_000)
    assert str(excinfo.value) == error


@given(st.binary(max_size=200), U64, st.booleans(), U64, U64)
def test_hostile_bytes_only_ever_raise_protocol_errors(
    data: bytes, nonce: int, echo: bool, t1: int, t4: int
) -> None:
    if echo and len(data) >= 32:
        data = data[:24] + nonce.to_bytes(8, "big") + data[32:]
    t1_ns, t4_ns = t1 % (4 * 10**18), t4 % (4 * 10**18)
    try:
        resp = sntp.parse_response(data, nonce=nonce, t1_ns=t1_ns, t4_ns=t4_ns)
    except sntp.NTPProtocolError:
        return
    assert resp.rtt_ns >= 0
    assert resp.min_error_ns >= 0
    assert resp.provable_error_ns >= 0
