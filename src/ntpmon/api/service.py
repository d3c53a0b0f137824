"""The three RPCs of ``monitor.v2.MonitorService`` (api.md §5, §6, §8).

Handlers take the authenticated monitor name from :mod:`ntpmon.api.rpcwrap` and raise
:class:`~ntpmon.api.rpcerrors.RpcError`; the database work lives in :mod:`ntpmon.db.api`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import grpc
from sqlalchemy import Connection, Engine

from ntpmon.api import ipbytes
from ntpmon.api.agentversion import SAFE_ZERO_OFFSET, check_version, version_from_user_agent
from ntpmon.api.metrics import ApiMetrics, MetricLabels
from ntpmon.api.monitor_config import (
    SETTINGS_KEY,
    MonitorConfig,
    MonitorConfigError,
    effective_config,
    parse_schedule,
)
from ntpmon.api.mqtt_jwt import standard_token, topic_prefix
from ntpmon.api.rpcerrors import RpcError, internal, invalid, not_found, not_live
from ntpmon.api.settings_cache import TtlCache
from ntpmon.api.submit import (
    BatchWrites,
    TicketError,
    check_request_shape,
    prepare_batch,
    score_batch,
)
from ntpmon.api.tickets import TicketSigner
from ntpmon.api.tracing import RpcTracer, SpanHandle
from ntpmon.common.clock import Clock, as_utc
from ntpmon.common.environments import DeployEnv, DeployEnvError
from ntpmon.common.ulid import InvalidUlidError, Ulid, new_ulid, parse_ulid
from ntpmon.db import api as q
from ntpmon.db import traceroutes as tr
from ntpmon.db.common import get_system_setting, insert_log_scores
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tx import RetryPolicy, run_in_tx
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.traceroute.plan import batch_states, trace_wanted

T = TypeVar("T")

log = logging.getLogger(__name__)

FUTURE_BATCH_SLACK = timedelta(minutes=1)
SETTINGS_TTL = 5.0  # seconds an edited system setting may take to apply
BATCH_RETRY = RetryPolicy(initial=0.05, factor=2.0, max_interval=0.2, max_elapsed=0.3)
# The pool pings a connection only after this long unused (not per RPC); a connection that
# breaks anyway fails as a connection error, which BATCH_RETRY retries on a fresh one.
PING_AFTER_IDLE = 1.0


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "mqtt.ntppool.net"
    port: int = 1883
    jwt_key: str = ""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the wrapper knows about a call: the certificate name, user agent and RPC span."""

    name: str
    user_agent: str
    span: SpanHandle | None = None

    def annotate(self, **attributes: str | int) -> None:
        if self.span is not None:
            for key, value in attributes.items():
                self.span.set(key, value)


def _labels(ident: q.MonitorIdentity) -> MetricLabels:
    m = ident.monitor
    return MetricLabels(
        monitor=m.tls_name or "",
        ip_version=m.ip_version or "",
        account=ident.account_token,
        account_id=str(ident.account_id),
    )


def _is_live(status: str) -> bool:
    return status in (MonitorStatus.ACTIVE, MonitorStatus.TESTING)


