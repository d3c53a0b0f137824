"""Deployment environments and monitor names (spec/api.md §2, spec/agent.md §3)."""

from __future__ import annotations

import pytest

from ntpmon.common.environments import (
    DeployEnv,
    DeployEnvError,
    env_from_name,
    hosts_for,
    is_valid_monitor_name,
    parse_env,
)


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("devel", DeployEnv.DEVEL),
        ("dev", DeployEnv.DEVEL),
        ("test", DeployEnv.TEST),
        ("beta", DeployEnv.TEST),
        ("prod", DeployEnv.PROD),
        (" PROD ", DeployEnv.PROD),
    ],
)
def test_parse_env(text: str, env: DeployEnv) -> None:
    assert parse_env(text) is env


@pytest.mark.parametrize("text", ["", "production", "staging", "de vel"])
def test_parse_env_rejects(text: str) -> None:
    with pytest.raises(DeployEnvError, match="invalid deployment environment"):
        parse_env(text)


@pytest.mark.parametrize(
    ("env", "api", "monitor_api", "prefix", "otlp"),
    [
        (
            DeployEnv.DEVEL,
            "https://dev-api.ntppool.dev",
            "https://api.devel.mon.ntppool.dev",
            "/devel/monitors",
            "https://api-buzz.devel.mon.ntppool.dev:4318",
        ),
        (
            DeployEnv.TEST,
            "https://beta-api.ntppool.dev",
            "https://api.test.mon.ntppool.dev",
            "/test/monitors",
            "https://api-buzz.test.mon.ntppool.dev:4318",
        ),
        (
            DeployEnv.PROD,
            "https://api.ntppool.dev",
            "https://api.mon.ntppool.dev",
            "/prod/monitors",
            "https://api-buzz.mon.ntppool.dev:4318",
        ),
    ],
)
def test_hosts(env: DeployEnv, api: str, monitor_api: str, prefix: str, otlp: str) -> None:
    hosts = hosts_for(env, environ={})
    assert (hosts.api_host, hosts.monitor_api_host, hosts.mqtt_prefix) == (api, monitor_api, prefix)
    assert hosts.otlp_endpoint == otlp


def test_host_overrides() -> None:
    hosts = hosts_for(
        DeployEnv.PROD,
        environ={
            "API_HOST": "http://127.0.0.1:9",
            "DEVEL_API_SERVER": "https://127.0.0.1:8000",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:4318",
        },
    )
    assert hosts.api_host == "http://127.0.0.1:9"
    assert hosts.monitor_api_host == "https://127.0.0.1:8000"
    assert hosts.otlp_endpoint == "https://127.0.0.1:4318"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("uspao1-21wase0.devel.mon.ntppool.dev", True),
        ("a.b.mon.ntppool.dev", True),
        ("x.mon.ntppool.dev", False),  # four labels
        ("a.b.c.mon.ntppool.dev", False),  # six labels
        ("*.devel.mon.ntppool.dev", False),
        ("-a.devel.mon.ntppool.dev", False),
        ("a-.devel.mon.ntppool.dev", False),
        ("a_b.devel.mon.ntppool.dev", False),
        ("a.devel.mon.ntppool.dev.", False),
        ("a.devel.MON.ntppool.dev", False),  # suffix must be lower case
        ("mon.ntppool.dev", False),
        ("a" * 64 + ".devel.mon.ntppool.dev", False),
    ],
)
def test_monitor_names(name: str, valid: bool) -> None:
    assert is_valid_monitor_name(name) is valid


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("uspao1-21wase0.devel.mon.ntppool.dev", DeployEnv.DEVEL),
        ("X.TEST.MON.NTPPOOL.DEV", DeployEnv.TEST),
        ("host.prod.mon.ntppool.dev", DeployEnv.PROD),
        ("api.mon.ntppool.dev", DeployEnv.PROD),
        ("monitor-api-dev.ntppool.net", DeployEnv.DEVEL),
        ("mqtt-admin.mon.ntppool.dev", DeployEnv.DEVEL),
        ("exporter.mqtt.ntppool.net", DeployEnv.DEVEL),
    ],
)
def test_env_from_name(name: str, env: DeployEnv) -> None:
    assert env_from_name(name) is env


@pytest.mark.parametrize(
    "name",
    [
        "host.staging.mon.ntppool.dev",
        "a.b.devel.mon.ntppool.dev",
        "example.com",
        "devel.mon.ntppool.dev",
    ],
)
def test_env_from_name_rejects(name: str) -> None:
    with pytest.raises(DeployEnvError):
        env_from_name(name)
