"""The management HTTPS API agents use to join (agent.md §6, contract §3-5).

Registration (``setup``), per-monitor config with certificate issuance, OIDC-style tokens and
their JWKS. Handlers are thin: the rules live in :mod:`ntpmon.api.registration` and the SQL in
:mod:`ntpmon.db.registrations`. Responses never echo keys back except the one-time API token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ntpmon.api.bodylimit import MANAGEMENT_BODY_LIMIT, BodyLimit
from ntpmon.api.ca import CAError, CertificateAuthority
from ntpmon.api.mgmtinput import (
    BadRequestError,
    parse_registration_form,
    parse_token_request,
    parse_traceroute_upload,
)
from ntpmon.api.oidc import TokenIssuer
from ntpmon.api.registration import (
    address_family,
    hash_api_key,
    new_api_key,
    usable_monitor_address,
)
from ntpmon.api.tracestore import Stored, StoreOutcome, store_message
from ntpmon.common.clock import Clock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.ulid import InvalidUlidError, parse_ulid
from ntpmon.db import registrations as reg
from ntpmon.db.api import get_monitors_by_tls_name
from ntpmon.db.models import Monitor
from ntpmon.traceroute.result import MAX_MESSAGE_BYTES, TraceMessage

log = logging.getLogger(__name__)

LIVE = ("testing", "active")
TRACEROUTE_PATH = "/monitor/api/traceroute"


@dataclass(frozen=True)
class ManagementContext:
    engine: Engine
    ca: CertificateAuthority
    tokens: TokenIssuer
    clock: Clock
    env: DeployEnv
    base_url: str
    cert_lifetime: timedelta


def _text(status: int, body: str) -> PlainTextResponse:
    return PlainTextResponse(body + "\n", status_code=status)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""


def _family(monitors: list[Monitor], version: str) -> dict[str, str]:
    row = next((m for m in monitors if m.ip_version == version), None)
    return {"status": row.status, "ip": row.ip or ""} if row else {"status": "", "ip": ""}


def _monitors_of(engine: Engine, tls_name: str) -> list[Monitor]:
    with engine.connect() as conn:
        return get_monitors_by_tls_name(conn, tls_name=tls_name)


def _registration_of(engine: Engine, reg_id: str) -> reg.Registration | None:
    with engine.connect() as conn:
        return reg.get_registration(conn, registration_id=reg_id)


def _record_request(
    ctx: ManagementContext,
    *,
    reg_id: str,
    family: str,
    address: str,
    hostname: str,
    account_ref: str,
    now: datetime,
) -> tuple[str, str]:
    """Record one registration request; returns (Status, APIToken) for the response.

    The API key is minted by the first request after approval, stored hashed in the same
    transaction that marks the registration completed, and never shown again.
    """
    with ctx.engine.begin() as conn:
        found = reg.record_registration_request(
            conn,
            registration_id=reg_id,
            family=family,
            address=address,
            hostname=hostname,
            account_ref=account_ref,
            now=now,
        )
        if found.status == "approved" and reg.mark_registration_completed(
            conn, id=found.id, now=now
        ):
            token = new_api_key()
            reg.insert_api_key(
                conn,
                key_hash=hash_api_key(token),
                tls_name=found.tls_name or "",
                account_id=found.account_id,
                now=now,
            )
            return "accepted", token
        if found.status in ("approved", "completed"):
            return "completed", ""
        return "pending", ""


def _authenticate(ctx: ManagementContext, request: Request) -> reg.ApiKey | None:
    key = _bearer(request)
    if not key:
        return None
    with ctx.engine.begin() as conn:
        found = reg.find_api_key(conn, key_hash=hash_api_key(key))
        if found is not None:
            reg.touch_api_key(conn, id=found.id, now=ctx.clock.now())
    return found


def _store_upload(ctx: ManagementContext, tls_name: str, message: TraceMessage) -> Stored:
    """Store an uploaded trace as the MQTT ingest would, but only of the monitor's own servers."""
    with ctx.engine.begin() as conn:
        return store_message(
            conn,
            monitors=get_monitors_by_tls_name(conn, tls_name=tls_name),
            message=message,
            now=ctx.clock.now(),
            assigned_only=True,
        )


async def _upload_traceroute(ctx: ManagementContext, request: Request) -> Response:
    """An agent without an MQTT connection delivers the trace GetServers asked for here.

    201 ``{"ID": n}`` when stored; 200 ``{"Stored": false, "Reason": ...}`` for a trace that
    failed on the agent (nothing to keep, nothing for the agent to retry); 403 when the trace
    is claimed for another monitor than the key's, or is of a server that monitor does not
    check (an agent has no business tracing it on this path).
    """
    key = await run_in_threadpool(_authenticate, ctx, request)
    if key is None:
        return _text(401, "api key unauthorized")
    try:
        message = parse_traceroute_upload(await request.body())
    except BadRequestError as exc:
        return _text(400, str(exc))
    if message.monitor != key.tls_name:
        return _text(403, "Monitor does not belong to this api key")
    stored = await run_in_threadpool(_store_upload, ctx, key.tls_name, message)
    extra = {"monitor": key.tls_name, "outcome": stored.outcome.name}
    log.info("traceroute upload", extra=extra)
    if stored.outcome is StoreOutcome.STORED:
        return JSONResponse({"ID": stored.row_id}, status_code=201)
    if stored.outcome is StoreOutcome.AGENT_ERROR:
        return JSONResponse({"Stored": False, "Reason": stored.outcome.value})
    return _text(403, stored.outcome.value)


