"""monitor-api's MQTT rules without a broker (api.md §10.2, §10.4–§10.6, §11, §18.7)."""

from __future__ import annotations

import ipaddress
import threading
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from mqtt_testkit import monitor_row
from prometheus_client import CollectorRegistry

from ntpmon.api.mqserver.adhoc import (
    AgentAnswer,
    TargetError,
    account_label,
    decode_answer,
    is_healthy,
    parse_go_bool,
    parse_target,
    server_label,
    supports_adhoc,
    target_ip_version,
)
from ntpmon.api.mqserver.broker_tokens import TokenType, broker_token, server_token
from ntpmon.api.mqserver.clients import ClientRegistry, MonitorsConnectedGauge
from ntpmon.api.mqserver.router import ResponseRouter
from ntpmon.api.mqserver.service import ListenAddressError, parse_listen
from ntpmon.common.clock import FixedClock
from ntpmon.common.environments import DeployEnvError
from ntpmon.mqttcm.status import StatusMessage
from ntpmon.mqttcm.topics import Topics

NAME = "uspao1-21wase0.devel.mon.ntppool.dev"
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


KEY = "t-key-for-tests-only-0123456789-0123456789-01234567"  # >= 48 bytes for HS384


# -- broker tokens (§10.2, §18.7 #33) --------------------------------------------------------------
def _claims(token: str) -> dict:
    return jwt.decode(
        token,
        KEY.encode(),
        algorithms=["HS384"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )


def test_standard_token_topics() -> None:
    name = "uspao1-aa.test.mon.ntppool.dev"
    claims = _claims(broker_token(TokenType.STANDARD, name, KEY, NOW))
    assert claims["subs"] == [f"/test/monitors/requests/{name}/+"]
    assert sorted(claims["publ"]) == sorted(
        [
            f"/test/monitors/status/{name}/status",
            f"/test/monitors/status/{name}/api-test",
            f"/test/monitors/data/{name}/+",
            f"/test/monitors/data/{name}/+/+",
        ]
    )


@pytest.mark.parametrize(
    ("kind", "subject", "subs", "publ", "lifetime"),
    [
        (TokenType.SERVER, "api.mon.ntppool.dev", ["/prod/#"], ["/prod/#"], timedelta(hours=6)),
        (
            TokenType.SERVER,
            "api.devel.mon.ntppool.dev",
            ["/devel/#"],
            ["/devel/#"],
            timedelta(hours=6),
        ),
        (
            TokenType.ADMIN,
            "mqtt-admin.mon.ntppool.dev",
            ["/devel/#"],
            ["/devel/#"],
            timedelta(minutes=5),
        ),
        (TokenType.EXPORTER, "exporter.mqtt.ntppool.net", ["$SYS/#"], [], timedelta(days=1095)),
    ],
)
def test_other_token_types(
    kind: TokenType, subject: str, subs: list[str], publ: list[str], lifetime: timedelta
) -> None:
    claims = _claims(broker_token(kind, subject, KEY, NOW))
    assert (claims["subs"], claims["publ"], claims["sub"]) == (subs, publ, subject)
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["nbf"] == claims["iat"] - 30
    assert claims["exp"] - claims["iat"] == int(lifetime.total_seconds())
    assert "iss" not in claims and "aud" not in claims


def test_server_token_refused_for_name_without_env() -> None:
    with pytest.raises(DeployEnvError):
        server_token("api.example.com", KEY, NOW)


# -- versions and targets (§10.6, §11.1, §18.7 #34) ----------------------------------------
@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("v4.0.4", True),
        ("v4.0.5", True),
        ("v4.1.0", True),
        ("v5.0.0", True),
        ("v4.0.3", False),
        ("v4.0.0", False),
        ("v3.8.6", True),
        ("v3.8.5", False),
        ("v3.8.7", False),
        ("v3.9.0", False),
        ("v3.0.0", False),
        ("v2.0.0", False),
        ("v4.0.4-rc1", False),
        ("dev-snapshot", True),
        ("", False),
        ("4.1.0", False),
    ],
)
def test_supports_adhoc(version: str, ok: bool) -> None:
    assert supports_adhoc(version) is ok


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not-an-ip", "invalid IP address"),
        ("", "invalid IP address"),
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("fd00::1", "private address"),
        ("::ffff:192.168.1.1", "private address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("0.0.0.0", "unspecified address"),
    ],
)
def test_parse_target_refuses(text: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        parse_target(text)


@pytest.mark.parametrize(
    ("text", "version"),
    [("8.8.8.8", "v4"), ("100.64.0.1", "v4"), ("2001:db8::1", "v6"), ("::ffff:8.8.8.8", "v6")],
)
def test_parse_target_accepts_public(text: str, version: str) -> None:
    ip = parse_target(text)
    assert ip == ipaddress.ip_address(text)
    assert target_ip_version(ip) == version


def test_private_targets_only_when_allowed() -> None:
    assert str(parse_target("127.0.0.1", allow_private=True)) == "127.0.0.1"
    with pytest.raises(TargetError, match="invalid IP"):
        parse_target("nope", allow_private=True)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("1", True),
        ("t", True),
        ("T", True),
        ("TRUE", True),
        ("true", True),
        ("True", True),
        ("0", False),
        ("f", False),
        ("false", False),
        ("yes", False),
        ("", False),
        (None, False),
    ],
)
def test_parse_go_bool(value: str | None, result: bool) -> None:
    assert parse_go_bool(value) is result


