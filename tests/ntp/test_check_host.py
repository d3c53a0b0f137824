"""check_host over real UDP against the test responder, on 127.0.0.1 and ::1.

Every outcome class of spec agent.md §11.4 with its exact error text, the early stop on
kiss-o'-death and bad stratum, the sample count and spacing, and the source-address choice.
"""

from __future__ import annotations

import gc
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.ntp import sntp
from ntpmon.ntp.check import ProbeConfig, check_host, status_for_submission
from ntpmon.ntp.instruments import NO_PROBE_INSTRUMENTS, ProbeInstruments
from ntpmon.pb.monitor.v2.monitor_manager_pb2 import Server
from ntpmon.testing.chronyd import free_udp_port
from ntpmon.testing.ntpserver import Behaviour, NTPResponder, ResponderSettings

from .conftest import loopback_config, no_sleep

MS = 1_000_000
FINISHED = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)

# (id, responder settings, error, no_response, offset present, stratum, leap)
Outcome = tuple[str, dict, str | None, bool, bool, int, int]


def reply(name: str, changes: dict, error: str | None, stratum: int = 2, leap: int = 0) -> Outcome:
    """A reply the probe classifies: no_response is false and the offset is present."""
    return (name, changes, error, False, True, stratum, leap)


def failure(name: str, behaviour: Behaviour, error: str) -> Outcome:
    """No usable reply: no_response, no offset, stratum 0."""
    return (name, {"behaviour": behaviour}, error, True, False, 0, 0)


OUTCOMES = [
    reply("good", {"offset": 0.25, "stratum": 2}, None),
    reply("leap-3-is-no-error", {"leap": 3}, None, leap=3),
    reply("old-version-accepted", {"version": 3}, None),
    ("kiss-rate", {"kiss": "RATE"}, "RATE", False, False, 0, 0),
    reply("kiss-deny", {"kiss": "DENY"}, "DENY", stratum=0),
    reply("kiss-rstr", {"kiss": "RSTR"}, "RSTR", stratum=0),
    reply("kiss-other", {"kiss": "STEP"}, "STEP", stratum=0),
    reply(
        "stratum-16-init",
        {"stratum": 16, "reference_id": "INIT"},
        "bad stratum 16 (referenceID: 0x494e4954, INIT)",
        stratum=16,
    ),
    reply(
        "stratum-16-zero-refid",
        {"stratum": 16, "reference_id": 0},
        "bad stratum 16 (referenceID: 0x0, \0\0\0\0)",
        stratum=16,
    ),
    reply(
        "stratum-0-unprintable",
        {"stratum": 0, "reference_id": 0xC0A80001},
        "bad stratum 0 (referenceID: 0xc0a80001)",
        stratum=0,
    ),
    reply("stratum-11", {"stratum": 11}, "bad stratum 11", stratum=11),
    reply("stratum-15", {"stratum": 15}, "bad stratum 15", stratum=15),
    reply("stratum-10-ok", {"stratum": 10}, None, stratum=10),
    failure("wrong-origin", Behaviour.WRONG_ORIGIN, "server response didn't match request"),
    failure("truncated", Behaviour.TRUNCATED, "unexpected EOF"),
    failure("empty", Behaviour.EMPTY, "EOF"),
    failure("wrong-mode", Behaviour.WRONG_MODE, "invalid mode in response"),
    failure("zero-transmit", Behaviour.ZERO_TRANSMIT, "invalid transmit time in response"),
    failure("ticked-backwards", Behaviour.TICKED_BACKWARDS, "server clock ticked backwards"),
    failure("no-answer", Behaviour.NO_ANSWER, "network: i/o timeout"),
]


