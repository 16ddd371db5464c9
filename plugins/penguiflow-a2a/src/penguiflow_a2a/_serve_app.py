"""The app `penguiflow a2a serve` runs: the command's options turned into `create_a2a_app`
arguments (kept apart from the click code so it can be tested without a process)."""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["build_app", "default_card"]


def _authenticator(tokens: dict[str, str] | None) -> tuple[Any, str | None]:
    """The authenticator for `tokens` (None: everyone; empty: one fresh token, returned so
    the command prints it once for the local user; secure by default)."""
    from ._auth import BearerTokenAuthenticator, NoAuthentication

    if tokens is None:
        return NoAuthentication(), None
    if tokens:
        return BearerTokenAuthenticator(tokens), None
    token = secrets.token_urlsafe(24)
    return BearerTokenAuthenticator({token: "local"}), token


def default_card(name: str, kind: str = "flow") -> Any:
    """A card for a flow or planner served without one: one skill, named after the TARGET's
    attribute."""
    from ._wire import AgentCard, AgentSkill

    what = "planner" if kind == "planner" else "flow"
    return AgentCard(
        name=name,
        description=f"The PenguiFlow {what} {name}, served with penguiflow a2a serve.",
        version="1.0.0",
        skills=[AgentSkill(id=name, name=name, description=f"Run the {what} {name}.")],
    )


def build_app(
    value: Any,
    *,
    kind: str,
    name: str,
    card: Any,
    url: str,
    tokens: dict[str, str] | None,
    allow_private_push: bool,
) -> tuple[Any, str | None, Any]:
    """(the Starlette app serving `value`, the generated token or None, the push sender,
    which the caller closes once the server has stopped)."""
    from . import server
    from ._push import PushSender

    target = server.PlannerExecutor(value) if kind == "planner" else value
    authenticator, generated = _authenticator(tokens)
    push = PushSender(allow_private=allow_private_push, setting="--allow-private-push")
    app = server.create_a2a_app(
        target,
        agent_card=card if card is not None else default_card(name, kind),
        authenticator=authenticator,
        push_sender=push,
        base_url=url,
    )
    return app, generated, push
