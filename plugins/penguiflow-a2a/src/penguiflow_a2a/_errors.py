"""A2A errors, with the codes each binding puts on the wire.

```
PenguiFlowError
└── A2AError                              any A2A protocol error
    ├── TaskNotFoundError (LookupError)   -32001, HTTP 404: no such task for this caller
    ├── TaskNotCancelableError            -32002, HTTP 400: the task is already finished
    ├── PushNotificationNotSupportedError -32003, HTTP 400
    ├── UnsupportedOperationError         -32004, HTTP 400
    ├── ContentTypeNotSupportedError      -32005, HTTP 400
    ├── InvalidAgentResponseError         -32006, HTTP 500: the remote agent answered nonsense
    ├── ExtendedAgentCardNotConfiguredError -32007, HTTP 400
    ├── ExtensionSupportRequiredError     -32008, HTTP 400
    ├── VersionNotSupportedError          -32009, HTTP 400: the A2A-Version header
    ├── InvalidRequestError (ValueError)  -32600, HTTP 400
    │   └── PayloadTooLargeError          -32600, HTTP 413: over the server's size limit
    ├── MethodNotFoundError               -32601, HTTP 404
    ├── InvalidParamsError (ValueError)   -32602, HTTP 400
    ├── InternalError (RuntimeError)      -32603, HTTP 500
    ├── JSONParseError (ValueError)       -32700, HTTP 400: the body is not JSON
    └── AuthenticationError (PermissionError) HTTP 401 (JSON-RPC -32600 with reason
                                          UNAUTHENTICATED): missing or wrong credentials
```

The JSON-RPC codes and HTTP mappings are A2A 1.0's. The HTTP+JSON binding answers an error
with ``{"error": {"code": <http status>, "status": <gRPC status name>, "message": ...,
"details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": ...,
"domain": "a2a-protocol.org", "metadata": {...}}]}}``; the JSON-RPC binding with a JSON-RPC
error object whose ``data`` carries the same details. `error_from_jsonrpc` and
`error_from_http` turn either back into the matching class on the client side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from penguiflow.errors import PenguiFlowError

__all__ = [
    "A2A_DOMAIN",
    "ERROR_INFO_TYPE",
    "A2AError",
    "AuthenticationError",
    "ContentTypeNotSupportedError",
    "ExtendedAgentCardNotConfiguredError",
    "ExtensionSupportRequiredError",
    "InternalError",
    "InvalidAgentResponseError",
    "InvalidParamsError",
    "InvalidRequestError",
    "JSONParseError",
    "MethodNotFoundError",
    "PayloadTooLargeError",
    "PushNotificationNotSupportedError",
    "TaskNotCancelableError",
    "TaskNotFoundError",
    "UnsupportedOperationError",
    "VersionNotSupportedError",
    "error_from_http",
    "error_from_jsonrpc",
]

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
A2A_DOMAIN = "a2a-protocol.org"


class A2AError(PenguiFlowError):
    """An A2A protocol error. Each subclass fixes its JSON-RPC code, HTTP status, gRPC status
    name and A2A reason; an instance carries a message (saying what was wrong and how to fix
    it) and optional ``data`` (a dict sent to the caller as the error's metadata: never put
    secrets in it)."""

    code: ClassVar[int] = -32603
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[str] = "INTERNAL"
    reason: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "the A2A request failed"

    def __init__(self, message: str | None = None, *, data: Mapping[str, Any] | None = None):
        self.message = message or self.default_message
        self.data: dict[str, Any] = dict(data) if data else {}
        super().__init__(self.message)

    def details(self) -> list[dict[str, Any]]:
        """The ``google.rpc.ErrorInfo`` detail both bindings carry."""
        return [
            {
                "@type": ERROR_INFO_TYPE,
                "reason": self.reason,
                "domain": A2A_DOMAIN,
                "metadata": {str(k): str(v) for k, v in self.data.items()},
            }
        ]

    def to_http_payload(self) -> dict[str, Any]:
        """The HTTP+JSON binding's error body (answered with status `http_status`)."""
        return {
            "error": {
                "code": self.http_status,
                "status": self.grpc_status,
                "message": self.message,
                "details": self.details(),
            }
        }

    def to_jsonrpc_error(self) -> dict[str, Any]:
        """The JSON-RPC binding's ``error`` member."""
        return {"code": self.code, "message": self.message, "data": self.details()}


class TaskNotFoundError(A2AError, LookupError):
    code = -32001
    http_status = 404
    grpc_status = "NOT_FOUND"
    reason = "TASK_NOT_FOUND"
    default_message = "no task with that id for this caller; check the id (tasks are per tenant)"


class TaskNotCancelableError(A2AError):
    code = -32002
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    reason = "TASK_NOT_CANCELABLE"
    default_message = "the task has already finished and cannot be canceled"


class PushNotificationNotSupportedError(A2AError):
    code = -32003
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    reason = "PUSH_NOTIFICATION_NOT_SUPPORTED"
    default_message = "this agent does not send push notifications"


class UnsupportedOperationError(A2AError):
    code = -32004
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    reason = "UNSUPPORTED_OPERATION"
    default_message = "this agent does not support the operation"


class ContentTypeNotSupportedError(A2AError):
    code = -32005
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    reason = "CONTENT_TYPE_NOT_SUPPORTED"
    default_message = "the agent cannot handle that content type"


