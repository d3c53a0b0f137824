"""OTLP/HTTP export over the standard library's ``http.client`` (agent.md §14).

Why not opentelemetry-exporter-otlp-proto-http: its exporters post through ``requests`` and
import urllib3, idna, charset_normalizer, the transport registry's ``importlib.metadata`` and
the semantic-conventions tables with them: ~7 MB of the agent's resident memory for one POST
per batch (docs/agent.md, Memory footprint). Here the public encoders of
opentelemetry-exporter-otlp-proto-common turn the SDK's data into OTLP protobuf requests, and
``http.client`` and ``ssl`` (loaded anyway for monitor-api and the management API) post them.

The rules are the library's: the collector's certificate is verified against the configured CA
(the system roots when there is none), the client certificate is presented when both files are
named, the files are read per connection so a renewed certificate is used from the next
connection on, and 429, 502, 503, 504 and transport errors are retried with exponential backoff
(or the collector's ``Retry-After`` seconds) within the export's timeout; other answers are
final. Every outcome goes to :class:`~ntpmon.agent.daemon.otlpexport.ExportHealth`, which logs
an outage once. Loaded only when something is exported.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ntpmon.agent.daemon.otlpexport import (
    SIGNALS,
    Exporters,
    ExportHealth,
    OtlpSettings,
    OtlpTarget,
)
from ntpmon.common.version import user_agent

CONTENT_TYPE = "application/x-protobuf"
RETRYABLE = frozenset({429, 502, 503, 504})
"""The statuses the OTLP/HTTP specification says to retry; every other answer is final."""
MAX_ATTEMPTS = 6
JITTER = 0.2
T = TypeVar("T")


class OtlpHttpSender:
    """POSTs one signal's encoded batches to its collector over one kept-alive connection.

    One sender per signal, called by that signal's export thread; the lock only guards
    against :meth:`close` and a flush from another thread.
    """

    def __init__(self, target: OtlpTarget, health: ExportHealth) -> None:
        self.target = target
        self.health = health
        parts = urlsplit(target.endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._unusable = (
            None
            if parts.scheme in ("http", "https") and self._host
            else f"unusable OTLP endpoint {target.endpoint!r}"
        )
        self._headers = {
            "Content-Type": CONTENT_TYPE,
            "User-Agent": user_agent("ntppool-agent"),
            **target.headers,
        }
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def send(self, encode: Callable[[T], Message], data: T) -> bool:
        """Encode ``data`` and post it; True when the collector took it."""
        try:
            body = encode(data).SerializePartialToString()
        except Exception as exc:  # the encoders refuse what they cannot represent
            self.health.failed(f"cannot encode for {self.target.endpoint}: {exc}")
            return False
        return self.post(body)

    def post(self, body: bytes) -> bool:
        """POST ``body``, retrying what may pass later until the target's timeout is spent."""
        if self._closed.is_set():
            return False
        if self._unusable is not None:
            self.health.failed(self._unusable)
            return False
        deadline = time.monotonic() + self.target.timeout
        for attempt in range(MAX_ATTEMPTS):
            try:
                status, retry_after = self._exchange(body, deadline)
            except (OSError, http.client.HTTPException) as exc:
                self.health.failed(f"{self.target.endpoint}: {_describe(exc)}")
                retryable, retry_after = True, None
            else:
                self.health.answered(status, self.target.endpoint)
                if status < 400:
                    return True
                retryable = status in RETRYABLE
            if not retryable:
                return False
            if retry_after is None:
                retry_after = 2**attempt * random.uniform(1 - JITTER, 1 + JITTER)
            last = attempt + 1 == MAX_ATTEMPTS
            if last or retry_after > deadline - time.monotonic():
                return False
            if self._closed.wait(retry_after):
                return False
        return False

    def _exchange(self, body: bytes, deadline: float) -> tuple[int, float | None]:
        """One request and its answer; a kept-alive connection the collector dropped is
        replaced once at once (that is no failure of the collector)."""
        with self._lock:
            if self._closed.is_set():
                raise ConnectionAbortedError("exporter shut down")
            reused = self._conn is not None
            try:
                return self._round_trip(body, deadline)
            except ConnectionError:
                self._drop()
                if not reused:
                    raise
            return self._round_trip(body, deadline)

    def _round_trip(self, body: bytes, deadline: float) -> tuple[int, float | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("export timeout spent")
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = self._connect(remaining)
            elif conn.sock is not None:
                conn.sock.settimeout(remaining)
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            response.read()  # the body must be drained before the connection is reused
        except BaseException:
            self._drop()
            raise
        if response.will_close:
            self._drop()
        return response.status, _retry_after(response.getheader("Retry-After"))

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        """A new connection; for https a TLS context made from the files as they are now."""
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._tls_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.target.ca_file)
        if self.target.client_cert and self.target.client_key:
            context.load_cert_chain(self.target.client_cert, self.target.client_key)
        return context

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Stop retrying, and close the connection unless an export is using it (that one
        ends with its own timeout; the export threads are daemons)."""
        self._closed.set()
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the form collectors send); None for a date or nonsense,
    which leaves the exponential backoff in charge."""
    try:
        seconds = float(value) if value else -1.0
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


def _describe(exc: BaseException) -> str:
    """A one-line reason such as ``ConnectionRefusedError: [Errno 111] Connection refused``."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class OtlpSpanExporter(SpanExporter):
    """Spans over OTLP/HTTP (protobuf)."""

    def __init__(self, sender: OtlpHttpSender) -> None:
        self.sender = sender

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.sender.send(encode_spans, spans)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.sender.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here: export() posts before it returns


class OtlpMetricExporter(MetricExporter):
    """Metrics over OTLP/HTTP (protobuf); cumulative temporality and explicit-bucket
    histograms, the OTLP exporters' defaults."""

    def __init__(self, sender: OtlpHttpSender) -> None:
        super().__init__()
        self.sender = sender

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        ok = self.sender.send(encode_metrics, metrics_data)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.sender.close()


class OtlpLogExporter(LogRecordExporter):
    """Log records over OTLP/HTTP (protobuf)."""

    def __init__(self, sender: OtlpHttpSender) -> None:
        self.sender = sender

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = self.sender.send(encode_logs, batch)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self.sender.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def build_exporters(settings: OtlpSettings, health: ExportHealth) -> Exporters:
    """An exporter per exported signal, each with its own sender reporting to ``health``."""
    senders = {
        signal: OtlpHttpSender(target, health)
        for signal in SIGNALS
        if (target := settings.targets.get(signal)) is not None
    }
    return Exporters(
        spans=OtlpSpanExporter(senders["traces"]) if "traces" in senders else None,
        metrics=OtlpMetricExporter(senders["metrics"]) if "metrics" in senders else None,
        logs=OtlpLogExporter(senders["logs"]) if "logs" in senders else None,
    )
