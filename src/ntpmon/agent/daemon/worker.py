"""One monitor worker per IP version (agent.md §10.2–§10.4).

GetConfig loop in the background; in the foreground GetServers → probe every server at once →
SubmitResults, paced by the server while there is work and backing off (jittered) when not.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.checkconfig import CheckConfig, SharedCheckConfig, ip_from_bytes
from ntpmon.agent.config.statefile import IPAddress
from ntpmon.agent.daemon.backoff import Backoff
from ntpmon.agent.daemon.scope import Cancelled, Scope
from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.agent.transport.base import MonitorClient, RPCError
from ntpmon.common.errors import NtpmonError
from ntpmon.common.ulid import is_ulid
from ntpmon.ntp.instruments import ProbeInstruments
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

log = logging.getLogger(__name__)

CONFIG_INTERVAL = 3600.0
CONFIG_ERROR_MAX = 1200.0
RETRY_GIVE_UP = 900.0
SUBMIT_VERSION = 4


class ContextLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds the worker's context to every record, keeping each call's own ``extra``."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class WorkerError(NtpmonError):
    """A worker cannot go on (e.g. the sanity check failed)."""


class NoWork(Exception):  # noqa: N818 - a signal, not a failure
    """GetServers returned an empty batch; back off before asking again."""


class LocalCheck(Protocol):
    def check(self) -> bool: ...
    def next_check_in(self) -> float: ...


Probe = Callable[[pb.Server, CheckConfig, ProbeInstruments], pb.ServerStatus | None]
"""Probe one server of a batch, recording on the telemetry's instruments (None: not submitted)."""
LocalCheckFactory = Callable[[Callable[[], CheckConfig], int, ProbeInstruments], LocalCheck]
"""Build the local clock check from (current config, IP version, the telemetry's instruments)."""


@dataclass(frozen=True, slots=True)
class WorkerHooks:
    """The seam for the MQTT client (agent.md §13, a later issue) and telemetry.

    ``on_config`` sees every GetConfig answer (the MQTT config rides on it); ``wait_if_paused``
    blocks while another agent has taken over this identity (§13.6) and returns at once
    otherwise; ``on_otlp_level`` applies the server's preferred exported log level;
    ``on_trace`` gets every server GetServers marked ``trace`` (issue 17) with the worker's
    config, and must return at once (the trace runs in the background, not in the batch).
    """

    on_config: Callable[[int, pb.GetConfigResponse], None] | None = None
    wait_if_paused: Callable[[Scope], None] | None = None
    on_otlp_level: Callable[[str], None] | None = None
    on_trace: Callable[[IPAddress, CheckConfig], None] | None = None


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    once: bool = False
    sanity_only: bool = False
    port: int = 123
    allow_loopback: bool = False


def default_probe(
    server: pb.Server, cfg: CheckConfig, instruments: ProbeInstruments
) -> pb.ServerStatus | None:
    """Probe with the NTP engine.

    A server marked ``trace`` is probed as usual too: upstream's agent skipped the check (and
    the server lost a data point); the trace itself runs beside the batch (``on_trace``).
    """
    from ntpmon.ntp import check

    ip = ip_from_bytes(server.ip_bytes)
    return check.status_for_submission(server, check.check_host(ip, cfg, instruments=instruments))


def default_local_check(
    get_config: Callable[[], CheckConfig], family: int, instruments: ProbeInstruments
) -> LocalCheck:
    from ntpmon.agent.daemon import localok

    return localok.LocalOK(get_config, family, instruments=instruments)


