"""state.json encoding, merge-on-read and DataSha (agent.md §5.2)."""

from __future__ import annotations

import hashlib
import ipaddress
import json

import pytest

from ntpmon.agent.config.statefile import (
    IPConfig,
    MonitorData,
    State,
    StateFormatError,
    data_sha,
    decode_state,
    encode_state,
)


def test_data_sha_matches_spec_example() -> None:
    doc = {
        "Name": "n",
        "TLSName": "t",
        "IPv4": {"Status": "active", "IP": "192.0.2.1"},
        "IPv6": {"Status": "", "IP": None},
        "OtlpLogLevel": "",
    }
    compact = (
        '{"Name":"n","TLSName":"t","IPv4":{"Status":"active","IP":"192.0.2.1"},'
        '"IPv6":{"Status":"","IP":null},"OtlpLogLevel":""}'
    )
    assert data_sha(doc) == hashlib.sha256(compact.encode()).hexdigest()


def test_encode_key_order_indent_and_empty_family() -> None:
    state = State(
        "k",
        MonitorData(
            "n", "t", IPConfig("active", ipaddress.ip_address("192.0.2.1")), IPConfig("paused")
        ),
        "ab",
    )
    text = encode_state(state).decode()
    assert list(json.loads(text)) == ["API", "Data", "DataSha"]
    assert list(json.loads(text)["Data"]) == ["Name", "TLSName", "IPv4", "IPv6", "OtlpLogLevel"]
    assert '\n  "API": {\n    "APIKey": "k"' in text
    # a family without an address drops its status too
    assert json.loads(text)["Data"]["IPv6"] == {"Status": "", "IP": None}


def test_decode_merges_missing_keys_and_null_clears_ip() -> None:
    current = State(
        "old-key", MonitorData("name", "tls", IPConfig("active", ipaddress.ip_address("192.0.2.1")))
    )
    merged = decode_state(b'{"API":{"APIKey":"new"},"Data":{"IPv4":{"IP":null}}}', current)
    assert merged.api_key == "new"
    assert merged.data.name == "name"
    assert merged.data.ipv4.ip is None
    assert decode_state(b'{"Unknown": 1}', current) == current


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b'{"API":{"APIKey":"test"',
        b'{"API":{"APIKey":"test-key"\x00}',
        b"[]",
        b'{"API": "x"}',
        b'{"Data":{"IPv4":{"IP":"2001:db8::1"}}}',
        b'{"Data":{"IPv6":{"IP":"not an ip"}}}',
        b'{"API":{"APIKey":5}}',
        b"\xff\xfe",
    ],
)
def test_invalid_content_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(StateFormatError, match=r"state\.json"):
        decode_state(raw, State(), source="/x/state.json")