@pytest.mark.parametrize(
    ("changes", "error", "no_response", "has_offset", "stratum", "leap"),
    [row[1:] for row in OUTCOMES],
    ids=[row[0] for row in OUTCOMES],
)
def test_outcome_classes(
    responder: NTPResponder,
    changes: dict,
    error: str | None,
    no_response: bool,
    has_offset: bool,
    stratum: int,
    leap: int,
) -> None:
    responder.configure(**changes)
    result = check_host(responder.host, loopback_config(responder), sleep=no_sleep)
    status, response, err = result
    assert err == error
    assert status is not None
    assert status.no_response is no_response
    assert status.HasField("offset") is has_offset
    assert status.stratum == stratum
    assert status.leap == leap
    assert status.ip_bytes == ipaddress.ip_address(responder.host).packed
    assert (response is not None) is (not no_response)
    if changes.get("offset"):
        assert abs(status.offset.ToNanoseconds() - 250 * MS) < 5 * MS

    server = Server(ip_bytes=status.ip_bytes, ticket=b"opaque-ticket")
    submitted = status_for_submission(server, result, now=lambda: FINISHED)
    assert submitted.ticket == b"opaque-ticket"
    assert submitted.error == (error or "")
    assert submitted.no_response is no_response
    assert submitted.ts.ToDatetime(tzinfo=UTC) == FINISHED
    assert submitted.HasField("offset") is has_offset


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_closed_port_is_connection_refused(host: str) -> None:
    cfg = ProbeConfig(samples=2, port=free_udp_port(host), allow_loopback=True)
    result = check_host(host, cfg, sleep=no_sleep)
    status, response, error = result
    assert error == "network: read: connection refused"
    assert status is not None and status.no_response and response is None
    submitted = status_for_submission(Server(ip_bytes=status.ip_bytes, ticket=b"t"), result)
    assert submitted.no_response and submitted.error == error


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("192.168.1.1", "private address"),
        ("224.0.0.1", "multicast address"),
        ("not-an-ip", "invalid IP"),
    ],
)
def test_filtered_addresses_are_never_probed(
    responder: NTPResponder, host: str, error: str
) -> None:
    cfg = ProbeConfig(samples=1, port=responder.port)  # no allow_loopback: production rules
    result = check_host(host, cfg, sleep=no_sleep)
    assert result == (None, None, error)
    assert responder.requests == 0
    packed = ipaddress.ip_address("192.0.2.9").packed
    submitted = status_for_submission(Server(ip_bytes=packed, ticket=b"t"), result)
    assert submitted.ip_bytes == packed
    assert submitted.no_response and submitted.error == error
    assert not submitted.HasField("offset")


def test_three_good_samples_pick_the_lowest_rtt(responder: NTPResponder) -> None:
    """Scenario 19.7.4: three queries, two 2-second sleeps, the lowest-rtt sample wins."""
    responder.script(
        ResponderSettings(delay=0.04), ResponderSettings(delay=0.0), ResponderSettings(delay=0.08)
    )
    sleeps: list[float] = []
    status, response, error = check_host(
        responder.host, loopback_config(responder, samples=3), sleep=sleeps.append
    )
    assert responder.requests == 3
    assert sleeps == [2.0, 2.0]
    assert error is None and response is not None and status is not None
    assert status.rtt.ToNanoseconds() == response.rtt_ns < 40 * MS


@pytest.mark.parametrize(
    ("second", "error", "has_offset"),
    [
        (ResponderSettings(kiss="DENY"), "DENY", True),
        (ResponderSettings(kiss="RATE"), "RATE", False),
        (
            ResponderSettings(stratum=16, reference_id="INIT"),
            "bad stratum 16 (referenceID: 0x494e4954, INIT)",
            True,
        ),
        (ResponderSettings(stratum=12), "bad stratum 12", True),
    ],
)
def test_kiss_or_bad_stratum_stops_the_probe_and_wins(
    responder: NTPResponder, second: ResponderSettings, error: str, has_offset: bool
) -> None:
    """Scenario 19.7.5: [ok, DENY] → DENY with its offset after 2 queries (of 3)."""
    responder.script(ResponderSettings(), second)
    status, _response, err = check_host(
        responder.host, loopback_config(responder, samples=3), sleep=no_sleep
    )
    assert err == error
    assert responder.requests == 2
    assert status is not None and not status.no_response
    assert status.HasField("offset") is has_offset


def test_a_reply_beats_a_protocol_error(responder: NTPResponder) -> None:
    responder.script(ResponderSettings(behaviour=Behaviour.WRONG_ORIGIN), ResponderSettings())
    status, response, error = check_host(
        responder.host, loopback_config(responder, samples=2), sleep=no_sleep
    )
    assert error is None and response is not None and status is not None
    assert status.HasField("offset")


def test_zero_samples_means_three(responder: NTPResponder) -> None:
    """Scenario 19.7.7 (first half)."""
    check_host(responder.host, loopback_config(responder, samples=0), sleep=no_sleep)
    assert responder.requests == 3


@pytest.mark.parametrize(
    ("ip", "ip_nat", "source"),
    [
        ("198.51.100.7", "127.0.0.7", "127.0.0.7"),  # the NAT address is bound
        ("127.0.0.8", None, "127.0.0.8"),  # no NAT: the monitor's own address
        (b"\x7f\x00\x00\x09", b"", "127.0.0.9"),  # packed bytes as in GetConfigResponse
        (None, "127.0.0.7", "127.0.0.1"),  # no valid ip: no bind, the NAT address is ignored
    ],
)
def test_source_address(ip: object, ip_nat: object, source: str) -> None:
    with NTPResponder("127.0.0.1") as server:
        cfg = ProbeConfig(samples=2, ip=ip, ip_nat=ip_nat, port=server.port, allow_loopback=True)
        _status, _response, error = check_host("127.0.0.1", cfg, sleep=no_sleep)
        assert error is None
        assert server.clients == [source, source]


