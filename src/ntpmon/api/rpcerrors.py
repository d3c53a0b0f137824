"""Errors an RPC answers with: a gRPC status code and the message the agent sees (api.md §4.5)."""

from __future__ import annotations

import grpc


class RpcError(Exception):
    """Raised inside a handler; the wrapper turns it into ``context.abort(code, message)``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found() -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, "no such monitor")


def not_live() -> RpcError:
    return RpcError(grpc.StatusCode.PERMISSION_DENIED, "monitor not active")


def internal(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INTERNAL, message)


def invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)
