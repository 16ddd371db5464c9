"""PenguiFlow's errors: one root, and the structured failure a node produces.

Every error PenguiFlow and its first-party plugins raise derives from `PenguiFlowError`, and
keeps the built-in base its meaning calls for, so `except ValueError` still works:

```
PenguiFlowError
├── FlowError                   a node failed: retries used up, timeout, open circuit, or the
│                               runtime's own failure (code INTERNAL_ERROR); delivered to Rookery
├── TraceCancelled              the trace was cancelled while this code worked on it
├── NodeTimeoutError            (TimeoutError) an attempt ran past the node's timeout_s
├── ConfigurationError          (ValueError) an argument, option, setting or URL cannot work
├── InvalidTypeError            (TypeError) something of the wrong kind was given
├── UnknownNameError            (KeyError) no node, target or entry of that name; lists the known
├── MissingPluginError          (ImportError) a name from a plugin that is not installed
├── UsageError                  (RuntimeError) an API called in a state that does not allow it
│   └── WorkerCrashedError      a flow's worker died; raised by stop()   [penguiflow.core]
├── UnsupportedFeatureError     (NotImplementedError) a PenguiFlow 3.x option we do not offer;
│                               says what to use instead
├── CycleError                  (RuntimeError) the graph has a cycle      [penguiflow.core]
├── PluginError                 loading plugins                           [penguiflow.plugins]
│   ├── PluginLoadError, PluginConfigError, DriverConflictError
│   ├── DriverNotFoundError     (LookupError)
│   └── ToolNameCollisionError  (ValueError) two tools or connectors, one name
├── StateStoreError             state stores                              [penguiflow.state]
│   ├── StoreClosedError        (RuntimeError) used after aclose()
│   ├── StoreRequestError       (ValueError) arguments a store cannot serve
│   └── SchemaVersionError      (RuntimeError) data written by a newer version
├── BusClosedError              (RuntimeError) a message bus used after aclose()
├── MemoryBudgetExceeded        (RuntimeError) short-term memory over budget [penguiflow.memory]
├── ToolDescriptionWarning      (UserWarning) a tool without a description [penguiflow.catalog]
├── LLMError                    (RuntimeError) LLM clients                [penguiflow.llm]
│   ├── LLMConfigurationError (ValueError), LLMHTTPError, LLMConnectionError (ConnectionError),
│   │   LLMTimeoutError (TimeoutError), LLMStreamError, LLMReplyError
│   └── ScriptExhaustedError    the scripted client ran out of replies
└── plugins' own: PayloadTypeError and RedisRuntimeUnavailable (penguiflow_redis), MCPError and
    MCPConfigError (penguiflow_mcp), UTCPError and UTCPPolicyError (penguiflow_utcp),
    in penguiflow_planner: ActionError (ValueError), PauseRequested, SteeringCancelled,
    OwnerMismatchError (PermissionError), UnusableReplyError (ValueError), ArtifactLimitError
    (ValueError), SessionKVError (RuntimeError) with SessionKVValueError (ValueError),
    InvalidPauseReasonError and StreamChunkError (ConfigurationError), PauseUnavailableError
    (UsageError), ToolSearchError (RuntimeError), LLMReplyTypeError (LLMError, TypeError),
    PlanningHintsWarning (UserWarning)
```

Python's own protocols keep their built-in errors: `AttributeError` from a module's
`__getattr__`, `NotImplementedError` from an abstract method, `AssertionError` from a
conformance suite's check.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = [
    "ConfigurationError",
    "FlowError",
    "FlowErrorCode",
    "InvalidTypeError",
    "MissingPluginError",
    "NodeTimeoutError",
    "PenguiFlowError",
    "UnknownNameError",
    "UnsupportedFeatureError",
    "UsageError",
    "describe_exception",
    "describe_exception_repr",
]


class PenguiFlowError(Exception):
    """The root of every error PenguiFlow and its first-party plugins raise (see the tree in
    this module's docstring).

    Catch it to handle anything the framework reports; subclasses keep the built-in base
    their meaning calls for (a `ValueError` for a bad value, a `RuntimeError` for an API used
    in the wrong state), so code that catches those keeps working.
    """


class ConfigurationError(PenguiFlowError, ValueError):
    """A value given to PenguiFlow (an argument, an option, a setting, a URL) cannot work."""


class InvalidTypeError(PenguiFlowError, TypeError):
    """Something of the wrong kind was given (a plain function as a node, a class that is not
    a Pydantic model where one is needed, a payload that cannot cross processes...)."""


class UnknownNameError(PenguiFlowError, KeyError):
    """No node, target or registry entry has that name; the message lists the known ones.

    Like any `KeyError`, `str()` shows the message quoted (PenguiFlow's behaviour)."""


class MissingPluginError(PenguiFlowError, ImportError):
    """A name that a plugin provides was used, and the plugin is not installed; the message
    says what to `pip install`."""


class NodeTimeoutError(PenguiFlowError, TimeoutError):
    """An attempt of a node ran past its `NodePolicy.timeout_s` (the `original_exc` of the
    `NODE_TIMEOUT` `FlowError` it becomes)."""


class UnsupportedFeatureError(PenguiFlowError, NotImplementedError):
    """A PenguiFlow 3.x option or feature that this version does not offer; the message
    names it and what to use instead (it is never silently ignored)."""


class UsageError(PenguiFlowError, RuntimeError):
    """An API was called in a state that does not allow it (a flow not running or already
    running, a closed resource, a feature the runtime in use does not offer)."""


class FlowErrorCode(str, Enum):
    NODE_TIMEOUT = "NODE_TIMEOUT"
    NODE_EXCEPTION = "NODE_EXCEPTION"
    TRACE_CANCELLED = "TRACE_CANCELLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    HOP_BUDGET_EXHAUSTED = "HOP_BUDGET_EXHAUSTED"
    TOKEN_BUDGET_EXHAUSTED = "TOKEN_BUDGET_EXHAUSTED"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    #: the runtime's own code failed while handling the message (a bug: please report it)
    INTERNAL_ERROR = "INTERNAL_ERROR"


class FlowError(PenguiFlowError):
    """A node failure with its trace, node and a machine-readable code.

    Delivered to Rookery (so `fetch()` returns it) when the flow was created with
    `emit_errors_to_rookery=True` and the failing message carried a trace id.
    """

    __slots__ = (
        "code",
        "exception_type",
        "message",
        "metadata",
        "node_id",
        "node_name",
        "original_exc",
        "trace_id",
    )

    def __init__(
        self,
        *,
        trace_id: str | None,
        node_name: str | None,
        code: FlowErrorCode | str,
        message: str,
        original_exc: BaseException | None = None,
        node_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.trace_id = trace_id
        self.node_name = node_name
        self.node_id = node_id
        self.code: str = code.value if isinstance(code, FlowErrorCode) else str(code)
        self.message = message
        self.original_exc = original_exc
        self.exception_type = type(original_exc).__name__ if original_exc is not None else None
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}

    def __str__(self) -> str:
        parts = [f"[{self.code}] {self.message}"]
        if self.trace_id is not None:
            parts.append(f"trace={self.trace_id}")
        if self.node_name is not None:
            parts.append(f"node={self.node_name}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"FlowError({self})"

    def unwrap(self) -> BaseException | None:
        """The exception that caused this error, if any."""
        return self.original_exc

    def to_payload(self) -> dict[str, Any]:
        """A JSON-friendly dict: `code` and `message`, plus whichever ids and metadata are set."""
        payload: dict[str, Any] = {"code": self.code, "message": self.message}
        for key in ("trace_id", "node_name", "node_id", "exception_type"):
            value = getattr(self, key)
            if value is not None:
                payload[key] = value
        if self.metadata:
            payload["metadata"] = dict(self.metadata)
        return payload

    @classmethod
    def from_exception(
        cls,
        *,
        trace_id: str | None,
        node_name: str | None,
        node_id: str | None,
        exc: BaseException,
        code: FlowErrorCode | str,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> FlowError:
        text = message if message is not None else (str(exc) or type(exc).__name__)
        return cls(
            trace_id=trace_id,
            node_name=node_name,
            node_id=node_id,
            code=code,
            message=text,
            original_exc=exc,
            metadata=metadata,
        )


def describe_exception(exc: BaseException) -> str:
    """`str(exc)`, or the best text available when that fails or is empty.

    Error handling must not fail while describing an error: an exception whose `__str__`
    (or `__repr__`) raises would otherwise escape from the code that reports it."""
    try:
        text = str(exc)
    except Exception:
        try:
            return f"{type(exc).__name__} (unprintable: its __str__ raised)"
        except Exception:  # pragma: no cover - a type whose name cannot be read
            return "exception (unprintable)"
    return text or type(exc).__name__


def describe_exception_repr(exc: BaseException) -> str:
    """`repr(exc)`, or a stand-in naming its type when `__repr__` raises."""
    try:
        return repr(exc)
    except Exception:
        return f"<{type(exc).__name__} (unprintable: its __repr__ raised)>"