@pytest.mark.parametrize(
    ("answer", "healthy"),
    [
        ({"NTP": {"Leap": 0, "Stratum": 2}}, True),
        ({"NTP": {"Leap": 3, "Stratum": 7}}, True),
        ({"NTP": {"Leap": 4, "Stratum": 2}}, False),
        ({"NTP": {"Leap": 0, "Stratum": 0}}, False),
        ({"NTP": {"Leap": 0, "Stratum": 8}}, False),
        ({"NTP": {"Leap": 0, "Stratum": 2}, "Error": "timeout"}, False),
        ({"Error": "timeout"}, False),
        ({}, False),
    ],
)
def test_healthy_predicate(answer: dict, healthy: bool) -> None:
    assert is_healthy(answer) is healthy


def test_decode_answer() -> None:
    answer = decode_answer(NAME, b'{"NTP":{"Leap":0,"Stratum":2},"Error":""}')
    assert answer == AgentAnswer("uspao1-21wase0", {"Leap": 0, "Stratum": 2}, "")
    assert answer.to_json() == {"Server": "uspao1-21wase0", "NTP": {"Leap": 0, "Stratum": 2}}
    assert decode_answer(NAME, b'{"Error":"i/o timeout"}').to_json() == {
        "Server": "uspao1-21wase0",
        "Error": "i/o timeout",
    }
    for bad in (b"not json", b"[]", b'{"NTP":3}', b'{"Error":5}'):
        assert decode_answer(NAME, bad) is None


@pytest.mark.parametrize(
    ("name", "server", "account"),
    [
        (NAME, "uspao1-21wase0", "21wase0"),
        ("plain.devel.mon.ntppool.dev", "plain", ""),
        ("a-b-c.test.mon.ntppool.dev", "a-b-c", "b-c"),
    ],
)
def test_labels(name: str, server: str, account: str) -> None:
    assert (server_label(name), account_label(name)) == (server, account)


# -- client map (§10.4, §11.2, §11.3, §18.7 #29, #34, #35) -----------------------------------------
def _registry(rows: dict, clock: FixedClock, gauge: MonitorsConnectedGauge | None = None):
    return ClientRegistry(lambda name: rows.get(name, []), clock, gauge)


def online(version: str = "v4.1.0") -> StatusMessage:
    return StatusMessage(True, {"Version": version}, "2026-11-26T12:00:00Z")


def test_status_online_then_offline_keeps_entry(clock: FixedClock) -> None:
    registry = _registry({}, clock)
    registry.apply_status("uspao-abc", StatusMessage(True))
    state = registry.get("uspao-abc")
    assert state is not None and state.online and state.last_seen == clock.now()
    clock.advance(60)
    registry.apply_status("uspao-abc", StatusMessage(False, {"Version": "v9.9.9"}))
    later = registry.get("uspao-abc")
    assert later is not None and not later.online
    assert later.last_seen == state.last_seen and later.version == ""


def test_monitor_rows_loaded_on_online(clock: FixedClock) -> None:
    rows = {NAME: [monitor_row(NAME, "192.0.2.1"), monitor_row(NAME, "2001:db8::1", row_id=2)]}
    registry = _registry(rows, clock)
    registry.apply_status(NAME, online())
    entry = registry.get(NAME).online_json()
    assert entry == {
        "Name": NAME,
        "IpVersions": ["v4", "v6"],
        "Version": {"Version": "v4.1.0"},
        "UpdatedMQ": "2026-11-26T12:00:00Z",
        "LastSeen": "2026-11-26T12:00:00Z",
        "Online": True,
    }


def test_monitor_load_failure_is_logged_not_raised(clock: FixedClock) -> None:
    def broken(_name: str) -> list:
        raise RuntimeError("database gone")

    registry = ClientRegistry(broken, clock)
    assert registry.apply_status(NAME, online()).online
    assert registry.with_monitor_data() == []