def build_management_app(ctx: ManagementContext) -> Starlette:
    """The Starlette application; TLS is terminated by the server that runs it. Every body is
    read, up to :data:`MANAGEMENT_BODY_LIMIT` bytes (a traceroute upload: up to
    :data:`MAX_MESSAGE_BYTES`), before a handler runs (:class:`BodyLimit`)."""

    async def registration(request: Request) -> Response:
        try:
            reg_id = parse_ulid(request.headers.get("registration-id", "")).text
        except InvalidUlidError:
            return _text(400, "Registration-ID header must be a 26-character ULID")
        peer = request.client.host if request.client else ""
        try:
            family, address = address_family(peer)
        except ValueError:
            return _text(400, "cannot tell the client address")
        if not usable_monitor_address(address, ctx.env):
            return _text(400, f"address {address} cannot be used for a monitor")
        body = await request.body()  # at most MANAGEMENT_BODY_LIMIT bytes (BodyLimit)
        try:
            form = parse_registration_form(body)
        except BadRequestError as exc:
            return _text(400, str(exc))
        now = ctx.clock.now()

        def record() -> tuple[str, str]:
            return _record_request(
                ctx,
                reg_id=reg_id,
                family=family,
                address=address,
                hostname=form.hostname,
                account_ref=form.account_ref,
                now=now,
            )

        status, token = await run_in_threadpool(record)
        log.info(
            "registration request",
            extra={"registration": reg_id, "family": family, "status": status},
        )
        return JSONResponse(
            {
                "URL": f"{ctx.base_url}/monitor/registration/{reg_id}",
                "Status": status,
                "APIToken": token,
            }
        )

    async def registration_page(request: Request) -> Response:
        reg_id = request.path_params["reg_id"]
        found = await run_in_threadpool(_registration_of, ctx.engine, reg_id.upper())
        if found is None:
            return _text(404, "no such registration")
        if found.status == "pending":
            return _text(
                200,
                f"Registration {found.registration_id} is waiting for approval.\n"
                f"An operator approves it with:\n"
                f"  monitor-api admin registrations approve {found.registration_id}",
            )
        return _text(200, f"Registration {found.registration_id} is {found.status}.")

    async def config(request: Request) -> Response:
        key = await run_in_threadpool(_authenticate, ctx, request)
        if key is None:
            return _text(401, "api key unauthorized")
        rows = await run_in_threadpool(_monitors_of, ctx.engine, key.tls_name)
        cert = {"cert": "", "key": "", "ca": ctx.ca.root_pem()}
        wants_cert = request.query_params.get("request_certificate", "").lower() == "true"
        if wants_cert and any(m.status in LIVE for m in rows):
            try:  # Vault PKI is a network call and may be away: not on the event loop
                issued = await run_in_threadpool(
                    ctx.ca.issue_client, key.tls_name, ctx.cert_lifetime
                )
            except CAError as exc:
                log.error(
                    "certificate not issued", extra={"monitor": key.tls_name, "error": str(exc)}
                )
                return _text(503, "certificate authority unavailable, try again later")
            cert |= {"cert": issued.cert_pem, "key": issued.key_pem}
            log.info("certificate issued", extra={"monitor": key.tls_name})
        return JSONResponse(
            {
                "name": key.tls_name.split(".", 1)[0],
                "tls_name": key.tls_name,
                "ipv4": _family(rows, "v4"),
                "ipv6": _family(rows, "v6"),
                "tls": cert,
            }
        )

    async def token(request: Request) -> Response:
        key = await run_in_threadpool(_authenticate, ctx, request)
        if key is None:
            return _text(401, "api key unauthorized")
        try:
            expires_in = parse_token_request(await request.body())
        except BadRequestError as exc:
            return _text(400, str(exc))
        access, lifetime = ctx.tokens.mint(key.tls_name, expires_in, ctx.clock.now())
        return JSONResponse(
            {"access_token": access, "token_type": "Bearer", "expires_in": lifetime}
        )

    async def traceroute(request: Request) -> Response:
        return await _upload_traceroute(ctx, request)

    async def jwks(request: Request) -> Response:
        return JSONResponse(ctx.tokens.jwks())

    return Starlette(
        routes=[
            Route("/monitor/api/registration", registration, methods=["POST"]),
            Route("/monitor/registration/{reg_id}", registration_page, methods=["GET"]),
            Route("/monitor/api/config", config, methods=["GET"]),
            Route(TRACEROUTE_PATH, traceroute, methods=["POST"]),
            Route("/api/oidc/token", token, methods=["POST"]),
            Route("/api/oidc/jwks.json", jwks, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                BodyLimit,
                limit=MANAGEMENT_BODY_LIMIT,
                paths={TRACEROUTE_PATH: MAX_MESSAGE_BYTES},
            )
        ],
    )
