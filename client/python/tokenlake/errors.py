"""tokenlake's exception types. In process and from a server alike, an error is one of these and
carries the message the Rust side or the server wrote, so the same `except` works whatever the
dataset's source. Each also derives from the built-in exception a Python user would reach for
(`ValueError`, `LookupError`, `ConnectionError` …)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class TokenlakeError(Exception):
    """Any error tokenlake reports. `code` is its kind (as the gRPC status names it)."""

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(TokenlakeError, ValueError):
    """The request is wrong and will stay wrong: a bad recipe, filter, name, query or input."""

    code = "INVALID_ARGUMENT"


class CursorMismatch(InvalidArgument):
    """The cursor (a state dict's) is damaged or belongs to another plan: resume with the
    recipe and lake version that made it."""

    code = "FAILED_PRECONDITION"


class NotFound(TokenlakeError, LookupError):
    """What the request names does not exist: a lake, version, tag."""

    code = "NOT_FOUND"


class PlanNotFound(NotFound):
    """A `plan_id` the server has not planned (or has evicted): give the recipe instead."""


class AlreadyExists(TokenlakeError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(TokenlakeError):
    """The request is well formed but the state does not allow it (e.g. no token store)."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(TokenlakeError):
    """A limit refused it; the message names the limit."""

    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(TokenlakeError, PermissionError):
    code = "PERMISSION_DENIED"


class Unauthenticated(PermissionDenied):
    """No token, or one the server does not know."""

    code = "UNAUTHENTICATED"


class Cancelled(TokenlakeError):
    code = "CANCELLED"


class Unavailable(TokenlakeError, ConnectionError):
    """A store, network or server failed or throttled: trying again later may succeed."""

    code = "UNAVAILABLE"


class Internal(TokenlakeError):
    """tokenlake's fault or the machine's (a damaged cache, local I/O, a bug)."""

    code = "INTERNAL"


_NATIVE: Dict[str, Type[TokenlakeError]] = {
    "InvalidArgument": InvalidArgument,
    "CursorMismatch": CursorMismatch,
    "NotFound": NotFound,
    "AlreadyExists": AlreadyExists,
    "FailedPrecondition": FailedPrecondition,
    "ResourceExhausted": ResourceExhausted,
    "Cancelled": Cancelled,
    "Unavailable": Unavailable,
    "Internal": Internal,
}


def from_native(e: BaseException) -> TokenlakeError:
    """The package's exception for an error of the native module (`NativeError(kind, msg)`)."""
    kind, message = e.args if len(e.args) == 2 else ("Internal", str(e))
    return _NATIVE.get(kind, Internal)(message)


def from_grpc(e: Any, plan_id: Optional[str] = None) -> TokenlakeError:
    """The package's exception for a server's `grpc.RpcError`, with the server's message."""
    import grpc

    code, details = e.code(), e.details() or str(e)
    if code == grpc.StatusCode.NOT_FOUND:
        if plan_id is not None and "plan" in details:
            return PlanNotFound(details)
        return NotFound(details)
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT) and (
        "cursor" in details
    ):
        return CursorMismatch(details)
    kind = {
        grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
        grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
        grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
        grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
        grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
        grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
        grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
        grpc.StatusCode.CANCELLED: Cancelled,
        grpc.StatusCode.UNAVAILABLE: Unavailable,
        grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
        grpc.StatusCode.ABORTED: Unavailable,
    }.get(code, Internal)
    return kind(details)
