"""Clients this project did not write, behind one ``call(method, request)`` shape, and the
checks every one of them must pass against a real monitor-api (``rpc_clients`` beside it holds
the hand-made wire clients of the conformance tests).

Each client (``buf curl``, the ``connectrpc`` package, grpcio) turns a refusal into
:class:`CallFailedError` with the gRPC status code, so one table of calls and refusals runs against
all of them: a listener that only works with our own client cannot pass.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import grpc
from api_testkit import MONITOR_IP, MONITOR_NAME, UA, Seed, snapshot, status_for
from connectrpc.client import ConnectClientSync
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.compression import Compression
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType
from google.protobuf import json_format
from google.protobuf.message import Message
from pyqwest import SyncClient
from sqlalchemy import Engine, select

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.rpc.dispatch import SERVICE
from ntpmon.api.runner import MonitorApiServer
from ntpmon.db import admin
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import log_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

RESPONSES: dict[str, type[Message]] = {
    "GetConfig": pb.GetConfigResponse,
    "GetServers": pb.GetServersResponse,
    "SubmitResults": pb.SubmitResultsResponse,
}
PROTOCOLS = ("connect", "grpc", "grpcweb")


class CallFailedError(Exception):
    """A refused call as the client reported it; ``exit_status`` for command-line clients."""

    def __init__(self, code: grpc.StatusCode, message: str, exit_status: int | None = None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.exit_status = exit_status


class RpcClient(Protocol):
    def call(self, method: str, request: Message) -> Message:
        """The response, or :class:`CallFailedError`."""
        ...


def status_code(name: str) -> grpc.StatusCode:
    """A Connect code name (``permission_denied``; ``canceled``) as grpc's StatusCode."""
    return grpc.StatusCode["CANCELLED" if name == "canceled" else name.upper()]


@dataclass(frozen=True)
class Credentials:
    """PEM files a client presents: the CA it trusts, and a client certificate or a token."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str = ""

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}


def write_credentials(
    ca: EmbeddedCA, directory: Path, *, cert: bool = False, token: str = ""
) -> Credentials:
    """Files for a client: trust ``ca``; with ``cert`` a client certificate it issued."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_text(ca.root_pem())
    if not cert:
        return Credentials(ca_file, token=token)
    issued = ca.issue_client(MONITOR_NAME, timedelta(hours=1))
    (directory / "client.pem").write_text(issued.cert_pem)
    (directory / "client.key").write_text(issued.key_pem)
    return Credentials(ca_file, directory / "client.pem", directory / "client.key", token)


@dataclass(frozen=True)
class BufCurl:
    """``buf curl`` (connect-go) with the repo's schema, one process per call."""

    binary: Path
    schema: Path
    base_url: str
    protocol: str
    credentials: Credentials

    def args(self, method: str) -> list[str]:
        creds = self.credentials
        args = [str(self.binary), "curl", "--schema", str(self.schema)]
        args += ["--protocol", self.protocol, "--cacert", str(creds.ca_file), "-A", UA]
        if creds.cert_file and creds.key_file:
            args += ["--cert", str(creds.cert_file), "--key", str(creds.key_file)]
        for name, value in creds.headers().items():
            args += ["-H", f"{name}: {value}"]
        return [*args, "-d", "@-", f"{self.base_url}/{SERVICE}/{method}"]

    def call(self, method: str, request: Message) -> Message:
        done = subprocess.run(
            self.args(method),
            input=json_format.MessageToJson(request),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0:
            return json_format.Parse(done.stdout, RESPONSES[method]())
        try:
            error = json.loads(done.stderr)
        except json.JSONDecodeError:
            raise AssertionError(f"buf curl failed without an RPC error: {done.stderr}") from None
        raise CallFailedError(status_code(error["code"]), error.get("message", ""), done.returncode)


@dataclass
class ConnectRpc:
    """The ``connectrpc`` package's sync client over pyqwest (reqwest with rustls)."""

    http: SyncClient
    base_url: str
    protocol: ProtocolType
    credentials: Credentials
    send_compression: Compression | None
    _client: ConnectClientSync = field(init=False)

    def __post_init__(self) -> None:
        self._client = ConnectClientSync(
            self.base_url,
            codec=google_protobuf_binary_codec(),
            protocol=self.protocol,
            send_compression=self.send_compression,
            http_client=self.http,
            timeout_ms=30_000,
        )

    def call(self, method: str, request: Message) -> Message:
        info = MethodInfo(
            name=method,
            service_name=SERVICE,
            input=type(request),
            output=RESPONSES[method],
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=StreamType.UNARY,
        )
        headers = {"user-agent": UA, **self.credentials.headers()}
        try:
            return self._client.execute_unary(request=request, method=info, headers=headers)
        except ConnectError as exc:
            raise CallFailedError(status_code(exc.code.value), exc.message) from None


@dataclass
class Grpcio:
    """grpcio's channel (the C core's HTTP/2 and TLS)."""

    port: int
    credentials: Credentials
    _channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        creds = self.credentials
        self._channel = grpc.secure_channel(
            f"127.0.0.1:{self.port}",
            grpc.ssl_channel_credentials(
                root_certificates=creds.ca_file.read_bytes(),
                private_key=creds.key_file.read_bytes() if creds.key_file else None,
                certificate_chain=creds.cert_file.read_bytes() if creds.cert_file else None,
            ),
            options=[("grpc.primary_user_agent", UA)],
        )

    def call(self, method: str, request: Message) -> Message:
        stub = pb_grpc.MonitorServiceStub(self._channel)
        try:
            return getattr(stub, method)(
                request, metadata=list(self.credentials.headers().items()), timeout=30
            )
        except grpc.RpcError as exc:
            raise CallFailedError(exc.code(), exc.details() or "") from None

    def close(self) -> None:
        self._channel.close()


ClientOf = Callable[[ExitStack, MonitorApiServer, Credentials], RpcClient]


def grpcio_client(stack: ExitStack, server: MonitorApiServer, creds: Credentials) -> RpcClient:
    """A :data:`ClientOf` for grpcio; the channel closes with ``stack``."""
    client = Grpcio(server.ports["rpc"], creds)
    stack.callback(client.close)
    return client


def log_score_rows(engine: Engine) -> list[tuple[int, int]]:
    """(monitor_id, server_id) of every recorded result."""
    with engine.connect() as conn:
        rows = conn.execute(select(log_scores.c.monitor_id, log_scores.c.server_id)).all()
    return sorted((row.monitor_id, row.server_id) for row in rows)


def submission(client: RpcClient) -> pb.SubmitResultsRequest:
    """A whole batch fetched with ``client``: a good result for every server handed out, each
    echoing its ticket."""
    batch = client.call("GetServers", pb.GetServersRequest(mon_id=MONITOR_IP))
    assert isinstance(batch, pb.GetServersResponse)
    assert len(batch.servers) == 3
    assert len(batch.batch_id) == 26
    assert all(s.ticket for s in batch.servers)
    return pb.SubmitResultsRequest(
        version=4,
        mon_id=MONITOR_IP,
        batch_id=batch.batch_id,
        list=[status_for(s) for s in batch.servers],
    )


def full_round(client: RpcClient, engine: Engine, ids: Seed) -> None:
    """GetConfig, GetServers and SubmitResults of the whole batch: every result lands in
    ``log_scores`` for the monitor the credentials name."""
    config = client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP))
    assert isinstance(config, pb.GetConfigResponse)
    assert config.ip_bytes == bytes([192, 0, 2, 10])
    reply = client.call("SubmitResults", submission(client))
    assert isinstance(reply, pb.SubmitResultsResponse)
    assert reply.ok
    assert log_score_rows(engine) == sorted((ids.monitor_id, sid) for sid in ids.server_ids)


