"""The agent's ad-hoc request handling (agent.md §13.4, §13.5)."""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from mqtt_testkit import SHARED_BROKER, Watcher, running_agent, unique_name, wait_for
from opentelemetry import trace

from ntpmon.agent.mqtt.client import (
    go_rfc3339_nano,
    ntp_reply,
    ntp_response_json,
    parse_ntp_request,
)
from ntpmon.agent.mqtt.probe import adhoc_probe
from ntpmon.mqttcm.connection import parent_context, publish_properties
from ntpmon.mqttcm.topics import Topics
from ntpmon.ntp.check import ProbeConfig, check_host
from ntpmon.ntp.sntp import NTPResponse
from ntpmon.testing.ntpserver import NTPResponder

RESPONSE = NTPResponse(
    clock_offset_ns=-1_500_000,
    rtt_ns=250_000,
    stratum=2,
    leap=0,
    version=4,
    reference_id=0xC0A80001,
    kiss_code="",
    precision_ns=953,
    poll_ns=8_000_000_000,
    root_delay_ns=1_000_000,
    root_dispersion_ns=2_000_000,
    root_distance_ns=2_625_000,
    min_error_ns=0,
    time=datetime(2026, 11, 26, 12, 0, 0, 123450, tzinfo=UTC),
    reference_time=datetime(2026, 11, 26, 11, 59, 0, tzinfo=UTC),
)


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC), "2026-11-26T12:00:00Z"),
        (datetime(2026, 11, 26, 12, 0, 0, 123450, tzinfo=UTC), "2026-11-26T12:00:00.12345Z"),
        (datetime(2026, 11, 26, 12, 0, 0, 1, tzinfo=UTC), "2026-11-26T12:00:00.000001Z"),
    ],
)
def test_go_rfc3339_nano(when: datetime, text: str) -> None:
    assert go_rfc3339_nano(when) == text


def test_ntp_response_uses_beevik_names_and_go_encodings() -> None:
    assert ntp_response_json(RESPONSE) == {
        "Time": "2026-11-26T12:00:00.12345Z",
        "ClockOffset": -1_500_000,
        "RTT": 250_000,
        "Precision": 953,
        "Version": 4,
        "Stratum": 2,
        "ReferenceID": 0xC0A80001,
        "ReferenceTime": "2026-11-26T11:59:00Z",
        "RootDelay": 1_000_000,
        "RootDispersion": 2_000_000,
        "RootDistance": 2_625_000,
        "Leap": 0,
        "MinError": 0,
        "KissCode": "",
        "Poll": 8_000_000_000,
    }


@pytest.mark.parametrize(
    ("outcome", "keys", "error"),
    [
        ((None, RESPONSE, None), {"NTP"}, None),
        (
            (None, RESPONSE, "bad stratum 16 (referenceID: 0x0, \0\0\0\0)"),
            {"NTP", "Error"},
            "bad stratum 16 (referenceID: 0x0, \0\0\0\0)",
        ),
        ((None, None, "network: i/o timeout"), {"Error"}, "network: i/o timeout"),
    ],
)
def test_ntp_reply(outcome: tuple, keys: set[str], error: str | None) -> None:
    doc = json.loads(ntp_reply(outcome))
    assert set(doc) == keys
    assert doc.get("Error") == error


@pytest.mark.parametrize(
    ("payload", "ip"),
    [(b'{"IP":"192.0.2.1"}', "192.0.2.1"), (b'{"IP":"2001:db8::1","x":1}', "2001:db8::1")],
)
def test_parse_ntp_request(payload: bytes, ip: str) -> None:
    assert parse_ntp_request(payload) == ipaddress.ip_address(ip)


