"""Every bad input of issue 4 on every protocol of the RPC port (issue 14): the status code,
the message, for Connect the HTTP status connect-go sends, and the database unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, RunningApi, seed, snapshot, status_for
from rpc_clients import PROTOCOLS, Peer, RpcCallError, RpcClient, check_failure, protocol_matrix
from rpc_clients import rpc_client as open_client
from sqlalchemy import update

from ntpmon.api import ipbytes
from ntpmon.api.ca import IssuedCertificate
from ntpmon.api.identity import MISSING_NAME
from ntpmon.api.submit import MAX_RESULTS
from ntpmon.common.clock import FixedClock
from ntpmon.common.ulid import encode, new_ulid
from ntpmon.db import admin
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import monitors
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db
Code = grpc.StatusCode


def rpc_client(api: RunningApi, protocol: str, cert: IssuedCertificate | None) -> RpcClient:
    return open_client(protocol, Peer(api.port, api.ca.root_pem(), cert))


def _fresh_batch(api: RunningApi) -> pb.GetServersResponse:
    channel, stub = api.stub(api.client_cert())
    with channel:
        return stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))


def _request(batch: pb.GetServersResponse) -> pb.SubmitResultsRequest:
    return pb.SubmitResultsRequest(
        version=4,
        mon_id=MONITOR_IP,
        batch_id=batch.batch_id,
        list=[status_for(s) for s in batch.servers],
    )


def _forged(req, api, ids, clock):
    req.list[1].ticket = b"1-" + b"A" * 43


def _other_monitor(req, api, ids, clock):
    st = req.list[0]
    st.ticket = api.signer.sign(ids.monitor6_id, req.batch_id.decode(), st.ip_bytes)


def _other_batch(req, api, ids, clock):
    st = req.list[0]
    st.ticket = api.signer.sign(ids.monitor_id, new_ulid(clock.now()).text, st.ip_bytes)


def _other_ip(req, api, ids, clock):
    req.list[0].ip_bytes = req.list[1].ip_bytes


def _mapped_ip(req, api, ids, clock):
    req.list[0].ip_bytes = b"\0" * 10 + b"\xff\xff" + req.list[0].ip_bytes


def _five_byte_ip(req, api, ids, clock):
    req.list[0].ip_bytes = req.list[0].ip_bytes + b"\x05"


def _empty_ip(req, api, ids, clock):
    req.list[0].ip_bytes = b""


def _signed_for(ip: str) -> Callable:
    def mutate(req, api, ids, clock):
        raw = ipbytes.text_to_bytes(ip)
        req.list[2].ip_bytes = raw
        req.list[2].ticket = api.signer.sign(ids.monitor_id, req.batch_id.decode(), raw)

    return mutate


def _unassigned_server(req, api, ids, clock):
    with api.service.engine.begin() as conn:
        admin.create_server(conn, ip="198.51.100.99", now=clock.now())
    _signed_for("198.51.100.99")(req, api, ids, clock)


def _version(v: int) -> Callable:
    def mutate(req, api, ids, clock):
        req.version = v

    return mutate


def _batch_id(text: bytes) -> Callable:
    def mutate(req, api, ids, clock):
        req.batch_id = text

    return mutate


def _future_batch(req, api, ids, clock):
    req.batch_id = new_ulid(clock.now() + timedelta(minutes=2)).text.encode()


def _older_than_last(req, api, ids, clock):
    with api.service.engine.begin() as conn:
        conn.execute(
            update(monitors)
            .where(monitors.c.id == ids.monitor_id)
            .values(last_submit=(clock.now() + timedelta(seconds=1)).replace(tzinfo=None))
        )


def _too_many(req, api, ids, clock):
    first = req.list[0]
    del req.list[:]
    req.list.extend([first] * (MAX_RESULTS + 1))


def _stratum(value: int) -> Callable:
    def mutate(req, api, ids, clock):
        req.list[0].stratum = value

    return mutate


def _oversized(req, api, ids, clock):
    req.list[0].error = "x" * (2 << 20)


def _paused(req, api, ids, clock):
    with api.service.engine.begin() as conn:
        admin.set_monitor_status(
            conn, id=ids.monitor_id, status=MonitorStatus.PAUSED, now=clock.now()
        )


def _deleted(req, api, ids, clock):
    with api.service.engine.begin() as conn:
        admin.set_monitor_status(
            conn, id=ids.monitor_id, status=MonitorStatus.DELETED, now=clock.now()
        )


def _unknown_mon_id(req, api, ids, clock):
    req.mon_id = "192.0.2.99"


SUBMIT_CASES = {
    "forged ticket": (_forged, Code.INVALID_ARGUMENT, "signature validation failed"),
    "ticket of another monitor": (_other_monitor, Code.INVALID_ARGUMENT, "signature"),
    "ticket of another batch": (_other_batch, Code.INVALID_ARGUMENT, "signature"),
    "ticket for another IP": (_other_ip, Code.INVALID_ARGUMENT, "signature"),
    "IPv4-mapped IP bytes": (_mapped_ip, Code.INVALID_ARGUMENT, "signature"),
    "malformed IP bytes (5)": (_five_byte_ip, Code.INVALID_ARGUMENT, "signature"),
    "empty IP bytes": (_empty_ip, Code.INVALID_ARGUMENT, "signature"),
    "server not handed out (no server)": (_signed_for("203.0.113.7"), Code.INTERNAL, "unknown"),
    "server not handed out (unassigned)": (_unassigned_server, Code.INTERNAL, "not assigned"),
    "version 2": (_version(2), Code.INVALID_ARGUMENT, "Version Unsupported"),
    "version 5": (_version(5), Code.INVALID_ARGUMENT, "Version Unsupported"),
    "batch id 25 chars": (_batch_id(b"0" * 25), Code.INVALID_ARGUMENT, "invalid batch ID"),
    "batch id with U": (_batch_id(b"0" * 25 + b"U"), Code.INVALID_ARGUMENT, "invalid batch ID"),
    "batch id overflow": (_batch_id(b"8" + b"0" * 25), Code.INVALID_ARGUMENT, "invalid batch ID"),
    "batch id past year 9999": (
        _batch_id(b"7" + b"Z" * 25),
        Code.INVALID_ARGUMENT,
        "invalid batch ID",
    ),
    "batch id from the future": (_future_batch, Code.FAILED_PRECONDITION, "future"),
    "out-of-order batch": (_older_than_last, Code.FAILED_PRECONDITION, "invalid batch submission"),
    "too many results": (_too_many, Code.INVALID_ARGUMENT, "too many results"),
    "stratum 256": (_stratum(256), Code.INVALID_ARGUMENT, "stratum"),
    "stratum -1": (_stratum(-1), Code.INVALID_ARGUMENT, "stratum"),
    "oversized message": (_oversized, Code.RESOURCE_EXHAUSTED, ""),
    "paused monitor": (_paused, Code.PERMISSION_DENIED, "monitor not active"),
    "deleted monitor": (_deleted, Code.NOT_FOUND, "no such monitor"),
    "unknown mon_id": (_unknown_mon_id, Code.NOT_FOUND, "no such monitor"),
}


SUBMIT_SUBSET = ["forged ticket", "version 2", "oversized message", "paused monitor"]


@pytest.mark.parametrize(("protocol", "case"), protocol_matrix(list(SUBMIT_CASES), SUBMIT_SUBSET))
def test_bad_submission_changes_nothing(protocol, case, db, clock, api):
    mutate, code, message = SUBMIT_CASES[case]
    ids = seed(db, clock)
    batch = _fresh_batch(api)
    assert len(batch.servers) == 3
    request = _request(batch)
    mutate(request, api, ids, clock)
    before = snapshot(db)
    with (
        rpc_client(api, protocol, api.client_cert()) as client,
        pytest.raises(RpcCallError) as err,
    ):
        client.call("SubmitResults", request)
    check_failure(protocol, err.value, code)
    assert message in err.value.message
    assert snapshot(db) == before


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_replay_of_an_older_accepted_batch_is_refused(protocol, db, clock, api):
    seed(db, clock)
    first = _request(_fresh_batch(api))
    clock.advance(1)
    with rpc_client(api, protocol, api.client_cert()) as client:
        second = _request(_fresh_batch(api))  # a newer, empty batch
        assert not second.list
        assert client.call("SubmitResults", second).ok
        before = snapshot(db)
        with pytest.raises(RpcCallError) as err:
            client.call("SubmitResults", first)
    check_failure(protocol, err.value, Code.FAILED_PRECONDITION)
    assert snapshot(db) == before


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forged_batch_id_cannot_move_last_submit_forward(protocol, db, clock, api):
    """Upstream advanced last_submit before checking tickets; here it stays put."""
    seed(db, clock)
    request = _request(_fresh_batch(api))
    request.batch_id = encode((int(clock.now().timestamp() * 1000) + 30_000) << 80).encode()
    before = snapshot(db)
    with (
        rpc_client(api, protocol, api.client_cert()) as client,
        pytest.raises(RpcCallError) as err,
    ):
        client.call("SubmitResults", request)
    check_failure(protocol, err.value, Code.INVALID_ARGUMENT)
    assert snapshot(db) == before


def _call_all(client: RpcClient) -> list[RpcCallError]:
    """Each of the three methods once; every one must fail."""
    failures = []
    for method, request in (
        ("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP)),
        ("GetServers", pb.GetServersRequest(mon_id=MONITOR_IP)),
        ("SubmitResults", pb.SubmitResultsRequest(version=4, mon_id=MONITOR_IP, batch_id=b"")),
    ):
        with pytest.raises(RpcCallError) as err:
            client.call(method, request)
        failures.append(err.value)
    return failures


def _check_all(protocol: str, failures: list[RpcCallError], code: Code, message: str) -> None:
    assert len(failures) == 3
    for failure in failures:
        check_failure(protocol, failure, code)
        assert message in failure.message


def _cert_cases(api: RunningApi, foreign_ca):
    hour = timedelta(hours=1)
    return {
        "no client certificate": (None, Code.UNAUTHENTICATED, "Authentication required"),
        "certificate from another CA": (
            foreign_ca.issue_client(MONITOR_NAME, hour),
            Code.UNAVAILABLE,
            "",
        ),
        "certificate with a non-monitor name": (
            api.ca.issue_custom("x", ["foo.example.com"], hour),
            Code.UNAUTHENTICATED,
            MISSING_NAME,
        ),
        "certificate without SAN (name only in CN)": (
            api.ca.issue_custom(MONITOR_NAME, [], hour),
            Code.UNAUTHENTICATED,
            MISSING_NAME,
        ),
        "certificate of an unknown monitor": (
            api.ca.issue_client("other-zzz999.devel.mon.ntppool.dev", hour),
            Code.NOT_FOUND,
            "no such monitor",
        ),
        "expired certificate": (
            api.ca.with_clock(FixedClock(datetime.now(UTC) - timedelta(days=2))).issue_client(
                MONITOR_NAME, hour
            ),
            Code.UNAVAILABLE,
            "",
        ),
    }


CERT_CASES = [
    "no client certificate",
    "certificate from another CA",
    "certificate with a non-monitor name",
    "certificate without SAN (name only in CN)",
    "certificate of an unknown monitor",
    "expired certificate",
]


CERT_SUBSET = ["no client certificate", "certificate from another CA", "expired certificate"]


@pytest.mark.parametrize(("protocol", "case"), protocol_matrix(CERT_CASES, CERT_SUBSET))
def test_bad_certificates_are_refused_and_change_nothing(
    protocol, case, db, clock, api, foreign_ca
):
    seed(db, clock)
    cert, code, message = _cert_cases(api, foreign_ca)[case]
    before = snapshot(db)
    with rpc_client(api, protocol, cert) as client:
        _check_all(protocol, _call_all(client), code, message)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("protocol", "status"),
    protocol_matrix([MonitorStatus.PAUSED, MonitorStatus.PENDING], [MonitorStatus.PAUSED]),
)
def test_monitor_not_live_only_stamps_last_seen(protocol, status, db, clock, api):
    """GetConfig/GetServers keep upstream's last_seen bookkeeping; nothing else moves."""
    ids = seed(db, clock, status=status)
    with db.begin() as conn:
        conn.execute(update(monitors).where(monitors.c.id == ids.monitor_id).values(last_seen=None))
    before = snapshot(db)
    with rpc_client(api, protocol, api.client_cert()) as client:
        _check_all(protocol, _call_all(client), Code.PERMISSION_DENIED, "monitor not active")
    after = snapshot(db)
    assert {k for k in before if before[k] != after[k]} == {"monitors"}
    with db.connect() as conn:
        seen = (
            conn.execute(monitors.select().where(monitors.c.id == ids.monitor_id)).one().last_seen
        )
    assert seen == clock.now().replace(tzinfo=None)
