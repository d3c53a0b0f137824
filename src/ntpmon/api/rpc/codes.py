"""Status codes shared by the three protocols and their HTTP statuses (Connect protocol spec).

gRPC and gRPC-Web carry the number in ``grpc-status``; Connect carries the snake_case name in
a JSON body and picks the HTTP status from this table, as connect-go's ``codeToHTTP`` does.
"""

from __future__ import annotations

import grpc

_HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a Connect unary error with ``code`` is sent with."""
    return _HTTP_STATUS.get(code, 500)


def connect_name(code: grpc.StatusCode) -> str:
    """The Connect name of a code: ``permission_denied``; gRPC's CANCELLED is ``canceled``."""
    if code is grpc.StatusCode.CANCELLED:
        return "canceled"
    return code.name.lower()


def grpc_number(code: grpc.StatusCode) -> int:
    """The number gRPC and gRPC-Web send in ``grpc-status``."""
    return int(code.value[0])
