"""Operations: trace spans per RPC with the agent's parent context, graceful shutdown."""

from __future__ import annotations

import threading
from datetime import timedelta

import grpc
import pytest
from api_testkit import MONITOR_IP, RpcServer, seed, status_for
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import func, select

from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.service import MonitorService
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.api.tracing import RpcTracer
from ntpmon.db.tables import log_scores, monitors
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

pytestmark = pytest.mark.db

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class _Server:
    def __init__(self, db, clock, ca, tracer):
        self.metrics = ApiMetrics()
        self.signer = TicketSigner(StaticKeyring({1: b"k1"}))
        service = MonitorService(db, self.signer, clock, self.metrics, tracer=tracer)
        self.listener = RpcServer(service, self.metrics, ca, tracer=tracer)
        client = ca.issue_client("uspao1-abc123.devel.mon.ntppool.dev", timedelta(hours=1))
        self.channel = grpc.secure_channel(
            f"127.0.0.1:{self.listener.port}",
            grpc.ssl_channel_credentials(
                ca.root_pem().encode(), client.key_pem.encode(), client.cert_pem.encode()
            ),
        )
        self.stub = pb_grpc.MonitorServiceStub(self.channel)


def _full_batch(server: _Server) -> pb.SubmitResultsRequest:
    """A fresh batch with a good result for every server handed out."""
    batch = server.stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
    return pb.SubmitResultsRequest(
        version=4,
        mon_id=MONITOR_IP,
        batch_id=batch.batch_id,
        list=[status_for(s) for s in batch.servers],
    )


def _lock_monitors(db):
    """Hold the monitors' row locks (SQLite: the write lock) until the returned tx ends."""
    blocker = db.connect()
    tx = blocker.begin()
    if db.dialect.name != "sqlite":  # on SQLite, BEGIN IMMEDIATE already holds the lock
        blocker.execute(select(monitors.c.id).with_for_update())
    return blocker, tx


def test_a_span_per_rpc_with_parent_monitor_batch_and_transaction(db, clock, ca):
    ids = seed(db, clock)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = _Server(db, clock, ca, RpcTracer(provider))
    try:
        reply = server.stub.GetServers(
            pb.GetServersRequest(mon_id=MONITOR_IP), metadata=[("traceparent", PARENT)]
        )
        with pytest.raises(grpc.RpcError):
            server.stub.GetServers(pb.GetServersRequest(mon_id="192.0.2.250"))
    finally:
        server.channel.close()
        server.listener.stop(1)
    spans = exporter.get_finished_spans()
    rpc = [s for s in spans if s.name == "monitor-api/GetServers"]
    assert len(rpc) == 2
    ok, failed = rpc
    assert format(ok.context.trace_id, "032x") == TRACE_ID
    assert ok.attributes["monitor_name"] == "uspao1-abc123.devel.mon.ntppool.dev"
    assert ok.attributes["monitor_id"] == ids.monitor_id
    assert ok.attributes["monitor_account"] == ids.account_id
    assert ok.attributes["batchID"] == reply.batch_id.decode()
    tx = [s for s in spans if s.name == "db.get_servers"]
    assert tx[0].parent.span_id == ok.context.span_id
    assert not failed.status.is_ok
    assert "NOT_FOUND" in failed.status.description


def test_shutdown_lets_an_in_flight_batch_finish(db, clock, ca):
    """A batch blocked on the database when shutdown starts still commits completely."""
    seed(db, clock)
    server = _Server(db, clock, ca, RpcTracer())
    request = _full_batch(server)
    blocker, tx = _lock_monitors(db)
    outcome: dict[str, object] = {}

    def submit() -> None:
        try:
            outcome["reply"] = server.stub.SubmitResults(request, timeout=30)
        except grpc.RpcError as exc:
            outcome["error"] = exc.code()

    caller = threading.Thread(target=submit)
    caller.start()
    pause = threading.Event()
    pause.wait(0.5)  # the call reaches the database lock and waits there
    stopper = threading.Thread(target=server.listener.stop, args=(20,))
    stopper.start()
    pause.wait(0.3)  # shutdown has begun while the batch is still in flight
    tx.rollback()
    blocker.close()
    caller.join(30)
    stopper.join(30)
    with pytest.raises(grpc.RpcError) as after:
        server.stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP), timeout=5)
    server.channel.close()
    assert after.value.code() == grpc.StatusCode.UNAVAILABLE
    assert outcome.get("reply") is not None, outcome
    assert outcome["reply"].ok
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_scores)).scalar() == 3


def test_the_same_batch_submitted_concurrently_is_recorded_once(db, clock, ca):
    seed(db, clock)
    server = _Server(db, clock, ca, RpcTracer())
    request = _full_batch(server)
    codes: list[grpc.StatusCode] = []
    blocker, tx = _lock_monitors(db)

    def submit() -> None:
        try:
            server.stub.SubmitResults(request, timeout=30)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    threading.Event().wait(0.5)  # all four have read the monitor and wait for its row lock
    tx.rollback()
    blocker.close()
    for t in threads:
        t.join(30)
    server.channel.close()
    server.listener.stop(1)
    assert sorted(c.name for c in codes) == ["ALREADY_EXISTS"] * 3 + ["OK"]
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_scores)).scalar() == 3


def test_one_access_log_line_per_rpc_with_the_monitor_name(db, clock, ca, caplog):
    seed(db, clock)
    server = _Server(db, clock, ca, RpcTracer())
    with caplog.at_level("INFO", logger="ntpmon.api.access"):
        server.stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP))
        with pytest.raises(grpc.RpcError):
            server.stub.GetConfig(pb.GetConfigRequest(mon_id="192.0.2.99"))
    server.channel.close()
    server.listener.stop(1)
    records = [r for r in caplog.records if r.name == "ntpmon.api.access"]
    assert [(r.method, r.code, r.monitor) for r in records] == [
        ("GetConfig", "OK", "uspao1-abc123.devel.mon.ntppool.dev"),
        ("GetConfig", "NOT_FOUND", "uspao1-abc123.devel.mon.ntppool.dev"),
    ]
    assert all(r.peer.startswith("ipv4:127.0.0.1:") for r in records)
