"""Where and how the agent exports its telemetry: OTLP/HTTP with its client certificate
(agent.md §14).

Like the Go agent, ``monitor`` exports by default to its environment's collector
(``api-buzz``, :mod:`ntpmon.common.environments`), trusting the monitor CA and presenting the
state directory's ``cert.pem``/``key.pem``, so the pool sees every volunteer's traces, metrics
and logs without any set-up. Each default gives way to the standard ``OTEL_EXPORTER_OTLP_*``
variable (the per-signal one first, then the general one), ``OTEL_<SIGNAL>_EXPORTER=none``
drops one signal, and ``OTEL_SDK_DISABLED=true`` or ``--telemetry off`` all of them.

Why a module of its own: :func:`otlp_settings` decides from the environment alone, so the SDK,
the OTLP encoders and the exporters (``ntpmon.agent.daemon.otlphttp``, docs/agent.md, Memory
footprint) load only when something is exported. :class:`ExportHealth` keeps a collector that
is down from filling the log: the exporters report every failed batch and every retry to it,
and the agent says once that export is failing and once that it recovered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ntpmon.common.environments import DeployEnv, hosts_for
from ntpmon.common.errors import NtpmonError

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

SIGNALS = ("traces", "metrics", "logs")
DEFAULT_TIMEOUT = 10.0
"""Seconds per export request, retries included (the OTLP exporters' own default)."""
_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


class TelemetrySwitchError(NtpmonError, ValueError):
    """``--telemetry`` / ``MONITOR_TELEMETRY`` is neither on nor off."""


def telemetry_switch(value: str) -> bool:
    """``on``/``off`` (also ``true``/``false``, ``1``/``0``) as a bool; an error otherwise."""
    try:
        return _SWITCH[value.strip().lower()]
    except KeyError:
        raise TelemetrySwitchError(
            f"invalid telemetry switch {value!r} (expected on or off)"
        ) from None


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    """One signal's exporter: where it posts, whom it trusts, what it presents."""

    endpoint: str
    ca_file: str | None
    """PEM roots for the collector's certificate; None: the system roots."""
    client_cert: str | None
    client_key: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """The signals to export (``traces``, ``metrics``, ``logs``) and where each one goes."""

    targets: Mapping[str, OtlpTarget]


def otlp_settings(
    env: DeployEnv,
    environ: Mapping[str, str],
    *,
    client_cert: Path,
    client_key: Path,
    ca_files: Sequence[Path | None],
) -> OtlpSettings | None:
    """What to export, or None when nothing is (``OTEL_SDK_DISABLED``, every signal ``none``).

    ``ca_files`` are the monitor CA's candidates in order of preference (``ca.pem`` from the
    config, ``--ca-file``); the first that exists is trusted, the system roots when none does.
    Files are named, not read: the exporters open them per connection, so a renewed client
    certificate is used from the next connection on.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    base = hosts_for(env, environ).otlp_endpoint.rstrip("/")
    monitor_ca = next((str(p) for p in ca_files if p is not None and p.is_file()), None)
    targets: dict[str, OtlpTarget] = {}
    for signal in SIGNALS:
        if environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower() == "none":
            continue

        def setting(name: str, signal: str = signal) -> str | None:
            specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}")
            return specific or environ.get(f"OTEL_EXPORTER_OTLP_{name}") or None

        specific_endpoint = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        targets[signal] = OtlpTarget(
            endpoint=specific_endpoint or f"{base}/v1/{signal}",
            ca_file=setting("CERTIFICATE") or monitor_ca,
            client_cert=setting("CLIENT_CERTIFICATE") or str(client_cert),
            client_key=setting("CLIENT_KEY") or str(client_key),
            headers=_headers(setting("HEADERS") or ""),
            timeout=_timeout(setting("TIMEOUT")),
        )
    return OtlpSettings(targets) if targets else None


def _headers(value: str) -> dict[str, str]:
    """``key=value,key2=value2`` (URL-encoded), as OpenTelemetry reads ``*_HEADERS``."""
    from opentelemetry.util.re import parse_env_headers

    return parse_env_headers(value, liberal=True)


def _timeout(value: str | None) -> float:
    """Seconds, as the Python exporters read ``*_TIMEOUT``; the default for a bad value."""
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds > 0:
        return seconds
    log.warning("invalid OTLP timeout, using the default", extra={"value": value})
    return DEFAULT_TIMEOUT


class ExportHealth:
    """One warning when export starts failing, one info line when it works again.

    The exporters report every answer and every transport error here (the error names the
    endpoint and the real cause), one per attempt: a refused or unencodable batch, a collector
    that is down, and each retry all count, but only the first failure of an outage is logged.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing = False

    def failed(self, reason: str) -> None:
        with self._lock:
            first, self.failing = not self.failing, True
        if first:
            log.warning(
                "telemetry export failing; not logged again until it recovers",
                extra={"error": reason},
            )

    def answered(self, status: int, url: str) -> None:
        """An HTTP answer: below 400 the collector took the batch."""
        if status >= 400:
            self.failed(f"HTTP {status} from {url}")
            return
        with self._lock:
            recovered, self.failing = self.failing, False
        if recovered:
            log.info("telemetry export recovered", extra={"url": url})


@dataclass(frozen=True, slots=True)
class Exporters:
    """The OTLP/HTTP exporters of the signals that are exported (None: not exported)."""

    spans: SpanExporter | None
    metrics: MetricExporter | None
    logs: LogRecordExporter | None
