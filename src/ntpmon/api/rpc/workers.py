"""RPC worker processes for ``monitor-api server --processes N``.

One Python process tops out at about one core (the GIL), and a SubmitResults batch is mostly
Python CPU (driver, SQL, protobuf). With ``--processes N`` the main process spawns N-1 workers
that each serve the RPC listener on the same port (``SO_REUSEPORT``: the kernel spreads
incoming connections over the processes). Workers share the data directory: the embedded CA,
the server certificate the main process wrote at start, and the ticket keys (read-only here;
the main process owns rotation, and a worker re-reads the key file when it meets a newer
version) and the token-signing key. Management, health and metrics stay in the main process; metrics
of every process are summed through prometheus_client's multiprocess mode.

A worker is ``python -m ntpmon.api.rpc.workers`` with its :class:`WorkerSpec` as JSON on stdin
(so the MQTT JWT key never shows in a process listing); it prints ``ready`` on stdout once
listening and stops gracefully on SIGTERM like the main process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)

READY = "ready"
RESTART_DELAY = 1.0  # seconds between a worker's unexpected exit and its replacement
ORPHAN_CHECK = 1.0  # seconds between a worker's checks that its main process still runs


class WorkerStartError(NtpmonError):
    """An RPC worker process did not come up."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs to serve the RPC listener like the main process does."""

    dsn: str | None
    data_dir: str
    address: str
    tls_cert: str
    tls_key: str
    client_ca_files: list[str]
    client_ca_pem: str  # the main process's CA root (embedded or Vault PKI), if trusted
    public_url: str  # the issuer of ntpmon's own JWTs
    jwt_issuer: str
    jwks_url: str
    jwks_ca_file: str
    env: str
    max_workers: int
    grace: float
    log_level: str
    mqtt_host: str
    mqtt_port: int
    jwt_key: str
    ticket_keys: str = "file"  # "vault": read (never rotate) the keys in Vault KV
    handshake_timeout: float = 10.0  # the listener's limits (ListenerLimits), flat for JSON
    keep_alive_timeout: float = 75.0
    max_connections: int = 1024