class InvalidAgentResponseError(A2AError):
    code = -32006
    http_status = 500
    grpc_status = "INTERNAL"
    reason = "INVALID_AGENT_RESPONSE"
    default_message = "the agent's response does not follow the A2A protocol"


class ExtendedAgentCardNotConfiguredError(A2AError):
    code = -32007
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    reason = "EXTENDED_AGENT_CARD_NOT_CONFIGURED"
    default_message = "this agent has no extended agent card"


class ExtensionSupportRequiredError(A2AError):
    code = -32008
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    reason = "EXTENSION_SUPPORT_REQUIRED"
    default_message = "the agent requires an extension the client did not declare"


class VersionNotSupportedError(A2AError):
    code = -32009
    http_status = 400
    grpc_status = "FAILED_PRECONDITION"
    reason = "VERSION_NOT_SUPPORTED"
    default_message = "this A2A protocol version is not supported; send A2A-Version: 1.0"


class InvalidRequestError(A2AError, ValueError):
    code = -32600
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    reason = "INVALID_REQUEST"
    default_message = "the request is not a valid A2A request"


class PayloadTooLargeError(InvalidRequestError):
    http_status = 413
    grpc_status = "RESOURCE_EXHAUSTED"
    reason = "PAYLOAD_TOO_LARGE"
    default_message = "the request body is larger than this server accepts"


class MethodNotFoundError(A2AError):
    code = -32601
    http_status = 404
    grpc_status = "NOT_FOUND"
    reason = "METHOD_NOT_FOUND"
    default_message = "no such A2A method"


class InvalidParamsError(A2AError, ValueError):
    code = -32602
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    reason = "INVALID_PARAMS"
    default_message = "the request's parameters are invalid"


class InternalError(A2AError, RuntimeError):
    code = -32603
    http_status = 500
    grpc_status = "INTERNAL"
    reason = "INTERNAL_ERROR"
    default_message = "the agent failed while handling the request"


class JSONParseError(A2AError, ValueError):
    code = -32700
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    reason = "INVALID_REQUEST"
    default_message = "the request body is not valid JSON"


class AuthenticationError(A2AError, PermissionError):
    # A2A leaves authentication to HTTP: 401 on both bindings. JSON-RPC has no dedicated code,
    # so the body uses Invalid Request (-32600) and the reason tells the two apart.
    code = -32600
    http_status = 401
    grpc_status = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"
    default_message = (
        "missing or wrong credentials; send the token the agent card's security asks for"
    )


_BY_CODE: dict[int, type[A2AError]] = {
    cls.code: cls
    for cls in (
        TaskNotFoundError,
        TaskNotCancelableError,
        PushNotificationNotSupportedError,
        UnsupportedOperationError,
        ContentTypeNotSupportedError,
        InvalidAgentResponseError,
        ExtendedAgentCardNotConfiguredError,
        ExtensionSupportRequiredError,
        VersionNotSupportedError,
        InvalidRequestError,
        MethodNotFoundError,
        InvalidParamsError,
        InternalError,
        JSONParseError,
    )
}

_REASON_ORDER: tuple[type[A2AError], ...] = (
    *_BY_CODE.values(),
    PayloadTooLargeError,
    AuthenticationError,
    InvalidRequestError,  # after JSONParseError: the shared reason means invalid request
)
_BY_REASON: dict[str, type[A2AError]] = {cls.reason: cls for cls in _REASON_ORDER}


def _reason_of(details: Any) -> str | None:
    if isinstance(details, list):
        for item in details:
            if isinstance(item, Mapping) and isinstance(item.get("reason"), str):
                return str(item["reason"])
    return None


def _metadata_of(details: Any) -> dict[str, Any]:
    if isinstance(details, list):
        for item in details:
            if isinstance(item, Mapping) and isinstance(item.get("metadata"), Mapping):
                return dict(item["metadata"])
    return {}


def error_from_jsonrpc(error: Mapping[str, Any]) -> A2AError:
    """The `A2AError` for a JSON-RPC ``error`` member (an unknown code gives `A2AError`)."""
    code = error.get("code")
    message = str(error.get("message") or "")
    data = error.get("data")
    cls = _BY_REASON.get(_reason_of(data) or "") or (
        _BY_CODE.get(code) if isinstance(code, int) else None
    )
    metadata = _metadata_of(data) if isinstance(data, list) else {}
    if cls is None:
        return A2AError(f"A2A error {code}: {message}", data=metadata)
    return cls(message or None, data=metadata)


def error_from_http(status: int, body: Any) -> A2AError:
    """The `A2AError` for an HTTP+JSON error answer (status and parsed body)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    message = ""
    cls: type[A2AError] | None = None
    metadata: dict[str, Any] = {}
    if isinstance(error, Mapping):
        message = str(error.get("message") or "")
        cls = _BY_REASON.get(_reason_of(error.get("details")) or "")
        metadata = _metadata_of(error.get("details"))
    if cls is None:
        cls = {401: AuthenticationError, 404: TaskNotFoundError, 413: PayloadTooLargeError}.get(
            status
        )
    if cls is None:
        return A2AError(f"A2A HTTP error {status}: {message or body!r}", data=metadata)
    return cls(message or None, data=metadata)
