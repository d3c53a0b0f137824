"""Pure parts of monitor-api: ULIDs, tickets, IP bytes, versions, durations, config (api.md §18)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api import ipbytes
from ntpmon.api.agentversion import check_version, version_from_user_agent
from ntpmon.api.godurations import parse_go_duration
from ntpmon.api.identity import monitor_name_from_cert
from ntpmon.api.monitor_config import (
    MonitorConfig,
    MonitorConfigError,
    Schedule,
    effective_config,
    merge_patch,
    parse_schedule,
)
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.common.ulid import ALPHABET, InvalidUlidError, new_ulid, parse_ulid

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def test_new_ulid_is_26_crockford_chars_with_the_millisecond_time():
    ulid = new_ulid(NOW)
    assert len(ulid.text) == 26
    assert set(ulid.text) <= set(ALPHABET)
    assert parse_ulid(ulid.text).time == NOW.replace(microsecond=123000)
    assert parse_ulid(ulid.text.lower()) == parse_ulid(ulid.text)
    assert parse_ulid(ulid.text.encode()).text == ulid.text


@pytest.mark.parametrize(
    "text",
    ["0" * 25, "0" * 27, "8" + "0" * 25, "0" * 25 + "U", "0" * 25 + "I", "0" * 25 + "L", ""],
)
def test_invalid_ulids(text):
    with pytest.raises(InvalidUlidError):
        parse_ulid(text)


def test_non_ascii_ulid_bytes_are_invalid():
    with pytest.raises(InvalidUlidError):
        parse_ulid("é".encode() * 13)


def test_non_ascii_ulid_text_is_invalid_even_when_upper_case_would_fit():
    """``"ß".upper()`` is ``"SS"``: 25 characters must not become a 26-character ULID."""
    with pytest.raises(InvalidUlidError, match="not ASCII"):
        parse_ulid("0ß" + "0" * 23)


V4 = ipaddress.ip_address("192.0.2.1").packed
V4B = ipaddress.ip_address("192.0.2.2").packed
MAPPED = ipaddress.ip_address("::ffff:192.0.2.1").packed


def test_tickets_bind_monitor_batch_and_ip():
    signer = TicketSigner(StaticKeyring({1: b"k1", 2: b"k2"}))
    batch, other = new_ulid(NOW).text, new_ulid(NOW).text
    ticket = signer.sign(7, batch, V4)
    assert ticket.startswith(b"2-")
    assert signer.verify(ticket, 7, batch, V4)
    assert not signer.verify(ticket, 8, batch, V4)
    assert not signer.verify(ticket, 7, other, V4)
    assert not signer.verify(ticket, 7, batch, V4B)
    assert not signer.verify(ticket, 7, batch, MAPPED)
    old = TicketSigner(StaticKeyring({1: b"k1"})).sign(7, batch, V4)
    assert old.startswith(b"1-")
    assert signer.verify(old, 7, batch, V4)


@pytest.mark.parametrize(
    "ticket", [b"", b"abc", b"0-x", b"-x", b"3-AAAA", b"2-", b"+2-AAAA", b"99999999999-x"]
)
def test_malformed_tickets_are_invalid(ticket):
    signer = TicketSigner(StaticKeyring({1: b"k1", 2: b"k2"}))
    assert not signer.verify(ticket, 7, new_ulid(NOW).text, V4)


def test_ticket_with_non_canonical_base64_is_invalid():
    signer = TicketSigner(StaticKeyring({1: b"k1"}))
    batch = new_ulid(NOW).text
    ticket = signer.sign(7, batch, V4)
    assert not signer.verify(ticket + b"=", 7, batch, V4)


@pytest.mark.parametrize(("spec", "newest"), [("1:a", 1), ("1:a,2:b", 2), (" 3:x , 1:y ", 3)])
def test_static_keyring_parse(spec, newest):
    assert StaticKeyring.parse(spec).newest()[0] == newest


@pytest.mark.parametrize("spec", ["", "a:b", "1:", "1", "0:x", "-1:x"])
def test_static_keyring_rejects(spec):
    with pytest.raises(ValueError):
        StaticKeyring.parse(spec)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (bytes([192, 0, 2, 1]), "192.0.2.1"),
        (ipaddress.ip_address("2001:db8::1").packed, "2001:db8::1"),
        (b"", "::"),
        (bytes([1, 2, 3, 4, 5]), "102:304:500::"),
        (bytes(range(1, 21)), str(ipaddress.IPv6Address(bytes(range(1, 17))))),
        (MAPPED, "::ffff:192.0.2.1"),
    ],
)
def test_ip_bytes_decoding(raw, text):
    assert ipbytes.canonical_text(ipbytes.from_bytes(raw)) == text


@pytest.mark.parametrize(
    ("ua", "version"),
    [
        ("ntppool-agent/v4.1.5", "v4.1.5"),
        ("ntpmon/v3.8.6", "v3.8.6"),
        ("ntppool-monitor/v3.5.0", "v3.5.0"),
        ("ntppool-agent/v5.0.0 grpc-python/1.85.3 grpc-c/58.0.0 (linux; chttp2)", "v5.0.0"),
        ("curl/8.0", "curl/8.0"),
        (
            "ntppool-agent/v4.1.5/abc1234 (2026-04-28T10:00:00Z, go1.26) grpc-python/1.85.3",
            "v4.1.5/abc1234",
        ),
        ("ntppool-agent/v4.1.5/abc1234 (2026-04-28T10:00:00Z, go1.26)", "v4.1.5/abc1234"),
        ("ntppool-agent/v4.1.5 connect-go/1.19.1 (go1.26.1)", "v4.1.5"),
        ("ntppool-agent/v4.2.0 grpc-python/1.85.4 grpc-c/58.0.0 (linux; chttp2)", "v4.2.0"),
        ("ntppool-agent/v4.1.5-rc.1+build.7/0a1b2c3", "v4.1.5-rc.1+build.7/0a1b2c3"),
        ("  ntppool-agent/v4.1.5  ", "v4.1.5"),
        ("grpc-python/1.85.4 grpc-c/58.0.0", "grpc-python/1.85.4"),
        ("ntppool-agent/", ""),
        ("", ""),
    ],
)
def test_version_from_user_agent(ua, version):
    assert version_from_user_agent(ua) == version


@pytest.mark.parametrize(
    ("version", "minimum", "ok"),
    [
        ("v3.8.5/abc123", "v3.8.5", True),
        ("dev-snapshot", "v9.0.0", True),
        ("", "v3.8.5", False),
        ("v4.0.4-rc1", "v4.0.4", False),
        ("4.1.0", "v3.8.5", False),
        ("v4.1.5", "v3.8.5", True),
        ("v3.8.4", "v3.8.5", False),
        ("v4.0.4+build", "v4.0.4", True),
        ("v4.0.4-rc.2", "v4.0.4-rc.10", False),
    ],
)
def test_check_version(version, minimum, ok):
    assert check_version(version, minimum) is ok


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30m", 5400), ("1.5m", 90), ("500ms", 0.5), ("-5m", -300), ("0", 0), ("90s", 90)],
)
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "", "m", "1x", "1h 30m"])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_merge_patch_rfc7396():
    assert merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}, "e": [1]}) == {
        "a": 1,
        "b": {"d": 3},
        "e": [1],
    }


DEFAULTS = '{"samples":4,"base_checks":["x.example","y.example"],"otlp_log_level":"info"}'


@pytest.mark.parametrize(
    ("own", "defaults", "expected"),
    [
        (
            '{"base_checks":null,"samples":9}',
            DEFAULTS,
            MonitorConfig(samples=9, otlp_log_level="info"),
        ),
        ('{"base_checks":null,"samples":9}', None, MonitorConfig(samples=9)),
        ("", None, MonitorConfig()),
        ("  ", DEFAULTS, MonitorConfig(4, "", ("x.example", "y.example"), "info")),
        ('{"Samples":3,"NAT_IP":"192.0.2.5"}', None, MonitorConfig(samples=3, nat_ip="192.0.2.5")),
    ],
)
def test_effective_config(own, defaults, expected):
    assert effective_config(own, defaults) == expected


@pytest.mark.parametrize(
    "own", ['{"nat_ip":"not-an-ip"}', '{"samples":"3"}', "[1]", "not json", '{"base_checks":[1]}']
)
def test_bad_config_is_an_error(own):
    with pytest.raises(MonitorConfigError):
        effective_config(own, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '{"interval_active":"5s","interval_testing":"2m","interval_all":"30s","batch_size":0}',
            Schedule(540, 120, 30, 10),
        ),
        ('{"interval_active":540}', Schedule()),
        ('{"interval_active":600000000000,"batch_size":3}', Schedule(600, 2700, 60, 3)),
        ("not json", Schedule()),
        (None, Schedule()),
        ('{"interval_testing":"-5m","interval_all":"bad"}', Schedule()),
    ],
)
def test_schedule(value, expected):
    assert parse_schedule(value) == expected


def test_identity_skips_foreign_names_and_ignores_cn(ca):
    cert = ca.issue_custom(
        "something-else",
        ["foo.example.com", "uspao1-aa.devel.mon.ntppool.dev"],
        timedelta(hours=1),
    )
    assert monitor_name_from_cert(cert.cert_pem.encode()) == "uspao1-aa.devel.mon.ntppool.dev"
    bare = ca.issue_custom("uspao1-aa.devel.mon.ntppool.dev", [], timedelta(hours=1))
    assert monitor_name_from_cert(bare.cert_pem.encode()) is None
    assert monitor_name_from_cert(None) is None
    assert monitor_name_from_cert(b"garbage") is None


def test_ttl_cache_reuses_then_reloads():
    from ntpmon.api.settings_cache import TtlCache

    now = [100.0]
    loads: list[int] = []
    cache: TtlCache[str, int] = TtlCache(5.0, now=lambda: now[0])

    def load() -> int:
        loads.append(1)
        return len(loads)

    assert cache.get("k", load) == 1
    now[0] += 4.9
    assert cache.get("k", load) == 1
    assert cache.get("other", load) == 2
    now[0] += 0.2
    assert cache.get("k", load) == 3
    assert TtlCache(0).get("k", load) == 4


def test_ulid_past_year_9999_parses_but_its_time_is_invalid_input():
    """48 bits of milliseconds reach 10889; datetime stops at 9999 (issue 15, item 4)."""
    ulid = parse_ulid("7" + "Z" * 25)
    assert ulid.millis == (1 << 48) - 1
    with pytest.raises(InvalidUlidError, match="past datetime's range"):
        _ = ulid.time