class Worker:
    """The work of one IP version; ``run`` returns on cancellation, raises when it must stop."""

    def __init__(
        self,
        family: int,
        cfg: AppConfig,
        client: MonitorClient,
        telemetry: Telemetry,
        options: WorkerOptions = WorkerOptions(),
        *,
        probe: Probe = default_probe,
        local_check: LocalCheckFactory = default_local_check,
        hooks: WorkerHooks = WorkerHooks(),
    ) -> None:
        self.family = family
        self.cfg = cfg
        self.client = client
        self.telemetry = telemetry
        self.options = options
        self.probe = probe
        self.mon_cfg = SharedCheckConfig(
            CheckConfig(port=options.port, allow_loopback=options.allow_loopback)
        )
        self._make_local_check = local_check
        self.hooks = hooks
        self._initial_config = threading.Event()
        self.mon_id = ""
        self.batches = 0
        self.log = ContextLog(log, {"ip_version": f"v{family}"})

    # -- entry --------------------------------------------------------------------------
    def run(self, scope: Scope) -> None:
        ip_cfg = self.cfg.ip_config(self.family)
        while ip_cfg.ip is None or not ip_cfg.is_live():
            if self.options.once or self.options.sanity_only:
                self.log.info("not live; skipped", extra={"status": ip_cfg.status})
                return
            self.log.info("waiting for activation", extra={"status": ip_cfg.status})
            waiter = self.cfg.wait_for_config_change(scope)
            waiter.wait()
            if scope.cancelled:
                return
            ip_cfg = self.cfg.ip_config(self.family)
        self.mon_id = str(ip_cfg.ip)
        self.log = ContextLog(log, {"ip_version": f"v{self.family}", "monitor_ip": self.mon_id})
        fetcher = threading.Thread(
            target=self._config_loop, args=(scope,), name=f"config-v{self.family}", daemon=True
        )
        fetcher.start()
        try:
            self._main(scope)
        except Cancelled:
            return

    def _main(self, scope: Scope) -> None:
        while not self._initial_config.wait(0.2):
            if scope.cancelled:
                return
        local_ok = self._make_local_check(
            self.mon_cfg.get, self.family, self.telemetry.probe_instruments
        )
        if self.options.sanity_only:
            if not local_ok.check():
                raise WorkerError(f"IPv{self.family}: health check failed")
            self.log.info("local clock check passed")
            return
        while not scope.cancelled:
            if not self.cfg.is_live(self.family):
                self._wait_until_live(scope)
                continue
            if self.hooks.wait_if_paused is not None:
                self.hooks.wait_if_paused(scope)
            count, err = self._retry_batches(scope, local_ok)
            if err is not None and not isinstance(err, NoWork):
                self.log.warning("backoff error", extra={"error": str(err)})
            if count:
                self.log.debug("batch processing", extra={"count": count})
            if self.options.once:
                return

    def _wait_until_live(self, scope: Scope) -> None:
        self.log.info("not live; waiting for a config change")
        while not self.cfg.is_live(self.family):
            waiter = self.cfg.wait_for_config_change(scope)
            waiter.wait()
            if scope.cancelled:
                raise Cancelled()

    # -- config loop (§10.2) ------------------------------------------------------------
    def _config_loop(self, scope: Scope) -> None:
        """GetConfig hourly or at once after a config change; it must outlive any failure."""
        first_run, errors = True, 0
        while not scope.cancelled:
            waiter = self.cfg.wait_for_config_change(scope)
            try:
                resp = self.client.get_config(self.mon_id)
                first_run = self._apply_config(resp, first_run)
                wait = CONFIG_INTERVAL
            except Exception as exc:  # a bug in a hook must not stop config updates either
                errors += 1
                wait = min(10.0 * errors, CONFIG_ERROR_MAX) if first_run else CONFIG_ERROR_MAX
                msg = "expired certificate" if "expired certificate" in str(exc) else "GetConfig"
                self.log.warning(f"{msg} failed", extra={"error": str(exc), "retry_in": wait})
            if waiter.wait(wait) and not scope.cancelled:
                self.log.info("HTTP config changed; fetching config")
            waiter.cancel()

    def _apply_config(self, resp: pb.GetConfigResponse, first_run: bool) -> bool:
        """Use a GetConfig answer; returns whether the initial config is still awaited."""
        self.mon_cfg.update(resp)
        if self.hooks.on_config is not None:
            self.hooks.on_config(self.family, resp)
        if resp.otlp_log_level:
            if self.hooks.on_otlp_level is not None:
                self.hooks.on_otlp_level(resp.otlp_log_level)
            self.cfg.set_cached_otlp_log_level(resp.otlp_log_level)
        if first_run and resp.base_checks:
            self._initial_config.set()
            return False
        if first_run:
            self.log.warning("no BaseChecks in config")
        return first_run

    # -- batches (§10.3, §10.4) ---------------------------------------------------------
    def _retry_batches(self, scope: Scope, local_ok: LocalCheck) -> tuple[int, Exception | None]:
        backoff = Backoff(3, 120, jitter=0.3)
        started = time.monotonic()
        while True:
            try:
                return self._do_batch(scope, local_ok), None
            except (NtpmonError, NoWork) as exc:
                err: Exception = exc
            if not isinstance(err, NoWork):
                self.log.warning("batch failed", extra={"error": str(err)})
            if time.monotonic() - started > RETRY_GIVE_UP:
                return 0, err
            if not scope.sleep(backoff.next_delay()):
                raise Cancelled()
            if not self.cfg.is_live(self.family):
                return 0, err

    def _do_batch(self, scope: Scope, local_ok: LocalCheck) -> int:
        if not local_ok.check():
            wait = local_ok.next_check_in()
            self.log.warning("local clock might not be okay", extra={"retry_in": wait})
            if not scope.sleep(wait):
                raise Cancelled()
            return 0
        with self.telemetry.span("monitor-run", {"ip_version": f"v{self.family}"}) as span:
            try:
                count = self.process_batch()
            except NtpmonError as exc:
                span.record_exception(exc)
                self.log.warning(
                    "batch processing", extra={"error": str(exc), "trace_id": _trace_id(span)}
                )
                raise
        if count == 0 and not self.options.once:
            raise NoWork()
        return count

    def process_batch(self) -> int:
        """One GetServers → probes → SubmitResults round; returns the number submitted."""
        try:
            resp = self.client.get_servers(self.mon_id)
        except RPCError as exc:
            raise RPCError(f"getting server list: {exc}", exc.code) from None
        if resp.HasField("config"):
            self.mon_cfg.update(resp.config, with_mqtt=False)
        if not resp.servers:
            return 0
        batch_id = resp.batch_id.decode(errors="replace")
        if not is_ulid(batch_id):
            raise WorkerError("failed to unmarshal batch ID")
        blog = ContextLog(log, {**(self.log.extra or {}), "batchID": batch_id})
        self.telemetry.tests_requested(self.family, len(resp.servers))
        statuses = self._probe_all(list(resp.servers))
        request = pb.SubmitResultsRequest(
            version=SUBMIT_VERSION, mon_id=self.mon_id, list=statuses, batch_id=resp.batch_id
        )
        try:
            ok = self.client.submit_results(request)
        except RPCError as exc:
            blog.error("SubmitResults refused", extra={"error": str(exc)})
            raise RPCError(f"SubmitResults: {exc}", exc.code) from None
        if not ok:
            blog.error("SubmitResults not okay")
            raise WorkerError("SubmitResults not okay")
        for status in statuses:
            self.telemetry.test_completed(self.family, _result_label(status))
        self.batches += 1
        blog.info("batch submitted", extra={"count": len(statuses)})
        return len(statuses)

    def _probe_all(self, servers: list[pb.Server]) -> list[pb.ServerStatus]:
        """Every server at once (the server caps a batch); results in completion order.

        Each probe runs in a copy of this thread's context, so its ``monitor.CheckHost`` span
        joins the batch's ``monitor-run`` trace (pool threads do not inherit it by themselves).
        """
        cfg = self.mon_cfg.get()
        self._start_traces(servers, cfg)
        out: list[pb.ServerStatus] = []
        with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="probe") as pool:
            instruments = self.telemetry.probe_instruments
            futures = [
                pool.submit(contextvars.copy_context().run, self.probe, s, cfg, instruments)
                for s in servers
            ]
            for future in as_completed(futures):
                try:
                    status = future.result()
                except Exception as exc:  # a bug in one probe must not lose the whole batch
                    self.log.exception("probe failed", extra={"error": str(exc)})
                    continue
                if status is not None:
                    out.append(status)
        return out

    def _start_traces(self, servers: list[pb.Server], cfg: CheckConfig) -> None:
        """Hand the servers marked ``trace`` to the hook (logged and skipped without one)."""
        for ip in traced_servers(servers):
            if self.hooks.on_trace is None:
                self.log.info("traceroute requested; no traceroute support", extra={"ip": str(ip)})
                continue
            self.log.info("traceroute requested", extra={"ip": str(ip)})
            self.hooks.on_trace(ip, cfg)


def traced_servers(servers: list[pb.Server]) -> list[IPAddress]:
    """The addresses of the servers GetServers marked ``trace`` (unparsable ones skipped)."""
    found = (ip_from_bytes(s.ip_bytes) for s in servers if s.trace)
    return [ip for ip in found if ip is not None]


def _result_label(status: pb.ServerStatus) -> str:
    if status.no_response:
        return "no_response"
    return "error" if status.error else "ok"


def _trace_id(span: Any) -> str:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx and ctx.trace_id else ""
