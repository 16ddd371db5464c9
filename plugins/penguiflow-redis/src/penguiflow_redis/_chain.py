"""Operator chaining: a worker runs a node's output through the next node itself when it can.

Without chaining every hop of a message is a round trip through Redis: the output is written to
the next node's stream (in the commit of the input), read back by some worker, decoded, and
committed again. When the next node is served by the same worker, that trip buys nothing but
durability of the intermediate step, so by default the worker calls the next node at once, in
the same task (same trace, same lane: cancel and deadlines apply as usual, and the node engine
records each node's attempt, spans and events as for any message). Only outputs that leave the
worker are written: to a node this worker does not serve, to a join_k node (its bucket lives in
Redis, shared by every worker), to the client's reply stream, or any output of a node named in
`commit_after` (a durability boundary the user asked for). They are written together with the
ack of the one input entry that started the chain, in one commit (`COMMIT_SCRIPT`), so they are
still written exactly once. A crash re-runs the whole chain from that entry: the nodes inside a
chain are at-least-once, as the first node already was.

A chain is capped at `MAX_CHAIN_HOPS` nodes per entry (a controller loop would otherwise run for
ever inside one entry, its results never committed): the last node's outputs go through Redis,
and the next entry goes on from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Container, Iterable
from typing import Any, Protocol

from penguiflow.errors import ConfigurationError

__all__ = ["MAX_CHAIN_HOPS", "ChainPlan", "ChainRun", "check_boundaries", "follow"]

#: Nodes run in-process for one input entry before outputs are committed to Redis anyway.
MAX_CHAIN_HOPS = 64


def check_boundaries(commit_after: Iterable[str], nodes: Collection[str]) -> None:
    """Refuse `commit_after` names that are not nodes of the flow (a typo would silently
    leave the boundary out)."""
    unknown = sorted(set(commit_after) - set(nodes))
    if unknown:
        raise ConfigurationError(
            f"commit_after names {unknown}, which are not nodes of this flow; its nodes are "
            f"{sorted(nodes)}: fix the names in the runtime option commit_after"
        )


class ChainPlan:
    """Which outputs a worker runs in-process: to `targets` (served here, not join_k), from
    any node but the `boundaries`, while the entry has run fewer than `max_hops` nodes."""

    __slots__ = ("boundaries", "enabled", "max_hops", "targets")

    def __init__(
        self,
        *,
        served: Iterable[str],
        joins: Container[str],
        enabled: bool = True,
        commit_after: Iterable[str] = (),
        max_hops: int = MAX_CHAIN_HOPS,
    ) -> None:
        self.enabled = enabled
        self.targets = frozenset(name for name in served if name not in joins)
        self.boundaries = frozenset(commit_after)
        self.max_hops = max_hops

    def chains_after(self, node: str, hops: int) -> bool:
        """Whether the outputs of `node`, the `hops`-th node run for an entry, may chain."""
        return self.enabled and hops < self.max_hops and node not in self.boundaries


class ChainRun:
    """One input entry's chain: what to commit with its ack, and how many nodes ran."""

    __slots__ = ("hops", "outputs")

    def __init__(self) -> None:
        self.hops = 0
        #: (stream, encoded envelope) pairs, written with the entry's ack
        self.outputs: list[tuple[str, str]] = []


class Hop(Protocol):
    """What `follow` needs of a processed node's context (`WorkerContext`)."""

    @property
    def trace_id(self) -> str | None: ...

    @property
    def reply(self) -> str: ...

    outputs: list[tuple[str, str]]
    chained: list[tuple[str, Any]]


#: runs one node for an item: (node, item, trace id, reply stream, run) -> the node's context
Process = Callable[[str, Any, "str | None", str, ChainRun], Awaitable[Hop]]


async def follow(ctx: Hop, run: ChainRun, process: Process, cancelled: Container[str]) -> None:
    """Collect `ctx`'s outputs into `run` and run its chained outputs, and theirs, in turn.

    A hop whose trace was cancelled meanwhile sends nothing on. Outputs to several local
    successors (a fan-out) run concurrently, each in a task of its own (its own lane)."""
    while True:
        trace = ctx.trace_id
        if trace is not None and trace in cancelled:
            return
        run.outputs.extend(ctx.outputs)
        successors = ctx.chained
        if not successors:
            return
        if len(successors) == 1:
            node, item = successors[0]
            ctx = await process(node, item, _trace_of(item, trace), ctx.reply, run)
            continue
        import anyio

        async with anyio.create_task_group() as branches:
            for node, item in successors:
                branches.start_soon(
                    _branch, node, item, _trace_of(item, trace), ctx.reply, run, process, cancelled
                )
        return


async def _branch(
    node: str,
    item: Any,
    trace: str | None,
    reply: str,
    run: ChainRun,
    process: Process,
    cancelled: Container[str],
) -> None:
    ctx = await process(node, item, trace, reply, run)
    await follow(ctx, run, process, cancelled)


def _trace_of(item: Any, trace: str | None) -> str | None:
    """The trace a chained item belongs to: its own, else its sender's (as for an envelope)."""
    return getattr(item, "trace_id", None) or trace
