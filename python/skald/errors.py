"""Exceptions raised by the client, one per gRPC status the service documents."""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc


class SkaldError(Exception):
    """Any error returned by the server (or the transport).

    ``code`` is the gRPC status code, ``details`` the server's message (for
    INVALID_ARGUMENT it names the offending field).
    """

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, details: str = ""):
        super().__init__(message)
        self.code = code
        self.details = details


class InvalidArgument(SkaldError):
    """A request field is wrong (bad LogQL, bad labels, bad time range...)."""


class NotFound(SkaldError):
    """An id (stream, export job, delete request) is unknown."""


class ResourceExhausted(SkaldError):
    """A limit was reached: query limit, body size, quota."""


class FailedPrecondition(SkaldError):
    """The operation is not possible in the current state."""


class Unavailable(SkaldError):
    """The server is unreachable, shutting down or cannot write; retry later."""


class DeadlineExceeded(Unavailable):
    """The call's timeout passed before the server answered."""


class Unauthenticated(SkaldError):
    """No token, or an invalid or expired one (the server requires auth)."""


class PermissionDenied(SkaldError):
    """The token is valid but not for this tenant or operation."""


class Unimplemented(SkaldError):
    """The server cannot evaluate this kind of request."""


_BY_CODE: Dict[grpc.StatusCode, Type[SkaldError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def from_rpc_error(e: grpc.RpcError) -> SkaldError:
    """The exception for a failed call."""
    code = e.code() if hasattr(e, "code") else None  # type: ignore[attr-defined]
    details = (e.details() if hasattr(e, "details") else "") or ""  # type: ignore[attr-defined]
    cls = _BY_CODE.get(code, SkaldError) if code is not None else SkaldError
    name = code.name if code is not None else "UNKNOWN"
    return cls(f"{name}: {details}" if details else name, code, details)
