"""The fast paths of :mod:`ntpmon.api.ipbytes` agree with the ``ipaddress`` route exactly."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntpmon.api import ipbytes


def _slow_text_to_bytes(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text.strip()).packed
    except ValueError:
        return None


def _slow_canonical_of_text(text: str) -> str:
    try:
        return ipbytes.canonical_text(ipaddress.ip_address(text))
    except ValueError:
        return text


def _fast_text_to_bytes(text: str) -> bytes | None:
    try:
        return ipbytes.text_to_bytes(text)
    except ValueError:
        return None


TEXTS = [
    "192.0.2.1",
    "0.0.0.0",
    "255.255.255.255",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    " 192.0.2.1 ",
    "192.0.2.1\n",
    "1.2.3.4\x00",
    "::ffff:192.0.2.1",
    "::ffff:c000:201",
    "2001:db8::1",
    "2001:DB8::1",
    "",
    "not an address",
]


@pytest.mark.parametrize("text", TEXTS)
def test_text_forms_match_ipaddress(text):
    assert _fast_text_to_bytes(text) == _slow_text_to_bytes(text)
    assert ipbytes.canonical_of_text(text) == _slow_canonical_of_text(text)


@given(st.ip_addresses(v=4).map(str) | st.text(alphabet="0123456789.:abcdef ", max_size=20))
def test_any_text_matches_ipaddress(text):
    assert _fast_text_to_bytes(text) == _slow_text_to_bytes(text)
    assert ipbytes.canonical_of_text(text) == _slow_canonical_of_text(text)


@given(st.binary(max_size=20))
def test_wire_forms_match_ipaddress(raw):
    addr = ipbytes.from_bytes(raw)
    expected = (
        ipbytes.to_bytes(addr),
        ipbytes.canonical_text(addr),
        frozenset(ipbytes.spellings(addr)),
    )
    assert ipbytes.wire_forms(raw) == expected