def test_adhoc_eligibility(clock: FixedClock) -> None:
    names = {k: f"{k}-x.devel.mon.ntppool.dev" for k in ("v4only", "dual", "old", "off", "nodata")}
    rows = {
        names["v4only"]: [monitor_row(names["v4only"], "192.0.2.1")],
        names["dual"]: [
            monitor_row(names["dual"], "192.0.2.2"),
            monitor_row(names["dual"], "2001:db8::2", row_id=2),
        ],
        names["old"]: [monitor_row(names["old"], "192.0.2.3")],
        names["off"]: [monitor_row(names["off"], "192.0.2.4")],
    }
    registry = _registry(rows, clock)
    for key, name in names.items():
        registry.apply_status(name, online("v4.0.3" if key == "old" else "v4.1.0"))
    registry.apply_status(names["off"], StatusMessage(False))
    v4 = {c.key for c in registry.adhoc_targets("v4")}
    v6 = {c.key for c in registry.adhoc_targets("v6")}
    assert v4 == {names["v4only"], names["dual"]}
    assert v6 == {names["dual"]}


def test_metrics_discovery(clock: FixedClock) -> None:
    rows = {NAME: [monitor_row(NAME, "192.0.2.1"), monitor_row(NAME, "2001:db8::1", row_id=2)]}
    registry = _registry(rows, clock)
    registry.apply_status(NAME, online("v4.1.0"))
    assert registry.metrics_discovery() == [
        {"targets": [NAME], "labels": {"account": "21wase0", "ip_version": "v4"}},
        {"targets": [NAME], "labels": {"account": "21wase0", "ip_version": "v6"}},
    ]
    registry.apply_status(NAME, online("v3.5.0"))
    assert registry.metrics_discovery() == []


def test_monitors_connected_gauge_rebuilt(clock: FixedClock) -> None:
    metrics = CollectorRegistry()
    gauge = MonitorsConnectedGauge(metrics, "devel")
    rows = {NAME: [monitor_row(NAME, "192.0.2.1"), monitor_row(NAME, "2001:db8::1", row_id=2)]}
    registry = _registry(rows, clock, gauge)
    labels = {
        "client": "uspao1-21wase0",
        "version": "v4.1.0",
        "account": "",
        "account_id": "7",
        "depenv": "devel",
    }
    registry.apply_status(NAME, online())
    for ipv in ("v4", "v6"):
        assert metrics.get_sample_value("monitors_connected", {**labels, "ip_version": ipv}) == 1
    registry.apply_status(NAME, StatusMessage(False))
    assert metrics.get_sample_value("monitors_connected", {**labels, "ip_version": "v4"}) is None


# -- response router (§10.5, §18.7 #30) ----------------------------------------------------
def test_router_delivers_registered_response() -> None:
    router = ResponseRouter(Topics("devel"))
    inbox = router.register("X")
    assert router.deliver("/devel/monitors/data/uspao-abc/X", b"{}", trace_id="ab")
    got = inbox.get(2)
    assert got is not None
    assert (got.name, got.request_id, got.payload, got.trace_id) == ("uspao-abc", "X", b"{}", "ab")


def test_router_after_requester_finished_never_blocks() -> None:
    router = ResponseRouter(Topics("devel"))
    router.register("X")
    router.unregister("X")
    started = time.monotonic()
    for _ in range(10_000):  # far more than any queue bound would take
        assert router.deliver("/devel/monitors/data/uspao-abc/X", b"late") is False
    assert time.monotonic() - started < 5
    router.register("Y")
    assert router.pending() == 1
    router.unregister("Y")
    router.unregister("Y")  # twice is fine


def test_router_racing_unregister_does_not_raise() -> None:
    router = ResponseRouter(Topics("devel"))
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            router.register(f"R{i}")
            router.unregister(f"R{i}")
            i += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for i in range(5000):
            router.deliver(f"/devel/monitors/data/a/R{i}", b"x")
    finally:
        stop.set()
        thread.join()
    assert router.pending() == 0


@pytest.mark.parametrize(
    "topic",
    ["/devel/monitors/data/uspao-abc/unknown", "/devel/monitors/data/onlyone", "/devel/monitors"],
)
def test_router_drops_unknown_and_malformed(topic: str) -> None:
    router = ResponseRouter(Topics("devel"))
    inbox = router.register("X")
    assert router.deliver(topic, b"x") is False
    assert router.dropped == 1
    assert inbox.get(0) is None


def test_register_same_id_twice_refused() -> None:
    router = ResponseRouter(Topics("devel"))
    router.register("X")
    with pytest.raises(ValueError, match="already registered"):
        router.register("X")


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("127.0.0.1:8095", ("127.0.0.1", 8095)),
        (":8095", ("127.0.0.1", 8095)),
        ("[::1]:0", ("::1", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(text: str, result: tuple[str, int]) -> None:
    assert parse_listen(text) == result


@pytest.mark.parametrize("text", ["8095", "host:", "host:port", "h:70000"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ListenAddressError):
        parse_listen(text)
