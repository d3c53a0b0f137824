"""Telemetry set-up: nothing exported without OTLP settings; the server's log level.

What is exported, where, and with which certificate: test_otlp_export.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.daemon.otlpexport import otlp_settings
from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.testing.otel import RecordingTelemetry


@pytest.fixture(autouse=True)
def _restore_root_logger(restore_root_logger: None) -> None:
    """Telemetry adjusts the process's root logger, as the agent wants; tests share a process."""


def test_no_exporters_without_settings() -> None:
    telemetry = Telemetry("devel")
    assert not telemetry.exporting and telemetry.log_handler is None
    assert telemetry.tracer_provider is None  # the SDK is not even started
    with telemetry.span("monitor-run") as span:
        assert span.get_span_context().trace_id != 0  # trace context exists for RPC metadata
    telemetry.shutdown()


@pytest.mark.parametrize(
    ("debug", "server_level", "expected"),
    [
        (False, "", logging.INFO),
        (False, "warn", logging.WARNING),
        (False, "debug", logging.DEBUG),
        (False, "shouting", logging.INFO),  # invalid: warned about, not applied
        (True, "error", logging.DEBUG),  # --debug wins over the server
    ],
)
def test_otlp_log_level(debug: bool, server_level: str, expected: int, tmp_path: Path) -> None:
    # a loopback endpoint where nothing listens: exporters are built, nothing leaves the host
    otlp = otlp_settings(
        DeploymentEnv.DEVEL,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1"},
        client_cert=tmp_path / "cert.pem",
        client_key=tmp_path / "key.pem",
        ca_files=(),
    )
    telemetry = Telemetry("devel", otlp=otlp, debug=debug, otlp_log_level=server_level)
    try:
        assert telemetry.exporting and telemetry.log_handler is not None
        assert telemetry.log_handler.level == expected
        assert logging.getLogger().getEffectiveLevel() <= expected  # records reach the exporter
        assert telemetry.log_handler in logging.getLogger().handlers
    finally:
        telemetry.shutdown()
    assert telemetry.log_handler not in logging.getLogger().handlers


def test_in_memory_consumers_see_what_an_endpoint_would_get() -> None:
    recording = RecordingTelemetry()
    try:
        with recording.telemetry.span("monitor-run", {"ip_version": "v4"}):
            recording.telemetry.tests_requested(4, 2)
        [span] = recording.spans("monitor-run")
        assert dict(span.attributes or {}) == {"ip_version": "v4"}
        assert span.resource.attributes["service.name"] == "ntppool-agent"
        assert recording.points("monitor.tests_requested_total") == [({"ip_version": "v4"}, 2)]
        assert recording.points("monitor.no_such_metric") == []
    finally:
        recording.shutdown()