class MonitorService:
    """Implements the RPCs over an engine, a ticket signer and a clock."""

    def __init__(
        self,
        engine: Engine,
        signer: TicketSigner,
        clock: Clock,
        metrics: ApiMetrics,
        *,
        deploy_env: DeployEnv = DeployEnv.DEVEL,
        mqtt: MqttSettings | None = None,
        tracer: RpcTracer | None = None,
        settings_ttl: float = SETTINGS_TTL,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.clock = clock
        self.metrics = metrics
        self.deploy_env = deploy_env
        self.mqtt = mqtt or MqttSettings()
        self.tracer = tracer or RpcTracer()
        self._settings: TtlCache[str, str | None] = TtlCache(settings_ttl)

    def _tx(self, name: str, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction (bounded deadlock retry) under a child span."""
        with self.tracer.child(f"db.{name}"):
            return run_in_tx(self.engine, fn, policy=BATCH_RETRY)

    # -- shared steps -------------------------------------------------------------------------

    def _lookup(self, conn: Connection, call: CallInfo, mon_id: str) -> q.MonitorIdentity:
        # an address or a name is ASCII; a 4-byte UTF-8 character cannot even be compared with
        # a utf8mb3 column (MariaDB fails the query: INTERNAL instead of NOT_FOUND)
        if not mon_id.isascii():
            raise not_found()
        ident = q.get_monitor_for_identity(conn, tls_name=call.name, mon_id=mon_id)
        if ident is None:
            raise not_found()
        call.annotate(monitor_id=ident.monitor.id, monitor_account=ident.account_id)
        return ident

    def _seen(
        self, conn: Connection, call: CallInfo, mon_id: str, now: datetime
    ) -> q.MonitorIdentity:
        """Look up and stamp ``last_seen`` (even for a monitor that is not live)."""
        ident = self._lookup(conn, call, mon_id)
        q.update_monitor_seen(conn, id=ident.monitor.id, now=now)
        return ident

    def _config_or_error(
        self, conn: Connection, ident: q.MonitorIdentity
    ) -> MonitorConfig | RpcError:
        """The merged config, or the INTERNAL error to answer after the bookkeeping commits."""
        ip_version = ident.monitor.ip_version
        defaults = self._settings.get(
            f"system-monitor-{ip_version}",
            lambda: q.get_system_monitor_config(conn, ip_version=ip_version),
        )
        try:
            return effective_config(ident.monitor.config, defaults)
        except MonitorConfigError as exc:
            log.error(
                "could not get config",
                extra={"monitor": ident.monitor.tls_name, "error": str(exc)},
            )
            return internal("could not get config")

    def _config_response(
        self, ident: q.MonitorIdentity, config: MonitorConfig
    ) -> pb.GetConfigResponse:
        try:
            ip = ipbytes.text_to_bytes(ident.monitor.ip or "")
            nat = ipbytes.text_to_bytes(config.nat_ip) if config.nat_ip else b""
        except ValueError:
            raise internal("monitor has no usable IP address") from None
        return pb.GetConfigResponse(
            samples=config.samples,
            ip_bytes=ip,
            ip_nat_bytes=nat,
            base_checks=[c.encode() for c in config.base_checks],
            otlp_log_level=config.otlp_log_level,
        )

    # -- GetConfig ----------------------------------------------------------------------------

    def get_config(self, request: pb.GetConfigRequest, call: CallInfo) -> pb.GetConfigResponse:
        now = self.clock.now()
        version = version_from_user_agent(call.user_agent)

        def work(conn: Connection) -> tuple[q.MonitorIdentity, MonitorConfig | RpcError | None]:
            ident = self._seen(conn, call, request.mon_id, now)
            if not _is_live(ident.monitor.status):
                return ident, None
            if version and version != ident.monitor.client_version:
                q.update_monitor_version(conn, id=ident.monitor.id, client_version=version)
            return ident, self._config_or_error(conn, ident)

        # One transaction: the bookkeeping writes commit even when the answer is an error.
        ident, config = self._tx("get_config", work)
        if config is None:
            raise not_live()
        if isinstance(config, RpcError):
            raise config
        response = self._config_response(ident, config)
        self._attach_mqtt(response, ident, now)
        return response

    def _attach_mqtt(
        self, response: pb.GetConfigResponse, ident: q.MonitorIdentity, now: datetime
    ) -> None:
        if not self.mqtt.jwt_key:
            return
        name = ident.monitor.tls_name or ""
        try:
            token = standard_token(name, self.mqtt.jwt_key, now)
        except DeployEnvError as exc:
            log.warning("no MQTT token", extra={"monitor": name, "error": str(exc)})
            return
        response.mqtt_config.CopyFrom(
            pb.MQTTConfig(
                host=self.mqtt.host.encode(),
                port=self.mqtt.port,
                jwt=token.encode(),
                prefix=topic_prefix(self.deploy_env).encode(),
            )
        )

    # -- GetServers ---------------------------------------------------------------------------

    def get_servers(self, request: pb.GetServersRequest, call: CallInfo) -> pb.GetServersResponse:
        now = self.clock.now()
        batch = new_ulid(now)
        call.annotate(batchID=batch.text)

        def work(
            conn: Connection,
        ) -> tuple[q.MonitorIdentity, MonitorConfig | RpcError | None, list[q.DueServer], set[int]]:
            ident = self._seen(conn, call, request.mon_id, now)
            monitor = ident.monitor
            if not _is_live(monitor.status):
                return ident, None, [], set()
            schedule = parse_schedule(
                self._settings.get(SETTINGS_KEY, lambda: get_system_setting(conn, key=SETTINGS_KEY))
            )
            config = self._config_or_error(conn, ident)
            if isinstance(config, RpcError):
                return ident, config, [], set()
            interval = (
                schedule.interval_active
                if monitor.status == MonitorStatus.ACTIVE
                else schedule.interval_testing
            )
            rows = q.select_servers_for_monitor(
                conn,
                monitor_id=monitor.id,
                ip_version=monitor.ip_version,
                now=now,
                interval=interval,
                interval_testing=schedule.interval_testing,
                interval_all=schedule.interval_all,
                limit=schedule.batch_size,
            )
            q.update_server_score_queue(
                conn, monitor_id=monitor.id, server_ids=[s.id for s in rows], now=now
            )
            traces = self._traces_to_ask(conn, monitor.id, rows, now, schedule.traceroute_interval)
            return ident, config, rows, traces

        # One transaction for the bookkeeping, the selection, the queue update and the traces
        # asked for (one commit).
        ident, config, rows, traces = self._tx("get_servers", work)
        if config is None:
            raise not_live()
        if isinstance(config, RpcError):
            raise config
        monitor = ident.monitor
        self.metrics.requested(_labels(ident), len(rows))
        response = pb.GetServersResponse(
            batch_id=batch.text.encode(), config=self._config_response(ident, config)
        )
        for server in rows:
            try:
                ip = ipbytes.text_to_bytes(server.ip)
            except ValueError:
                raise internal(f"server {server.id} has an invalid IP") from None
            response.servers.append(
                pb.Server(
                    ip_bytes=ip,
                    ticket=self.signer.sign(monitor.id, batch.text, ip),
                    trace=server.id in traces,
                )
            )
        return response

    @staticmethod
    def _remember_health(
        conn: Connection,
        monitor_id: int,
        assignments: Iterable[q.Assignment],
        writes: BatchWrites,
        now: datetime,
    ) -> None:
        """Record path-relevant health changes (issue 17); one write, and only on a change.

        The states come with the assignments (one read for both), so this adds no round trip
        to a batch whose servers' health did not change.
        """
        states = {a.server_id: a.trace_state for a in assignments if a.trace_state is not None}
        changed = batch_states(states, writes.healths, now)
        tr.save_states(conn, monitor_id=monitor_id, states=changed)

    @staticmethod
    def _traces_to_ask(
        conn: Connection, monitor_id: int, rows: list[q.DueServer], now: datetime, interval: int
    ) -> set[int]:
        """The handed-out servers whose health changed and whose last trace is old enough.

        Marked as asked in the same transaction, so a second GetServers does not ask again.
        """
        every = timedelta(seconds=interval)
        wanted = {
            s.id
            for s in rows
            if trace_wanted(
                as_utc(s.trace_due) if s.trace_due else None,
                as_utc(s.last_trace) if s.last_trace else None,
                now,
                every,
            )
        }
        tr.mark_traced(conn, monitor_id=monitor_id, server_ids=wanted, now=now)
        return wanted

    # -- SubmitResults ------------------------------------------------------------------------

    def submit_results(
        self, request: pb.SubmitResultsRequest, call: CallInfo
    ) -> pb.SubmitResultsResponse:
        now = self.clock.now()
        counted: list[tuple[MetricLabels, dict[str, int]]] = []
        # The lookup is a transaction of its own, on purpose. Under REPEATABLE READ the batch
        # transaction reads from a snapshot taken at its first plain read; that read must come
        # after claim_batch has locked the monitor row. Otherwise another batch of this monitor
        # that committed in between (an agent restarted mid-batch, a duplicate agent) would be
        # invisible to the assignments read, and its score steps would be overwritten.
        ident = self._tx("lookup", lambda conn: self._lookup(conn, call, request.mon_id))
        monitor = ident.monitor
        if not _is_live(monitor.status):
            raise not_live()

        def work(conn: Connection) -> tuple[MetricLabels, dict[str, int]]:
            counted.clear()  # a retried attempt must not count twice
            statuses = list(request.list)
            check_request_shape(request.version, statuses)
            labels = _labels(ident)
            try:
                batch = parse_ulid(request.batch_id)
                batch_time = batch.time  # a well-formed id past year 9999 has no time
            except InvalidUlidError:
                raise invalid("invalid batch ID") from None
            call.annotate(batchID=batch.text)
            if batch_time > now + FUTURE_BATCH_SLACK:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "invalid batch submission: batch id is from the future",
                )
            last = monitor.last_submit
            if last is not None and batch_time <= as_utc(last):
                counted.append((labels, {"batch_out_of_order": len(statuses)}))
                raise _order_error(batch, last)
            agent_version = monitor.client_version.split("/", 1)[0]
            try:
                results = prepare_batch(
                    statuses,
                    signer=self.signer,
                    monitor_id=monitor.id,
                    batch_id=batch.text,
                    safe_zero_offset=check_version(agent_version, SAFE_ZERO_OFFSET),
                )
            except TicketError as exc:
                counted.append((labels, {"signature_validation": len(statuses) - exc.index}))
                log.warning(
                    "signature validation failed",
                    extra={"monitor": monitor.tls_name, "batch": batch.text, "index": exc.index},
                )
                raise invalid("signature validation failed") from None
            # Every ticket verified: only now may last_submit move (guarded, row-locking).
            if not q.claim_batch(conn, monitor_id=monitor.id, batch_time=batch_time, now=now):
                raise _order_error(batch, q.get_last_submit(conn, monitor_id=monitor.id))
            found = q.get_assignments_by_ip(
                conn, monitor_id=monitor.id, ips={t for r in results for t in r.spellings}
            )
            assignments = {ipbytes.canonical_of_text(ip): a for ip, a in found.items()}
            writes = score_batch(results, assignments, monitor_id=monitor.id)
            q.update_server_scores(conn, writes.score_updates)
            q.update_servers_stratum(conn, writes.server_strata)
            insert_log_scores(conn, writes.log_rows)
            self._remember_health(conn, monitor.id, found.values(), writes, now)
            log.debug(
                "batch recorded",
                extra={"monitor": monitor.tls_name, "batch": batch.text, "results": len(results)},
            )
            return labels, writes.counts

        try:
            labels, counts = self._tx("submit_results", work)
        except RpcError:
            for labels, counts in counted:  # the refusals that count (api.md §8.5)
                self.metrics.completed(labels, str(request.version), counts)
            raise
        self.metrics.completed(labels, str(request.version), counts)
        return pb.SubmitResultsResponse(ok=True)


def _order_error(batch: Ulid, last_submit: datetime | None) -> RpcError:
    """ALREADY_EXISTS for a retry of the batch last accepted, FAILED_PRECONDITION otherwise."""
    if last_submit is not None and as_utc(last_submit) == batch.time:
        return RpcError(grpc.StatusCode.ALREADY_EXISTS, "batch already submitted")
    return RpcError(grpc.StatusCode.FAILED_PRECONDITION, "invalid batch submission")
