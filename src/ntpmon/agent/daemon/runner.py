"""``monitor``: gates, then one worker per enabled IP version, until shutdown (agent.md §10.1)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ntpmon.agent.cli.options import DevelKnobs
from ntpmon.agent.config import gates
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import env_from_tls_name, monitor_api_host
from ntpmon.agent.config.manager import ConfigManager
from ntpmon.agent.daemon.otlpexport import OtlpSettings, otlp_settings
from ntpmon.agent.daemon.scope import Cancelled, Scope
from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.agent.daemon.worker import Worker, WorkerHooks, WorkerOptions
from ntpmon.agent.transport import RPCSettings, open_monitor_client
from ntpmon.common.errors import NtpmonError
from ntpmon.ntp.instruments import ProbeInstruments

log = logging.getLogger(__name__)


class MonitorError(NtpmonError):
    """``monitor`` cannot run (gate gave up, no API, a worker failed)."""


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    once: bool = False
    sanity_only: bool = False
    ipv4: bool = True
    ipv6: bool = True
    rpc: RPCSettings = field(default_factory=RPCSettings)
    knobs: DevelKnobs = field(default_factory=DevelKnobs)
    debug: bool = False
    telemetry: bool = True
    """Export traces, metrics and logs over OTLP (``--telemetry``, agent.md §14)."""

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(f for f, on in ((4, self.ipv4), (6, self.ipv6)) if on)


BackgroundTask = Callable[[AppConfig, Scope, ProbeInstruments], None]
"""A task beside the workers (the MQTT client): (config, scope to stop on, probe instruments)."""


def monitor_api_url(cfg: AppConfig, environ: Mapping[str, str]) -> str:
    """From the TLS name's environment; ``DEVEL_API_SERVER`` overrides it."""
    if environ.get("DEVEL_API_SERVER"):
        return environ["DEVEL_API_SERVER"]
    try:
        return monitor_api_host(env_from_tls_name(cfg.tls_name()), environ)
    except ValueError as exc:
        raise MonitorError(f"could not setup API: {exc}") from None


def telemetry_settings(
    cfg: AppConfig, opts: MonitorOptions, environ: Mapping[str, str]
) -> OtlpSettings | None:
    """OTLP export with the state directory's client certificate, trusting the monitor CA
    (the same candidates, in the same order, as the RPC client)."""
    if not opts.telemetry:
        return None
    return otlp_settings(
        cfg.env,
        environ,
        client_cert=cfg.cert_path,
        client_key=cfg.key_path,
        ca_files=(
            Path(opts.rpc.rpc_ca_file) if opts.rpc.rpc_ca_file else None,
            cfg.ca_path,
            Path(opts.rpc.ca_file) if opts.rpc.ca_file else None,
        ),
    )


def run_monitor(
    cfg: AppConfig,
    opts: MonitorOptions,
    scope: Scope,
    *,
    environ: Mapping[str, str],
    worker_factory: Callable[..., Worker] = Worker,
    manager: ConfigManager | None = None,
    hooks: WorkerHooks = WorkerHooks(),  # noqa: B008 - frozen dataclass
    background: Sequence[BackgroundTask] = (),
) -> None:
    """Block until ``scope`` is cancelled (or, with --once/--sanity-only, the work is done).

    ``hooks`` and ``background`` are where the MQTT client plugs in (agent.md §13): background
    tasks start with the workers in daemon mode and are cancelled with them. They get the
    telemetry's probe instruments, made only after the gates, so that MQTT ad-hoc checks are
    recorded like the workers' probes.
    """
    daemon = not (opts.once or opts.sanity_only)
    threads: list[threading.Thread] = []
    if daemon:
        mgr = manager or ConfigManager(cfg)
        threads.append(_start("config-manager", mgr.run, scope))
    try:
        if daemon:
            gates.wait_until_live(cfg, scope, opts.families)
        else:
            gates.wait_until_configured(cfg, scope)
    except Cancelled:
        _join(threads)
        return
    except NtpmonError:
        scope.cancel()
        _join(threads)
        raise
    telemetry = Telemetry(  # after the gates: there is a client certificate to export with
        cfg.env.value,
        otlp=telemetry_settings(cfg, opts, environ),
        debug=opts.debug,
        otlp_log_level=cfg.data().otlp_log_level,  # the cached server preference (§4.4)
    )
    telemetry.watch_certificate(
        lambda: cfg.certificate().not_after if cfg.have_certificate() else None
    )
    client = open_monitor_client(
        opts.rpc,
        cfg,
        monitor_api_url(cfg, environ),
        on_call=telemetry.rpc_done,
        tracer=telemetry.tracer,
    )
    wopts = WorkerOptions(opts.once, opts.sanity_only, opts.knobs.port, opts.knobs.allow_loopback)
    errors: list[BaseException] = []
    work = Scope(scope)

    def run_worker(family: int) -> None:
        worker = worker_factory(
            family,
            cfg,
            client,
            telemetry,
            wopts,
            hooks=replace(hooks, on_otlp_level=telemetry.set_otlp_log_level),
        )
        try:
            worker.run(work)
        except BaseException as exc:
            log.error("worker failed", extra={"ip_version": f"v{family}", "error": str(exc)})
            errors.append(exc)
            work.cancel()

    workers = [_start(f"worker-v{f}", run_worker, f) for f in opts.families]
    if daemon:
        instruments = telemetry.probe_instruments
        threads += [
            _start(f"task-{i}", task, cfg, work, instruments) for i, task in enumerate(background)
        ]
    _join(workers)
    scope.cancel()  # workers end on shutdown, an error, or after --once: stop the rest too
    _join(threads)
    work.close()
    client.close()
    if cfg.have_certificate():
        telemetry.shutdown()
    if errors:
        first = errors[0]
        raise first if isinstance(first, NtpmonError) else MonitorError(str(first))


def _start(name: str, target: Callable[..., None], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def _join(threads: list[threading.Thread]) -> None:
    """Join with a timeout loop so the main thread keeps handling signals."""
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