def spawn(spec: WorkerSpec, ready_timeout: float = 60.0) -> subprocess.Popen[str]:
    """Start one worker and wait until it listens; raises :class:`WorkerStartError`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ntpmon.api.rpc.workers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(dataclasses.asdict(spec)))
    proc.stdin.close()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        line = proc.stdout.readline() if selector.select(ready_timeout) else ""
    if line.strip() != READY:
        proc.kill()
        proc.wait()
        raise WorkerStartError(f"RPC worker did not start (exit status {proc.returncode})")
    return proc


class WorkerPool:
    """N-1 worker processes, replaced when one dies, stopped together with the server."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self._spec = spec
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.processes = [spawn(spec) for _ in range(count)]
        for proc in self.processes:
            log.info("RPC worker started", extra={"pid": proc.pid})
        self._watcher = threading.Thread(target=self._watch, name="rpc-workers", daemon=True)
        self._watcher.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.processes]

    def _watch(self) -> None:
        while not self._stopping.wait(RESTART_DELAY):
            for index, proc in enumerate(list(self.processes)):
                if proc.poll() is None or self._stopping.is_set():
                    continue
                log.error(
                    "RPC worker exited, restarting",
                    extra={"pid": proc.pid, "status": proc.returncode},
                )
                try:
                    replacement = spawn(self._spec)
                except WorkerStartError as exc:
                    log.error("RPC worker restart failed", extra={"error": str(exc)})
                    continue
                with self._lock:
                    self.processes[index] = replacement

    def terminate(self) -> None:
        """Ask every worker to stop (SIGTERM: in-flight RPCs get the grace period)."""
        self._stopping.set()
        with self._lock:
            for proc in self.processes:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait for the workers after :meth:`terminate`; kill those still running."""
        self._watcher.join(timeout=RESTART_DELAY * 2)
        for proc in self.processes:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.error("RPC worker did not stop, killing it", extra={"pid": proc.pid})
                proc.kill()
                proc.wait()


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """A worker whose main process died (SIGKILL, crash) stops instead of serving on alone."""
    while not stop.wait(ORPHAN_CHECK):
        if os.getppid() != parent:
            log.error("main process gone, stopping", extra={"parent": parent})
            stop.set()


def serve(spec: WorkerSpec) -> None:
    """The worker's life: listen, say ``ready``, serve until SIGTERM/SIGINT, stop gracefully."""
    from ntpmon.api.admission import PriorityScheduler
    from ntpmon.api.jwks import external_tokens
    from ntpmon.api.jwtauth import JwtVerifier
    from ntpmon.api.metrics import ApiMetrics
    from ntpmon.api.oidc import TokenIssuer
    from ntpmon.api.rpc.app import RpcApp
    from ntpmon.api.rpc.dispatch import CallerIdentity, Dispatcher
    from ntpmon.api.rpc.listener import ListenerLimits, open_listener
    from ntpmon.api.rpc.tlsfiles import ReloadingContext, TlsFiles
    from ntpmon.api.service import PING_AFTER_IDLE, MonitorService, MqttSettings
    from ntpmon.api.ticketkeys import keyring_for
    from ntpmon.api.tickets import TicketSigner
    from ntpmon.api.tracing import tracer_from_environment
    from ntpmon.api.vault import VaultSession, VaultSettings, vault_keyring
    from ntpmon.common.clock import SystemClock
    from ntpmon.common.environments import parse_env
    from ntpmon.common.logsetup import setup_logging
    from ntpmon.db.engine import open_database

    setup_logging(spec.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(
        target=_stop_when_orphaned, args=(os.getppid(), stop), name="parent", daemon=True
    ).start()
    data_dir = Path(spec.data_dir)
    engine = open_database(
        spec.dsn,
        default_sqlite=data_dir / "ntpmon.sqlite",
        pool_size=spec.max_workers,
        max_overflow=0,
        ping_after_idle=PING_AFTER_IDLE,
    )
    clock = SystemClock()
    metrics = ApiMetrics()
    tracer = tracer_from_environment(spec.env)
    service = MonitorService(
        engine,
        TicketSigner(
            keyring_for(
                data_dir,
                clock,
                follower=True,
                remote=(
                    vault_keyring(
                        VaultSession(VaultSettings.from_environ()), spec.env, clock, follower=True
                    )
                    if spec.ticket_keys == "vault"
                    else None
                ),
            )
        ),
        clock,
        metrics,
        deploy_env=parse_env(spec.env),
        mqtt=MqttSettings(host=spec.mqtt_host, port=spec.mqtt_port, jwt_key=spec.jwt_key),
        tracer=tracer,
    )
    tls = ReloadingContext(
        TlsFiles(
            cert_file=Path(spec.tls_cert),
            key_file=Path(spec.tls_key),
            client_ca_files=tuple(Path(p) for p in spec.client_ca_files),
            client_ca_pem=spec.client_ca_pem,
        )
    )
    tokens = TokenIssuer.load_or_create(data_dir / "jwt" / "signing.key", spec.public_url)
    scheduler = PriorityScheduler(spec.max_workers, observe=metrics.queued)
    identity = CallerIdentity(
        external_tokens(
            JwtVerifier(tokens.public_key(), spec.public_url),
            spec.jwt_issuer,
            spec.jwks_url,
            Path(spec.jwks_ca_file) if spec.jwks_ca_file else None,
        )
    )
    app = RpcApp(Dispatcher(service, metrics, tracer, identity), scheduler)
    limits = ListenerLimits(
        handshake_timeout=spec.handshake_timeout,
        keep_alive_timeout=spec.keep_alive_timeout,
        max_connections=spec.max_connections,
    )
    listener = open_listener(app, tls, spec.address, reuse_port=True, limits=limits)
    print(READY, flush=True)
    stop.wait()
    listener.stop(spec.grace)
    scheduler.shutdown(wait=False)
    engine.dispose()
    tracer.shutdown()


def main() -> None:
    try:
        serve(WorkerSpec(**json.loads(sys.stdin.read())))
    except NtpmonError as exc:
        print(f"monitor-api worker: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
