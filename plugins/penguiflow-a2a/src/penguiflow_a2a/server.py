"""Serve a PenguiFlow flow (or any `Executor`) as an A2A agent.

```python
from penguiflow_a2a.server import AgentCard, AgentSkill, create_a2a_app

app = create_a2a_app(
    flow,  # a Flow, a zero-argument flow factory, or an Executor
    agent_card=AgentCard(name="echo", description="Echoes", version="1.0.0",
                         skills=[AgentSkill(id="echo", name="echo", description="Echo")]),
    authenticator=BearerTokenAuthenticator({"s3cret": "acme"}),
    state_store=SQLiteStateStore("sqlite:///tasks.db"),
)
# uvicorn.run(app, host="127.0.0.1", port=8000)
```

The app serves the agent card at ``/.well-known/agent-card.json``, the HTTP+JSON binding
(``/message:send``, ``/message:stream``, ``/tasks``..., also under a ``/{tenant}`` prefix, as
the SDK's clients send them when given a tenant) and the JSON-RPC binding at ``/``. A
`ReactPlanner` is served through `PlannerExecutor`: a pause becomes ``input-required`` and
the next message on the task resumes the run.
Its lifespan cancels running tasks on shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from penguiflow_serve import health_routes
from starlette.applications import Starlette

from penguiflow.errors import ConfigurationError
from penguiflow.health import default_checks
from penguiflow.runtime import Flow
from penguiflow.state import SupportsTasks

from ._app import ServerLimits, build_app
from ._auth import (
    APIKeyAuthenticator,
    Authenticator,
    BearerTokenAuthenticator,
    NoAuthentication,
    Principal,
)
from ._flow_executor import FlowExecutor
from ._planner_executor import PlannerExecutor, is_planner
from ._store import TaskStore
from ._tasks import ExecutionContext, Executor, PushSink, TaskManager, TaskUpdater
from ._wire import (
    BINDING_HTTP_JSON,
    BINDING_JSONRPC,
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
)

__all__ = [
    "APIKeyAuthenticator",
    "AgentCapabilities",
    "AgentCard",
    "AgentInterface",
    "AgentSkill",
    "Authenticator",
    "BearerTokenAuthenticator",
    "ExecutionContext",
    "Executor",
    "FlowExecutor",
    "NoAuthentication",
    "PlannerExecutor",
    "Principal",
    "ServerLimits",
    "TaskManager",
    "TaskStore",
    "TaskUpdater",
    "card_with_url",
    "create_a2a_app",
]


def card_with_url(card: AgentCard, base_url: str) -> AgentCard:
    """``card`` advertising this server's two bindings at ``base_url`` (when it lists none)."""
    if card.supported_interfaces:
        return card
    base = base_url.rstrip("/")
    return card.model_copy(
        update={
            "supported_interfaces": [
                AgentInterface(url=base, protocol_binding=BINDING_HTTP_JSON),
                AgentInterface(url=base + "/", protocol_binding=BINDING_JSONRPC),
            ]
        }
    )


def _with_capabilities(
    card: AgentCard, capabilities: dict[str, Any], base_url: str | None
) -> AgentCard:
    card = card.model_copy(
        update={"capabilities": card.capabilities.model_copy(update=capabilities)}
    )
    return card_with_url(card, base_url) if base_url is not None else card


def _executor(target: Any) -> Executor:
    if isinstance(target, Executor):
        return target
    # Before the callable check: a planner is not a flow factory.
    if is_planner(target):
        return PlannerExecutor(target)
    if isinstance(target, Flow) or callable(target):
        return FlowExecutor(target)
    raise ConfigurationError(
        f"cannot serve a {type(target).__name__}: pass a Flow, a zero-argument function "
        "returning a Flow, a ReactPlanner, or an Executor (an object with async execute and "
        "cancel)"
    )


def _check_card(card: Any, name: str) -> AgentCard:
    if not isinstance(card, AgentCard):
        raise ConfigurationError(
            f"{name} must be a penguiflow_a2a AgentCard, got {type(card).__name__}; "
            "build one with AgentCard.model_validate(json_dict) from a card file"
        )
    return card


def create_a2a_app(
    target: Flow | Callable[[], Flow] | Executor | Any,
    *,
    agent_card: AgentCard,
    extended_agent_card: AgentCard | None = None,
    authenticator: Authenticator | None = None,
    state_store: SupportsTasks | None = None,
    limits: ServerLimits | None = None,
    push_sender: PushSink | None = None,
    base_url: str | None = None,
) -> Starlette:
    """A Starlette app serving ``target`` (a flow, a flow factory, a `ReactPlanner` or an
    `Executor`) as an A2A agent.

    ``extended_agent_card`` is served to authenticated callers only (``GetExtendedAgentCard``,
    ``GET /extendedAgentCard``); the public card then says it exists;
    ``authenticator`` maps requests to tenants (default: everyone is tenant ``default``);
    ``state_store`` persists tasks (any store with the ``SupportsTasks`` capability);
    ``push_sender`` enables push notifications (`penguiflow_a2a._push.PushSender`);
    ``base_url`` fills the card's interfaces when it lists none.

    ``GET /healthz`` (alive) and ``GET /readyz`` (plugins loaded, ``state_store`` writable;
    503 when not) answer without authentication; ``app.state.health`` (a
    `penguiflow.health.HealthChecks`) takes checks of your own.
    """
    _check_card(agent_card, "agent_card")
    if extended_agent_card is not None:
        _check_card(extended_agent_card, "extended_agent_card")
    if state_store is not None and not isinstance(state_store, SupportsTasks):
        raise ConfigurationError(
            f"state store {type(state_store).__name__} lacks save_task/list_tasks "
            "(SupportsTasks); use the in-memory, sqlite, redis or postgres store"
        )
    capabilities = {
        "streaming": True,
        "push_notifications": push_sender is not None,
        "extended_agent_card": extended_agent_card is not None or None,
    }
    card = _with_capabilities(agent_card, capabilities, base_url)
    extended = (
        _with_capabilities(extended_agent_card, capabilities, base_url)
        if extended_agent_card is not None
        else None
    )
    manager = TaskManager(_executor(target), TaskStore(state_store), push_sender=push_sender)
    app = build_app(
        manager,
        card,
        authenticator or NoAuthentication(),
        limits or ServerLimits(),
        extended_card=extended,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await manager.aclose()

    app.router.lifespan_context = lifespan
    app.state.a2a_manager = manager
    # Probes come without credentials: these two routes sit outside the authenticated ones.
    checks = default_checks(state_store=state_store)
    app.router.routes.extend(health_routes(checks))
    app.state.health = checks
    return app