@pytest.mark.parametrize("payload", [b"nope", b"[]", b'{"ip":"192.0.2.1"}', b'{"IP":"x"}'])
def test_parse_ntp_request_refuses(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_ntp_request(payload)


def test_adhoc_probe_picks_matching_family_and_one_sample() -> None:
    v4 = ProbeConfig(samples=5, ip=ipaddress.ip_address("192.0.2.1"))
    v6 = ProbeConfig(samples=5, ip=ipaddress.ip_address("2001:db8::1"))
    used: list[ProbeConfig] = []

    def record(_ip: object, cfg: ProbeConfig) -> tuple:
        used.append(cfg)
        return None, None, "recorded"

    probe = adhoc_probe(lambda: [v4, v6], record)
    probe(ipaddress.ip_address("2001:db8::99"))
    probe(ipaddress.ip_address("198.51.100.1"))
    assert [(c.ip, c.samples) for c in used] == [(v6.ip, 1), (v4.ip, 1)]
    assert v4.samples == v6.samples == 5  # the shared configs are not mutated
    assert adhoc_probe(lambda: [], record)(ipaddress.ip_address("192.0.2.1")) is None


def test_adhoc_probe_with_real_engine() -> None:
    with NTPResponder("127.0.0.1") as responder:
        cfg = ProbeConfig(samples=3, port=responder.port, allow_loopback=True)
        _status, response, error = adhoc_probe(lambda: [cfg], check_host)(
            ipaddress.ip_address("127.0.0.1")
        )
        assert error is None and response is not None
        assert response.stratum == responder.settings.stratum
        assert responder.requests == 1


def test_bad_requests_are_dropped_and_good_ones_answered(prefix: str) -> None:
    """No response topic, bad JSON, unknown type: dropped; the next good request is answered."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    name = unique_name()
    topics = Topics("devel", prefix)
    answers: list[bytes] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"req-{name}", protocol=paho.MQTTv5)
    client.on_message = lambda _c, _u, m: answers.append(bytes(m.payload))
    client.connect(SHARED_BROKER.host, SHARED_BROKER.port)
    client.subscribe(topics.data_response(name, "+"), qos=1)
    client.loop_start()
    reply_to = publish_properties(response_topic=topics.data_response(name, "r1"))
    try:
        with running_agent(
            SHARED_BROKER, prefix, name, lambda ip: (None, None, f"probed {ip}")
        ) as agent:
            # the online status goes out once the request subscription was granted
            status = Watcher(SHARED_BROKER, topics.status(name))
            wait_for(lambda: status.messages, what="online status")
            status.close()
            client.publish(topics.request(name, "ntp"), b'{"IP":"192.0.2.1"}', qos=1)
            client.publish(topics.request(name, "ntp"), b"garbage", qos=1, properties=reply_to)
            client.publish(topics.request(name, "traceroute"), b"", qos=1, properties=reply_to)
            client.publish(
                topics.request(name, "ntp"), b'{"IP":"192.0.2.7"}', qos=1, properties=reply_to
            ).wait_for_publish(5)
            wait_for(lambda: answers, what="the good request's answer")
            time.sleep(0.2)
            assert [json.loads(a) for a in answers] == [{"Error": "probed 192.0.2.7"}]
            assert agent.handled == {"ntp": 1, "metrics": 0, "traceroute": 0}
    finally:
        client.loop_stop()
        client.disconnect()


def _message(**user: str) -> paho.MQTTMessage:
    message = paho.MQTTMessage(topic=b"/devel/monitors/requests/x/ntp")
    message.properties = publish_properties(user_properties=list(user.items()))
    return message


def test_parent_context_from_user_properties() -> None:
    ctx = parent_context(
        _message(TraceID="0af7651916cd43dd8448eb211c80319c", SpanID="b7ad6b7169203331")
    )
    assert ctx is not None
    span = trace.get_current_span(ctx).get_span_context()
    assert (span.trace_id, span.span_id, span.is_remote) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        True,
    )


@pytest.mark.parametrize(
    "props",
    [
        {},
        {"TraceID": "", "SpanID": ""},
        {"TraceID": "zz", "SpanID": "01"},
        {"TraceID": "0", "SpanID": "0"},
    ],
)
def test_parent_context_absent_or_invalid(props: dict[str, str]) -> None:
    assert parent_context(_message(**props)) is None


def test_online_status_is_republished(prefix: str) -> None:
    name = unique_name()
    topics = Topics("devel", prefix)
    watcher = Watcher(SHARED_BROKER, topics.status(name))
    try:
        with running_agent(SHARED_BROKER, prefix, name, lambda ip: None, status_interval_s=0.2):
            wait_for(lambda: len(watcher.messages) >= 3, what="three online status messages")
        # the clean stop's offline status follows the online ones
        wait_for(lambda: json.loads(watcher.payloads()[-1])["Online"] is False, what="offline")
        statuses = [json.loads(p) for p in watcher.payloads()]
        assert all(s["Online"] for s in statuses[:3])
    finally:
        watcher.close()
