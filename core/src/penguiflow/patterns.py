"""Reusable nodes and helpers: routers, fan-in (`join_k`) and bounded concurrent maps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import TypeAdapter

from ._definition import FAN_IN_ATTRIBUTE
from .errors import ConfigurationError, InvalidTypeError, UnknownNameError
from .node import Node, NodePolicy
from .policies import PolicyLike, RoutingRequest, evaluate_policy
from .types import Message

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["join_k", "map_concurrent", "predicate_router", "union_router"]


T = TypeVar("T")
R = TypeVar("R")


async def map_concurrent(
    items: Iterable[T],
    worker: Callable[[T], Awaitable[R]],
    *,
    max_concurrency: int = 8,
) -> list[R]:
    """Run `worker` over `items` with at most `max_concurrency` at once; results in order."""
    materialized = list(items)
    gate = asyncio.Semaphore(max(1, max_concurrency))

    async def run(item: T) -> R:
        async with gate:
            return await worker(item)

    return list(await asyncio.gather(*(run(item) for item in materialized)))


def _normalize_targets(context: Context, targets: Any) -> list[Node]:
    """Turn a Node, a successor name, or an iterable of them into successor nodes."""
    if isinstance(targets, Node | str):
        targets = [targets]
    by_name = {
        successor.name: successor for successor in context._outgoing if isinstance(successor, Node)
    }
    resolved: list[Node] = []
    for target in targets:
        if isinstance(target, Node):
            resolved.append(target)
        elif isinstance(target, str):
            node = by_name.get(target)
            if node is None:
                known = ", ".join(sorted(str(name) for name in by_name)) or "none"
                raise UnknownNameError(f"No successor named '{target}' (successors: {known})")
            resolved.append(node)
        else:
            raise InvalidTypeError("Targets must be Node or str")
    return resolved


async def _route(
    router: Node,
    ctx: Context,
    message: Any,
    targets: Any,
    policy: PolicyLike | None,
) -> None:
    if targets is None:
        return
    selected = _normalize_targets(ctx, targets)
    if not selected:
        return
    if policy is not None:
        request = RoutingRequest(
            message=message,
            context=ctx,
            node=router,
            proposed=tuple(selected),
            trace_id=getattr(message, "trace_id", None),
        )
        decision = await evaluate_policy(policy, request)
        if decision is None:
            return
        selected = _normalize_targets(ctx, decision)
        if not selected:
            return
    await ctx.emit(message, to=selected)


def predicate_router(
    name: str,
    predicate: Callable[[Any], Any],
    *,
    policy: PolicyLike | None = None,
) -> Node:
    """A node that forwards each message to the successors `predicate(message)` names."""
    router: Node

    async def route(message: Any, ctx: Context) -> None:
        await _route(router, ctx, message, predicate(message), policy)

    router = Node(route, name=name, policy=NodePolicy(validate="none"))
    return router


def union_router(name: str, union_model: Any, *, policy: PolicyLike | None = None) -> Node:
    """A node that validates against a union and routes to the successor named by its `kind`
    (or its class name), forwarding the validated model."""
    adapter: TypeAdapter[Any] = TypeAdapter(union_model)
    router: Node

    async def route(message: Any, ctx: Context) -> None:
        validated = adapter.validate_python(message)
        target = getattr(validated, "kind", None) or type(validated).__name__
        await _route(router, ctx, validated, target, policy)

    router = Node(route, name=name, policy=NodePolicy(validate="none"))
    return router


def join_k(name: str, k: int) -> Node:
    """Fan-in: wait for `k` items of a trace, then emit them together in arrival order."""
    if k <= 0:
        raise ConfigurationError("k must be positive")
    buckets: dict[str, list[Any]] = {}

    async def join(message: Any, ctx: Context) -> Any:
        trace_id = getattr(message, "trace_id", None)
        if trace_id is None:
            raise ConfigurationError("join_k requires messages with trace_id")
        bucket = buckets.setdefault(trace_id, [])
        bucket.append(message)
        if len(bucket) < k:
            return None
        del buckets[trace_id]
        first = bucket[0]
        if isinstance(first, Message):
            return first.model_copy(update={"payload": [item.payload for item in bucket]})
        return bucket

    # Lets a distributed runtime recognise the join and keep its buckets outside the process
    # (see penguiflow.runtime.fan_in_size).
    setattr(join, FAN_IN_ATTRIBUTE, k)
    return Node(join, name=name, policy=NodePolicy(validate="none"))