Prepare = Callable[[RpcClient, Engine, Seed], tuple[str, Message]]


def _paused(client: RpcClient, engine: Engine, ids: Seed) -> tuple[str, Message]:
    request = submission(client)
    with engine.begin() as conn:
        admin.set_monitor_status(
            conn, id=ids.monitor_id, status=MonitorStatus.PAUSED, now=datetime.now(UTC)
        )
    return "SubmitResults", request


def _forged_ticket(client: RpcClient, engine: Engine, ids: Seed) -> tuple[str, Message]:
    request = submission(client)
    request.list[1].ticket = b"1-" + b"A" * 43
    return "SubmitResults", request


def _config(client: RpcClient, engine: Engine, ids: Seed) -> tuple[str, Message]:
    return "GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP)


@dataclass(frozen=True)
class Refusal:
    """A call the server must refuse: how to make it, with which code and message, and
    whether it is sent without any credentials."""

    prepare: Prepare
    code: grpc.StatusCode
    message: str
    anonymous: bool = False


REFUSALS = {
    "paused monitor": Refusal(_paused, grpc.StatusCode.PERMISSION_DENIED, "monitor not active"),
    "bad ticket": Refusal(
        _forged_ticket, grpc.StatusCode.INVALID_ARGUMENT, "signature validation failed"
    ),
    "no credentials": Refusal(
        _config, grpc.StatusCode.UNAUTHENTICATED, "Authentication required", anonymous=True
    ),
}


def expect_refused(
    client: RpcClient, method: str, request: Message, engine: Engine, code: grpc.StatusCode
) -> CallFailedError:
    """The call fails with ``code`` and the database is exactly as before."""
    before = snapshot(engine)
    try:
        client.call(method, request)
    except CallFailedError as failure:
        assert failure.code == code, failure
        assert snapshot(engine) == before
        return failure
    raise AssertionError(f"{method} succeeded; expected {code.name}")


def refuse(
    case: Refusal, client: RpcClient, anonymous: RpcClient, engine: Engine, ids: Seed
) -> CallFailedError:
    """Run a refusal case: ``client`` prepares it (a real batch), the refused call goes out
    with ``client`` or, for ``anonymous`` cases, with no credentials at all."""
    method, request = case.prepare(client, engine, ids)
    caller = anonymous if case.anonymous else client
    failure = expect_refused(caller, method, request, engine, case.code)
    assert case.message in failure.message
    return failure


AUTHS = ("client certificate", "bearer JWT")


def credentials_for(server: MonitorApiServer, directory: Path, auth: str | None) -> Credentials:
    """Credentials of the seeded monitor: a certificate of the server's embedded CA, a token
    the server minted, or (``None``) nothing but the CA to trust."""
    if auth == "client certificate":
        return write_credentials(server.ca, directory, cert=True)
    if auth == "bearer JWT":
        token, _ = server.tokens.mint(MONITOR_NAME, 600, datetime.now(UTC))
        return write_credentials(server.ca, directory, token=token)
    assert auth is None, auth
    return write_credentials(server.ca, directory)


def rpc_url(server: MonitorApiServer) -> str:
    return f"https://127.0.0.1:{server.ports['rpc']}"
