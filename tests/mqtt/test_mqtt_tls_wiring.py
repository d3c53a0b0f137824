"""monitor-api's MQTT wiring over real TLS: a private Mosquitto with certificates from the
embedded CA, monitor rows from the database (both dialects), an agent with its client
certificate (api.md §10.3, agent.md §13.2)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from mqtt_testkit import SHARED_BROKER, running_agent, unique_name, unique_prefix, wait_for
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from ntpmon.agent.mqtt.client import AgentMqtt, AgentMqttOptions
from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.mqserver.wiring import MqttConfigError, MqttServerOptions, start_internal_api
from ntpmon.common.clock import FixedClock
from ntpmon.common.environments import DeployEnv
from ntpmon.db.admin import create_monitor
from ntpmon.db.models import MonitorStatus
from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.mqttcm.tlsconfig import broker_tls_context
from ntpmon.mqttcm.topics import Topics
from ntpmon.testing.mosquitto import PrivateBroker, clear_retained

pytestmark = pytest.mark.e2e
SERVER_NAME = "api.devel.mon.ntppool.dev"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def tls_broker(tmp_path: Path) -> tuple[PrivateBroker, EmbeddedCA]:
    ca = EmbeddedCA.create("mqtt test CA")
    broker_cert = ca.issue_server(["localhost", "127.0.0.1"], timedelta(hours=1))
    ca_file = write(tmp_path / "ca.pem", ca.root_pem())
    cert_file = write(tmp_path / "broker.pem", broker_cert.cert_pem)
    key_file = write(tmp_path / "broker.key", broker_cert.key_pem)
    broker = PrivateBroker(
        tmp_path,
        extra_config=f"cafile {ca_file}\ncertfile {cert_file}\nkeyfile {key_file}\n"
        "require_certificate true\ntls_version tlsv1.2\n",
    )
    broker.start()
    yield broker, ca
    broker.stop()


def test_server_and_agent_over_tls(
    tls_broker: tuple[PrivateBroker, EmbeddedCA], db: Engine, clock: FixedClock, tmp_path: Path
) -> None:
    broker, ca = tls_broker
    name = unique_name()
    with db.begin() as conn:
        create_monitor(
            conn,
            tls_name=name,
            ip="192.0.2.60",
            now=clock.now(),
            status=MonitorStatus.ACTIVE,
            hostname="tlshost",
            account_id=None,
        )
    server_cert = ca.issue_client(SERVER_NAME, timedelta(hours=1))
    options = MqttServerOptions(
        host="127.0.0.1",
        port=broker.port,
        jwt_key="k" * 48,
        ca_pem=ca.root_pem(),
        cert_file=write(tmp_path / "api.pem", server_cert.cert_pem),
        key_file=write(tmp_path / "api.key", server_cert.key_pem),
        internal_listen="127.0.0.1:0",
        topic_prefix=unique_prefix(),
    )
    registry = CollectorRegistry()
    api = start_internal_api(
        options, engine=db, env=DeployEnv.DEVEL, server_name=SERVER_NAME, registry=registry,
        clock=clock,
    )  # fmt: skip
    assert api is not None and api.http is not None
    agent_cert = ca.issue_client(name, timedelta(hours=1))
    tls = broker_tls_context(
        ca.root_pem(),
        cert_file=write(tmp_path / "agent.pem", agent_cert.cert_pem),
        key_file=write(tmp_path / "agent.key", agent_cert.key_pem),
    )
    agent = AgentMqtt(
        AgentMqttOptions(
            env=DeployEnv.DEVEL, name=name, endpoint=BrokerEndpoint("127.0.0.1", broker.port, tls),
            topic_prefix=options.topic_prefix, version="v4.2.0",
        ),
        lambda: b"jwt",
        lambda ip: None,
    )  # fmt: skip
    agent.start()
    try:
        assert api.mq.connection.wait_connected(10)
        assert agent.connection.wait_connected(10)
        base = f"http://127.0.0.1:{api.http.port}"
        entries = wait_for(
            lambda: [e for e in httpx.get(f"{base}/monitors/online").json() if e["Online"]],
            what="agent online over TLS",
        )
        assert [(e["Name"], e["IpVersion"]) for e in entries] == [(name, "v4")]
        labels = {"client": "tlshost", "version": "v4.2.0", "ip_version": "v4", "account": "",
                  "account_id": "0", "depenv": "devel"}  # fmt: skip
        assert registry.get_sample_value("monitors_connected", labels) == 1
    finally:
        agent.stop()
        api.stop()


def test_untrusted_broker_is_never_used(
    tls_broker: tuple[PrivateBroker, EmbeddedCA], tmp_path: Path
) -> None:
    broker, _ca = tls_broker
    other = EmbeddedCA.create("someone else")
    agent = AgentMqtt(
        AgentMqttOptions(
            env=DeployEnv.DEVEL, name=unique_name(),
            endpoint=BrokerEndpoint("127.0.0.1", broker.port, broker_tls_context(other.root_pem())),
            topic_prefix=unique_prefix(),
        ),
        lambda: b"jwt",
        lambda ip: None,
    )  # fmt: skip
    agent.start()
    try:
        assert agent.connection.wait_connected(1.5) is False
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        (MqttServerOptions(jwt_key=""), DeployEnv.DEVEL, "JWT key"),
        (MqttServerOptions(jwt_key="k", plain=True), DeployEnv.PROD, "only allowed in devel"),
    ],
)
def test_bad_mqtt_options_refused(
    options: MqttServerOptions, env: DeployEnv, message: str, clock: FixedClock
) -> None:
    with pytest.raises(MqttConfigError, match=message):
        start_internal_api(
            options, engine=None, env=env, server_name=SERVER_NAME,  # type: ignore[arg-type]
            registry=CollectorRegistry(), clock=clock,
        )  # fmt: skip


def test_disabled_mqtt_connects_nothing_but_serves_the_internal_api(clock: FixedClock) -> None:
    """api.md §10.3: disabled MQTT skips the broker only; the internal API answers empty."""
    options = MqttServerOptions(enabled=False, internal_listen="127.0.0.1:0")
    registry = CollectorRegistry()
    started = start_internal_api(
        options, engine=None, env=DeployEnv.DEVEL, server_name=SERVER_NAME,  # type: ignore[arg-type]
        registry=registry, clock=clock,
    )  # fmt: skip
    try:
        assert started.http is not None
        assert not started.mq.connection.is_connected()
        base = f"http://127.0.0.1:{started.http.port}"
        assert httpx.get(f"{base}/monitors/online", timeout=5).json() == []
        assert httpx.post(f"{base}/check/ntp/192.0.2.9", timeout=15).json() == []
        assert registry.get_sample_value("monitors_connected", {}) is None
    finally:
        started.stop()


def test_monitor_api_server_runs_the_mqtt_side(
    db: Engine, clock: FixedClock, tmp_path: Path
) -> None:
    """``MonitorApiServer`` with MQTT on (plain TCP to the shared broker, devel)."""
    from ntpmon.api.runner import MonitorApiServer, ServerOptions

    name = unique_name()
    with db.begin() as conn:
        create_monitor(conn, tls_name=name, ip="192.0.2.70", now=clock.now(),
                       status=MonitorStatus.ACTIVE, hostname="srvhost")  # fmt: skip
    prefix = unique_prefix()
    loopback = "127.0.0.1:0"
    options = ServerOptions(
        engine=db, data_dir=tmp_path / "api", env=DeployEnv.DEVEL, listen=loopback,
        management_listen=loopback, health_listen=loopback, metrics_listen=loopback, grace=1,
        clock=clock,
        mqtt_server=MqttServerOptions(
            host=SHARED_BROKER.host, port=SHARED_BROKER.port, jwt_key="k" * 48, plain=True,
            internal_listen=loopback, topic_prefix=prefix,
        ),
    )  # fmt: skip
    server = MonitorApiServer(options)
    try:
        server.wait_ready()
        assert server.internal is not None
        with running_agent(SHARED_BROKER, prefix, name, lambda ip: None):
            base = f"http://127.0.0.1:{server.ports['internal']}"
            wait_for(
                lambda: [e for e in httpx.get(f"{base}/monitors/online").json() if e["Online"]],
                what="agent online through monitor-api server",
            )
            metrics = httpx.get(f"http://127.0.0.1:{server.ports['metrics']}/metrics").text
            assert 'monitors_connected{account="",account_id="0",client="srvhost"' in metrics
    finally:
        server.stop()
        clear_retained(SHARED_BROKER, [Topics("devel", prefix).status(name)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--deployment-mode", "prod", "--jwtkey", "k", "--mqtt-plain"], "only allowed in devel"),
        (["--jwtkey", "k", "--internal-listen", "nowhere"], "invalid listen address"),
    ],
)
def test_server_command_refuses_bad_mqtt_flags(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ntpmon.api.cli import app
    from ntpmon.common.cli import run_app

    code = run_app(app, "monitor-api", ["server", "--data-dir", str(tmp_path), *argv])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("monitor-api: error: ") and message in err[-1]
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
