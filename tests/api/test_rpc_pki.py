"""The operator's PKI on the RPC port (api.md §3.4, issue 14 item 3): ``--tls.cert``/``--tls.key``
re-read on change with no restart and no failed batch, a broken replacement ignored with a
warning, and ``--client-ca`` trusting a second CA beside (or instead of) the embedded one."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, SERVER_NAMES, loopback_options, seed
from cryptography import x509
from rpc_clients import Peer, RpcCallError, rpc_client

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.runner import MonitorApiServer
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = [pytest.mark.db, pytest.mark.e2e]
HOUR = timedelta(hours=1)
WAIT = 20.0  # an upper bound for the reload to be seen, never asserted as a timing


def _install(ca: EmbeddedCA, cert_file: Path, key_file: Path, key_from: EmbeddedCA | None = None):
    """A new server certificate written beside the files and renamed over them (atomic)."""
    issued = ca.issue_server(SERVER_NAMES, HOUR)
    key_pem = key_from.issue_server(SERVER_NAMES, HOUR).key_pem if key_from else issued.key_pem
    for path, text in ((key_file, key_pem), (cert_file, issued.cert_pem)):
        tmp = path.with_suffix(".new")
        tmp.write_text(text)
        os.replace(tmp, path)
    return x509.load_pem_x509_certificate(issued.cert_pem.encode()).serial_number


def _served_serial(port: int, trust: str) -> int:
    context = ssl.create_default_context(cadata=trust)
    raw = socket.create_connection(("127.0.0.1", port))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def operator_ca() -> EmbeddedCA:
    return EmbeddedCA.create("operator server CA")


@pytest.fixture
def rotating(db, tmp_path, operator_ca) -> Iterator[tuple[MonitorApiServer, Path, Path, int]]:
    cert_file, key_file = tmp_path / "tls" / "tls.crt", tmp_path / "tls" / "tls.key"
    cert_file.parent.mkdir()
    first = _install(operator_ca, cert_file, key_file)
    server = MonitorApiServer(
        loopback_options(db, tmp_path / "data", tls_cert=cert_file, tls_key=key_file)
    )
    try:
        yield server, cert_file, key_file, first
    finally:
        server.stop()


def test_rotated_certificate_is_served_with_no_failed_batch(db, clock, rotating, operator_ca):
    server, cert_file, key_file, first = rotating
    seed(db, clock)
    trust = operator_ca.root_pem()
    port = server.ports["rpc"]
    assert _served_serial(port, trust) == first
    failures: list[BaseException] = []
    batches = {"grpc": 0, "connect-h1": 0}
    stop = threading.Event()

    def agent() -> None:
        while not stop.is_set():
            for protocol in batches:
                cert = server.ca.issue_client(MONITOR_NAME, HOUR)
                try:
                    with rpc_client(protocol, Peer(port, trust, cert)) as client:
                        batch = client.call("GetServers", pb.GetServersRequest(mon_id=MONITOR_IP))
                        request = pb.SubmitResultsRequest(
                            version=4, mon_id=MONITOR_IP, batch_id=batch.batch_id
                        )
                        assert client.call("SubmitResults", request).ok
                    batches[protocol] += 1
                except BaseException as exc:
                    failures.append(exc)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    second = _install(operator_ca, cert_file, key_file)
    deadline = time.monotonic() + WAIT
    while _served_serial(port, trust) != second and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _served_serial(port, trust) == second
    counted = dict(batches)
    while min(b - counted[p] for p, b in batches.items()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    assert failures == []
    assert all(batches[p] >= counted[p] + 2 for p in batches), (counted, batches)


def test_broken_replacement_keeps_the_old_certificate(db, rotating, operator_ca, caplog):
    server, cert_file, key_file, first = rotating
    trust = operator_ca.root_pem()
    port = server.ports["rpc"]
    caplog.set_level("WARNING", logger="ntpmon.api.rpc.tlsfiles")
    _install(operator_ca, cert_file, key_file, key_from=operator_ca)  # key of another cert
    deadline = time.monotonic() + WAIT
    while "keeping the previous TLS certificate" not in caplog.text:
        assert time.monotonic() < deadline, "no warning logged"
        assert _served_serial(port, trust) == first
        time.sleep(0.1)
    assert _served_serial(port, trust) == first


@pytest.mark.parametrize(
    ("embedded", "issuer", "expected"),
    [
        (True, "pool", None),
        (True, "embedded", None),
        (False, "pool", None),
        (False, "embedded", grpc.StatusCode.UNAVAILABLE),
    ],
)
@pytest.mark.parametrize("protocol", ["grpc", "connect-h1"])
def test_client_ca(protocol, embedded, issuer, expected, db, clock, tmp_path):
    pool_ca = EmbeddedCA.create("pool monitor CA")
    (tmp_path / "pool-ca.pem").write_text(pool_ca.root_pem())
    seed(db, clock)
    server = MonitorApiServer(
        loopback_options(
            db,
            tmp_path / "data",
            client_ca_files=[tmp_path / "pool-ca.pem"],
            embedded_client_ca=embedded,
        )
    )
    try:
        ca = pool_ca if issuer == "pool" else server.ca
        peer = Peer(server.ports["rpc"], server.ca.root_pem(), ca.issue_client(MONITOR_NAME, HOUR))
        with rpc_client(protocol, peer) as client:
            if expected is None:
                config = client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP))
                assert config.ip_bytes == bytes([192, 0, 2, 10])
            else:
                with pytest.raises(RpcCallError) as err:
                    client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP))
                assert err.value.code == expected
    finally:
        server.stop()
