"""Errors as the server reports them: one JSON shape for HTTP bodies and WebSocket frames."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from penguiflow.errors import (
    ConfigurationError,
    InvalidTypeError,
    PenguiFlowError,
    UnknownNameError,
    UsageError,
    describe_exception,
)

from ._auth import AuthenticationError, PermissionDeniedError

__all__ = ["ServerError", "error_body", "from_exception"]

logger = logging.getLogger("penguiflow_sessions.server")


class ServerError(PenguiFlowError):
    """A request the server refuses, with the HTTP status and a stable `code` clients can
    branch on; the message says what was wrong and how to fix it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(error: ServerError) -> dict[str, Any]:
    """`{"error": {"code", "message", "status"}}`: the body of every error response."""
    return {"error": {"code": error.code, "message": error.message, "status": error.status}}


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for item in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(parts)


def from_exception(exc: BaseException) -> ServerError:
    """Map what the session layer raised to the error a client sees.

    Session errors are written for their callers and name no secrets, so their messages go
    out as they are; anything unexpected is logged here and answered with a generic 500."""
    if isinstance(exc, ServerError):
        return exc
    if isinstance(exc, ValidationError):
        return ServerError(422, "invalid_request", _validation_message(exc))
    if isinstance(exc, AuthenticationError):
        return ServerError(401, "unauthenticated", describe_exception(exc))
    if isinstance(exc, PermissionDeniedError):
        return ServerError(403, "forbidden", describe_exception(exc))
    if isinstance(exc, UnknownNameError):
        # KeyError's str() quotes its argument; take the message itself.
        message = str(exc.args[0]) if exc.args else describe_exception(exc)
        return ServerError(404, "not_found", message)
    if isinstance(exc, UsageError):
        return ServerError(409, "conflict", describe_exception(exc))
    if isinstance(exc, ConfigurationError | InvalidTypeError | ValueError):
        # SteeringValidationError is a ValueError: a malformed or oversize steering payload.
        return ServerError(422, "invalid_request", describe_exception(exc))
    if isinstance(exc, PenguiFlowError):
        return ServerError(400, "bad_request", describe_exception(exc))
    logger.error("session server: unexpected error", exc_info=exc)
    return ServerError(
        500, "internal_error", "the server failed while handling this request; see its log"
    )
