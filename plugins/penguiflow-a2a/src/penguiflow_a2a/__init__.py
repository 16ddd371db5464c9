"""A2A (Agent-to-Agent) for PenguiFlow: serve flows and planners as agents, call agents.

Serving (needs the ``server`` extra: Starlette and uvicorn)::

    from penguiflow_a2a import AgentCard, AgentSkill, BearerTokenAuthenticator, create_a2a_app

    app = create_a2a_app(flow_or_planner, agent_card=AgentCard(...),
                         authenticator=BearerTokenAuthenticator({"s3cret": "acme"}))

Calling::

    from penguiflow_a2a import A2AHttpTransport, a2a_agent_tools

    transport = A2AHttpTransport(bearer_token="...")      # for penguiflow.remote.RemoteNode
    tools = await a2a_agent_tools("http://agent:8000", transport=transport)  # planner tools

Also on the command line: ``penguiflow a2a serve module:factory``. The public modules
`penguiflow_a2a.server`, `penguiflow_a2a.client` and `penguiflow_a2a.push` hold the rest;
docs/a2a.md is the guide.

Names load on first use: ``import penguiflow_a2a`` imports nothing but this module, and
Starlette only loads once a server name (`create_a2a_app`, an executor...) is used, so a
process that only calls agents never imports it.

Errors: an agent's error answers are `A2AError` subclasses (JSON-RPC code and HTTP status on
the class: `TaskNotFoundError`, `AuthenticationError`, `VersionNotSupportedError`...); the
client's own are `A2AClientError` and its subclasses (connection, timeout, protocol, a task
that ended failed, rejected or canceled). All derive from `penguiflow.errors.PenguiFlowError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._auth import (
        APIKeyAuthenticator,
        Authenticator,
        BearerTokenAuthenticator,
        NoAuthentication,
        Principal,
    )
    from ._client_errors import (
        A2AClientError,
        A2AConnectionError,
        A2AProtocolError,
        A2ATaskFailedError,
        A2ATimeoutError,
    )
    from ._client_tools import a2a_agent_tools
    from ._client_transport import A2AHttpTransport
    from ._errors import (
        A2AError,
        AuthenticationError,
        ContentTypeNotSupportedError,
        ExtendedAgentCardNotConfiguredError,
        ExtensionSupportRequiredError,
        InternalError,
        InvalidAgentResponseError,
        InvalidParamsError,
        InvalidRequestError,
        JSONParseError,
        MethodNotFoundError,
        PayloadTooLargeError,
        PushNotificationNotSupportedError,
        TaskNotCancelableError,
        TaskNotFoundError,
        UnsupportedOperationError,
        VersionNotSupportedError,
    )
    from ._push import PushSender, PushURLError, validate_push_url
    from ._wire import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
    from .server import (
        ExecutionContext,
        Executor,
        FlowExecutor,
        PlannerExecutor,
        ServerLimits,
        TaskUpdater,
        card_with_url,
        create_a2a_app,
    )

# Each public name and the module it lives in. Light modules first: the card models, the
# authenticators and the errors load without Starlette; only `.server` names pull it in.
_HOMES: dict[str, str] = {
    **dict.fromkeys(["AgentCapabilities", "AgentCard", "AgentInterface", "AgentSkill"], "._wire"),
    **dict.fromkeys(
        [
            "APIKeyAuthenticator",
            "Authenticator",
            "BearerTokenAuthenticator",
            "NoAuthentication",
            "Principal",
        ],
        "._auth",
    ),
    **dict.fromkeys(
        [
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
        ],
        "._errors",
    ),
    **dict.fromkeys(
        [
            "A2AClientError",
            "A2AConnectionError",
            "A2AProtocolError",
            "A2ATaskFailedError",
            "A2ATimeoutError",
        ],
        "._client_errors",
    ),
    "A2AHttpTransport": "._client_transport",
    "a2a_agent_tools": "._client_tools",
    **dict.fromkeys(["PushSender", "PushURLError", "validate_push_url"], "._push"),
    **dict.fromkeys(
        [
            "ExecutionContext",
            "Executor",
            "FlowExecutor",
            "PlannerExecutor",
            "ServerLimits",
            "TaskUpdater",
            "card_with_url",
            "create_a2a_app",
        ],
        ".server",
    ),
}

__all__ = [
    "A2AClientError",
    "A2AConnectionError",
    "A2AError",
    "A2AHttpTransport",
    "A2AProtocolError",
    "A2ATaskFailedError",
    "A2ATimeoutError",
    "APIKeyAuthenticator",
    "AgentCapabilities",
    "AgentCard",
    "AgentInterface",
    "AgentSkill",
    "AuthenticationError",
    "Authenticator",
    "BearerTokenAuthenticator",
    "ContentTypeNotSupportedError",
    "ExecutionContext",
    "Executor",
    "ExtendedAgentCardNotConfiguredError",
    "ExtensionSupportRequiredError",
    "FlowExecutor",
    "InternalError",
    "InvalidAgentResponseError",
    "InvalidParamsError",
    "InvalidRequestError",
    "JSONParseError",
    "MethodNotFoundError",
    "NoAuthentication",
    "PayloadTooLargeError",
    "PlannerExecutor",
    "Principal",
    "PushNotificationNotSupportedError",
    "PushSender",
    "PushURLError",
    "ServerLimits",
    "TaskNotCancelableError",
    "TaskNotFoundError",
    "TaskUpdater",
    "UnsupportedOperationError",
    "VersionNotSupportedError",
    "a2a_agent_tools",
    "card_with_url",
    "create_a2a_app",
    "validate_push_url",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'penguiflow_a2a' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