def test_unbindable_nat_address_is_a_network_error() -> None:
    """Scenario 19.7.7 with the spec's addresses: every query tries to bind 10.0.0.7."""
    with NTPResponder("127.0.0.1") as server:
        cfg = ProbeConfig(
            samples=2, ip="198.51.100.7", ip_nat="10.0.0.7", port=server.port, allow_loopback=True
        )
        status, response, error = check_host("127.0.0.1", cfg, sleep=no_sleep)
        assert error == "network: bind: cannot assign requested address"
        assert status is not None and status.no_response and response is None
        assert server.requests == 0


@pytest.fixture(scope="module")
def hostile_v4():
    with NTPResponder("127.0.0.1") as server:
        yield server


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=120), echo=st.booleans())
def test_a_hostile_reply_never_raises(hostile_v4: NTPResponder, raw: bytes, echo: bool) -> None:
    hostile_v4.configure(behaviour=Behaviour.RAW, raw=raw, echo_origin=echo)
    status, _response, error = check_host(
        hostile_v4.host, loopback_config(hostile_v4), sleep=no_sleep
    )
    assert status is not None
    assert error is None or isinstance(error, str)
    if error is None:
        assert not status.no_response and status.HasField("offset")


@pytest.mark.parametrize(
    ("target", "source", "error"),
    [
        ("::1", "127.0.0.1", "network: bind: address family not supported by protocol"),
        ("127.0.0.1", "::1", "network: bind: address family not supported by protocol"),
        ("127.0.0.1", "198.51.100.254", "network: bind: cannot assign requested address"),
    ],
)
def test_source_address_errors(target: str, source: str, error: str) -> None:
    with NTPResponder(target) as server:
        cfg = ProbeConfig(samples=1, ip=source, port=server.port, allow_loopback=True)
        status, _response, err = check_host(target, cfg, sleep=no_sleep)
        assert err == error
        assert status is not None and status.no_response
        assert server.requests == 0


def test_query_refuses_a_source_that_is_not_an_address() -> None:
    with pytest.raises(sntp.NTPNetworkError, match=r"^bind: invalid argument$"):
        sntp.query("127.0.0.1", port=free_udp_port(), local_address="localhost")


def test_query_is_called_with_the_contract_keywords() -> None:
    """An injected query sees exactly query(host, timeout=3.0, local_address=...) (§17)."""
    calls: list[tuple[str, dict]] = []

    def recording_query(host: str, **kwargs: object) -> sntp.NTPResponse:
        calls.append((host, dict(kwargs)))
        return sntp.query(host, **kwargs)  # port 123 on loopback: nobody listens, refused

    cfg = ProbeConfig(samples=2, ip="127.0.0.3", allow_loopback=True)
    _status, _response, error = check_host("127.0.0.1", cfg, query=recording_query, sleep=no_sleep)
    assert error == "network: read: connection refused"
    assert calls == [("127.0.0.1", {"timeout": 3.0, "local_address": "127.0.0.3"})] * 2


def test_an_unexpected_query_failure_is_a_failed_sample_not_a_crash() -> None:
    def broken_query(host: str, **kwargs: object) -> sntp.NTPResponse:
        raise RuntimeError("query bug")

    status, response, error = check_host(
        "192.0.2.1", ProbeConfig(samples=2), query=broken_query, sleep=no_sleep
    )
    assert error == "query bug"
    assert status is not None and status.no_response and response is None


def _telemetry_off() -> ProbeInstruments:
    return Telemetry("devel").probe_instruments


def _telemetry_recording_metrics() -> ProbeInstruments:
    # the SDK's providers with a metric reader; spans are made and dropped (no processor)
    return Telemetry("devel", metric_reader=InMemoryMetricReader()).probe_instruments


@pytest.mark.parametrize(
    "instruments",
    [lambda: NO_PROBE_INSTRUMENTS, _telemetry_off, _telemetry_recording_metrics],
    ids=["no-telemetry", "telemetry-off", "telemetry-sdk"],
)
def test_probes_leave_nothing_behind(instruments: Callable[[], ProbeInstruments]) -> None:
    """The probe's instruments are made once: a long-running agent does not grow per query.

    Each probe used to ask the global meter for a new counter, and OpenTelemetry's proxy
    provider keeps every meter and instrument it hands out (~600 bytes per query). Now they come
    from the Telemetry, made once; with telemetry off, from the API's no-op meter.
    """
    recorded = instruments()

    def refused(host: str, **kwargs: object) -> sntp.NTPResponse:
        raise sntp.NTPNetworkError("read: connection refused")

    cfg = ProbeConfig(samples=3, ip="192.0.2.9")  # with a source address: nothing is logged
    for _ in range(20):  # first-call caches (logging, tracing) settle
        check_host("192.0.2.1", cfg, query=refused, sleep=no_sleep, instruments=recorded)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(300):
        check_host("192.0.2.1", cfg, query=refused, sleep=no_sleep, instruments=recorded)
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # 1,200 queries; a leak adds thousands
