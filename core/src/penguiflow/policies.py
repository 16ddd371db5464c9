"""Routing policies: decide, per message, which of a router's proposed targets get it."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .errors import InvalidTypeError, UnknownNameError

if TYPE_CHECKING:
    from ._context import Context
    from .node import Node

__all__ = [
    "DictRoutingPolicy",
    "PolicyLike",
    "RoutingDecision",
    "RoutingPolicy",
    "RoutingRequest",
    "evaluate_policy",
]

RoutingDecision: TypeAlias = "Node | str | Sequence[Node | str] | None"


@dataclass(slots=True)
class RoutingRequest:
    """What a policy sees: the message, the router and the targets its predicate proposed."""

    message: Any
    context: Context
    node: Node
    proposed: tuple[Node, ...]
    trace_id: str | None

    @property
    def node_name(self) -> str:
        return self.node.name or self.node.node_id

    @property
    def proposed_names(self) -> tuple[str, ...]:
        return tuple(node.name or node.node_id for node in self.proposed)


class RoutingPolicy(Protocol):
    """Select targets for a request; may be sync or async. `None` drops the message."""

    def select(self, request: RoutingRequest) -> RoutingDecision | Awaitable[RoutingDecision]: ...


PolicyLike: TypeAlias = (
    "RoutingPolicy | Callable[[RoutingRequest], RoutingDecision | Awaitable[RoutingDecision]]"
)


async def evaluate_policy(policy: PolicyLike, request: RoutingRequest) -> RoutingDecision:
    """Run a policy object (`.select`) or a plain callable, awaiting it when needed."""
    select = getattr(policy, "select", None)
    decision = select(request) if select is not None else policy(request)  # type: ignore[operator]
    if inspect.isawaitable(decision):
        decision = await decision
    return decision


class DictRoutingPolicy:
    """Route by a key (the trace id by default) looked up in a mapping, with a default."""

    def __init__(
        self,
        mapping: Mapping[str, RoutingDecision],
        *,
        default: RoutingDecision = None,
        key_getter: Callable[[RoutingRequest], str | None] | None = None,
    ) -> None:
        self._mapping: dict[str, RoutingDecision] = dict(mapping)
        self._default = default
        self._key_getter = key_getter or (lambda request: request.trace_id)

    def select(self, request: RoutingRequest) -> RoutingDecision:
        key = self._key_getter(request)
        if key is None:
            return self._default
        return self._mapping.get(key, self._default)

    def update_mapping(self, mapping: Mapping[str, RoutingDecision]) -> None:
        self._mapping = dict(mapping)

    def set_default(self, default: RoutingDecision) -> None:
        self._default = default

    @classmethod
    def from_json(cls, payload: str | bytes, **kwargs: Any) -> DictRoutingPolicy:
        data = json.loads(payload)
        if not isinstance(data, Mapping):
            raise InvalidTypeError("JSON payload must decode to a mapping")
        return cls(data, **kwargs)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> DictRoutingPolicy:
        return cls.from_json(Path(path).read_text(encoding="utf-8"), **kwargs)

    @classmethod
    def from_env(
        cls,
        env_var: str,
        *,
        loader: Callable[[str], Mapping[str, RoutingDecision]] | None = None,
        default: RoutingDecision = None,
        key_getter: Callable[[RoutingRequest], str | None] | None = None,
    ) -> DictRoutingPolicy:
        raw = os.environ.get(env_var)
        if raw is None:
            raise UnknownNameError(f"Environment variable '{env_var}' not set")
        mapping = (loader or json.loads)(raw)
        if not isinstance(mapping, Mapping):
            raise InvalidTypeError("Policy loader must return a mapping")
        return cls(mapping, default=default, key_getter=key_getter)
