"""The internal HTTP API (api.md §11): ad-hoc checks and what is known about online agents.

It has no authentication (upstream's design), so it listens on loopback unless told otherwise
(DESIGN.md). Handlers that wait for agents run on Starlette's worker threads.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ntpmon.api.bodylimit import INTERNAL_BODY_LIMIT, BodyLimit
from ntpmon.api.mqserver.adhoc import IPAddress, TargetError, parse_go_bool, parse_target
from ntpmon.api.mqserver.broker import MqServer, TraceIds
from ntpmon.api.mqserver.checks import MetricsRequestError, fetch_agent_metrics, run_adhoc_check
from ntpmon.api.mqserver.traceroutes import run_traceroute_check
from ntpmon.common.clock import Clock

log = logging.getLogger(__name__)

TRACE_HEADER = "Traceparent"


def _json(doc: Any, trace_id: str, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers={TRACE_HEADER: trace_id})


def _text(text: str, trace_id: str, status: int) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status, headers={TRACE_HEADER: trace_id})


async def _flag(request: Request, name: str) -> bool:
    """A Go-style boolean from the query string or a url-encoded form body."""
    value = request.query_params.get(name)
    if value is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        value = form.get(name, [None])[0]
    return parse_go_bool(value)


def build_http_app(server: MqServer, clock: Clock) -> Starlette:
    """The Starlette app of the internal API around a (started or not) :class:`MqServer`."""

    def target(request: Request) -> IPAddress | Response:
        """The path's address, or the 400 to answer (with a fresh trace id)."""
        try:
            return parse_target(
                request.path_params["ip"], allow_private=server.settings.allow_private_targets
            )
        except TargetError as exc:
            return _json({"error": str(exc)}, TraceIds.new().trace_id, 400)

    async def check_ntp(request: Request) -> Response:
        ip = target(request)
        if isinstance(ip, Response):
            return ip
        check_all = await _flag(request, "all")
        result = await run_in_threadpool(
            run_adhoc_check, server, ip, check_all=check_all, clock=clock
        )
        return _json([a.to_json() for a in result.answers], result.trace.trace_id)

    async def check_traceroute(request: Request) -> Response:
        ip = target(request)
        if isinstance(ip, Response):
            return ip
        answers = await run_in_threadpool(run_traceroute_check, server, ip, clock=clock)
        return _json([a.to_json() for a in answers], TraceIds.new().trace_id)

    async def monitors_online(_request: Request) -> Response:
        clients = server.clients.with_monitor_data()
        return _json([c.online_json() for c in clients], TraceIds.new().trace_id)

    async def metrics_discovery(_request: Request) -> Response:
        return _json(server.clients.metrics_discovery(), TraceIds.new().trace_id)

    async def monitor_metrics(request: Request) -> Response:
        trace_id = TraceIds.new().trace_id
        key = request.query_params.get("client", "")
        try:
            payload = await run_in_threadpool(fetch_agent_metrics, server, key, clock=clock)
        except MetricsRequestError as exc:
            return _text(exc.text, trace_id, exc.status)
        return Response(payload, media_type="text/plain", headers={TRACE_HEADER: trace_id})

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error(
            "internal API error",
            extra={"path": request.url.path, "error": repr(exc)},
            exc_info=exc,
        )
        return _json({"error": "internal server error"}, TraceIds.new().trace_id, 500)

    return Starlette(
        routes=[
            Route("/check/ntp/{ip}", check_ntp, methods=["POST"]),
            Route("/check/traceroute/{ip}", check_traceroute, methods=["POST"]),
            Route("/monitors/online", monitors_online, methods=["GET"]),
            Route("/monitors/metrics/discovery", metrics_discovery, methods=["GET"]),
            Route("/monitors/metrics", monitor_metrics, methods=["GET"]),
        ],
        exception_handlers={Exception: internal_error},
        middleware=[Middleware(BodyLimit, limit=INTERNAL_BODY_LIMIT)],
    )
