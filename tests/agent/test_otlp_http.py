"""The agent's own OTLP/HTTP sender (``ntpmon.agent.daemon.otlphttp``) against the mTLS collector
stand-in: one kept-alive connection, the agent's certificate, the OTLP/HTTP retry rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent.certs_helper import TestCA
from agent.conftest import TLS_NAME
from ntpmon.agent.daemon.otlpexport import ExportHealth, OtlpTarget
from ntpmon.agent.daemon.otlphttp import OtlpHttpSender
from ntpmon.testing.otlpreceiver import OtlpReceiver

pytestmark = pytest.mark.timeout(60)
BODY = ExportTraceServiceRequest().SerializeToString()


@pytest.fixture
def target(test_ca: TestCA, receiver: OtlpReceiver, tmp_path: Path) -> OtlpTarget:
    issued = test_ca.issue(TLS_NAME)
    (tmp_path / "cert.pem").write_bytes(issued.cert_pem)
    (tmp_path / "key.pem").write_bytes(issued.key_pem)
    return OtlpTarget(
        endpoint=f"{receiver.url}/v1/traces",
        ca_file=str(test_ca.write(tmp_path)),
        client_cert=str(tmp_path / "cert.pem"),
        client_key=str(tmp_path / "key.pem"),
        headers={"x-pool-token": "abc"},
    )


def test_batches_share_one_connection_with_the_client_certificate(
    target: OtlpTarget, receiver: OtlpReceiver
) -> None:
    sender = OtlpHttpSender(target, ExportHealth())
    assert all(sender.post(BODY) for _ in range(3))
    sender.close()
    assert receiver.connections == 1
    assert len(receiver.exports) == 3
    assert {e.client_cn for e in receiver.exports} == {TLS_NAME}
    [export, *_] = receiver.exports
    assert export.content_type == "application/x-protobuf"
    assert export.headers["x-pool-token"] == "abc"
    assert export.headers["user-agent"].startswith("ntppool-agent/")


def test_a_renewed_certificate_is_used_from_the_next_connection(
    target: OtlpTarget, receiver: OtlpReceiver, test_ca: TestCA
) -> None:
    sender = OtlpHttpSender(target, ExportHealth())
    receiver.answers = [(200, {"Connection": "close"})]  # the collector ends the connection
    assert sender.post(BODY)
    renewed = test_ca.issue("renewed-abc123.devel.mon.ntppool.dev")
    assert target.client_cert is not None and target.client_key is not None
    Path(target.client_cert).write_bytes(renewed.cert_pem)
    Path(target.client_key).write_bytes(renewed.key_pem)
    assert sender.post(BODY)
    sender.close()
    assert [e.client_cn for e in receiver.exports] == [
        TLS_NAME,
        "renewed-abc123.devel.mon.ntppool.dev",
    ]


def test_retryable_answers_are_retried_as_the_collector_asks(
    target: OtlpTarget, receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver.answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    health = ExportHealth()
    assert OtlpHttpSender(target, health).post(BODY)
    assert len(receiver.exports) == 3
    assert not health.failing
    assert (
        caplog.messages.count("telemetry export failing; not logged again until it recovers") == 1
    )
    assert caplog.messages.count("telemetry export recovered") == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (400, {}),  # refused: final
        (503, {"Retry-After": "3600"}),  # retryable, but not within the export's timeout
    ],
)
def test_what_cannot_pass_in_time_is_not_retried(
    target: OtlpTarget, receiver: OtlpReceiver, status: int, headers: dict[str, str]
) -> None:
    receiver.answers = [(status, headers)]
    health = ExportHealth()
    assert not OtlpHttpSender(target, health).post(BODY)
    assert len(receiver.exports) == 1
    assert health.failing


def test_a_closed_sender_sends_nothing(target: OtlpTarget, receiver: OtlpReceiver) -> None:
    sender = OtlpHttpSender(target, ExportHealth())
    sender.close()
    assert not sender.post(BODY)
    assert receiver.connections == 0


def test_an_unusable_endpoint_is_a_failure_not_a_crash() -> None:
    health = ExportHealth()
    sender = OtlpHttpSender(OtlpTarget("collector:4318/v1/traces", None, None, None), health)
    assert not sender.post(BODY)
    assert health.failing
