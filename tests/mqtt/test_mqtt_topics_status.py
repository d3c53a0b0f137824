"""Topics and status messages shared by agent and server (agent.md §13.1/§13.3, api.md §10.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ntpmon.common.version import version
from ntpmon.mqttcm import TopicError, Topics, client_id_from_name, decode_status, encode_status
from ntpmon.mqttcm.status import StatusDecodeError, make_status, rfc3339_seconds

NAME = "uspao1-21wase0.devel.mon.ntppool.dev"


def test_topic_names() -> None:
    t = Topics("devel")
    assert t.status(NAME) == f"/devel/monitors/status/{NAME}/status"
    assert t.status_api_test(NAME) == f"/devel/monitors/status/{NAME}/api-test"
    assert t.request(NAME, "ntp") == f"/devel/monitors/requests/{NAME}/ntp"
    assert t.request_subscription(NAME) == f"/devel/monitors/requests/{NAME}/+"
    assert t.data_response(NAME, "01ABC") == f"/devel/monitors/data/{NAME}/01ABC"
    assert t.everything() == "/devel/monitors/#"
    assert Topics("beta").prefix == "/test/monitors"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (f"/devel/monitors/requests/{NAME}/ntp", ("ntp", NAME)),
        (f"/devel/monitors/requests/{NAME}/metrics", ("metrics", NAME)),
        ("/devel/monitors/data/uspao-abc/X", ("X", "uspao-abc")),
    ],
)
def test_parse_request_topic(topic: str, expected: tuple[str, str]) -> None:
    assert Topics("devel").parse_request_topic(topic) == expected


def test_parse_request_topic_too_short() -> None:
    with pytest.raises(TopicError, match='could not parse request topic: "/x"'):
        Topics("devel").parse_request_topic("/devel/monitors/x")


@pytest.mark.parametrize(
    ("topic", "name"),
    [
        ("/devel/monitors/status/uspao-abc/status", "uspao-abc"),
        ("/devel/monitors/status/uspao-abc/api-test", None),
        ("/devel/monitors/status/status", None),
        ("/test/monitors/status/uspao-abc/status", None),
        ("/devel/monitors/data/uspao-abc/status", None),
    ],
)
def test_parse_status_topic(topic: str, name: str | None) -> None:
    assert Topics("devel").parse_status_topic(topic) == name


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("/devel/monitors/data/uspao-abc/X", ("uspao-abc", "X")),
        ("/devel/monitors/data/uspao-abc/X/extra", ("uspao-abc", "X")),
        ("/devel/monitors/data/onlyone", None),
        ("/devel/monitors/data/", None),
        ("/devel/monitors/status/a/b", None),
    ],
)
def test_parse_data_topic(topic: str, expected: tuple[str, str] | None) -> None:
    t = Topics("devel")
    if expected is None:
        with pytest.raises(TopicError):
            t.parse_data_topic(topic)
    else:
        assert t.parse_data_topic(topic) == expected


@pytest.mark.parametrize(
    ("name", "client_id"),
    [
        (NAME, "uspao1-21wase0.devel"),
        ("api.devel.mon.ntppool.dev", "api.devel"),
        ("api.mon.ntppool.dev", "api"),
        ("other.example.com", "other.example.com"),
    ],
)
def test_client_id_from_name(name: str, client_id: str) -> None:
    assert client_id_from_name(name) == client_id


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2025, 6, 21, 17, 0, 0, 999999, tzinfo=UTC), "2025-06-21T17:00:00Z"),
        (
            datetime(2025, 6, 21, 10, 0, 0, tzinfo=timezone(timedelta(hours=-7))),
            "2025-06-21T10:00:00-07:00",
        ),
    ],
)
def test_rfc3339_seconds(when: datetime, text: str) -> None:
    assert rfc3339_seconds(when) == text


def test_status_round_trip() -> None:
    msg = make_status(True, datetime(2025, 6, 21, 17, 0, 0, 5, tzinfo=UTC))
    payload = encode_status(msg)
    doc = json.loads(payload)
    assert doc["Online"] is True
    assert doc["Version"]["Version"] == version()
    assert doc["UpdatedMQ"] == "2025-06-21T17:00:00Z"
    back = decode_status(payload)
    assert back == msg
    assert back.version == version()


def test_status_decodes_upstream_payload_and_minimal_payloads() -> None:
    upstream = b'{"Online":false,"Version":{"Version":"v4.1.5","GitRev":"abc"},"UpdatedMQ":"x"}'
    msg = decode_status(upstream)
    assert (msg.online, msg.version, msg.version_info["GitRev"]) == (False, "v4.1.5", "abc")
    assert decode_status(b'{"Online":true}').version == ""


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1]", b'{"Online":"yes"}', b'{"Online":true,"Version":"v4"}', b"\xff"],
)
def test_status_decode_rejects(payload: bytes) -> None:
    with pytest.raises(StatusDecodeError):
        decode_status(payload)
