"""Flows for the chaining and idle tests, also run on worker processes
(`penguiflow worker chain_app:build_chain --node n0 ...`).

`build_chain`: ten nodes n0 -> ... -> n9, each adding its name and process id to the message's
`path` payload; n9 is the egress. With `PF_TEST_MARKERS` set, `n4` drops a marker when it
starts (and when it is cancelled) and sleeps for the job's `delay`, so tests can cancel a trace
in the middle of a chain; n4 also raises while `fail` is above the attempt number.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from penguiflow import Message, Node, NodePolicy, create, join_k

HOPS = 10


class Trip(BaseModel):
    n: int
    path: list[str] = []
    delay: float = 0.0
    #: n4 fails this many times before it succeeds
    fail: int = 0


_attempts: dict[str, int] = {}


def _mark(name: str) -> None:
    folder = os.environ.get("PF_TEST_MARKERS")
    if folder:
        Path(folder, name).touch()


def _hop(name: str) -> Node:
    async def run(message: Message, ctx: Any) -> Message:
        trip: Trip = message.payload
        if name == "n4":
            _mark(f"started-{message.trace_id}")
            attempt = _attempts[message.trace_id] = _attempts.get(message.trace_id, 0) + 1
            if attempt <= trip.fail:
                raise RuntimeError(f"n4 fails on attempt {attempt}")
            try:
                await asyncio.sleep(trip.delay)
            except asyncio.CancelledError:
                _mark(f"cancelled-{message.trace_id}")
                raise
        if name == "n5":
            _mark(f"n5-{message.trace_id}")
        path = [*trip.path, f"{name}@{os.getpid()}"]
        return message.model_copy(update={"payload": trip.model_copy(update={"path": path})})

    policy = NodePolicy(validate="none", max_retries=2, backoff_base=0.01)
    return Node(run, name=name, policy=policy)


def build_chain(runtime: object = None, *, errors: bool = False) -> Any:
    nodes = [_hop(f"n{i}") for i in range(HOPS)]
    return create(
        *(a.to(b) for a, b in itertools.pairwise(nodes)),
        nodes[-1].to(),
        runtime=runtime,
        payload_types=[Trip],
        emit_errors_to_rookery=errors,
    )


def build_chain_with_errors(runtime: object = None) -> Any:
    return build_chain(runtime, errors=True)


async def _split(message: Message, ctx: Any) -> Message:
    return message


def _branch(label: str) -> Node:
    async def run(message: Message, ctx: Any) -> Message:
        trip: Trip = message.payload
        path = [*trip.path, label]
        return message.model_copy(update={"payload": trip.model_copy(update={"path": path})})

    return Node(run, name=label, policy=NodePolicy(validate="none"))


async def _collect(message: Message, ctx: Any) -> Message:
    trips: list[Trip] = message.payload
    labels = sorted(trip.path[-1] for trip in trips)
    return message.model_copy(update={"payload": Trip(n=trips[0].n, path=labels)})


def build_fan_out(runtime: object = None) -> Any:
    """split -> a, b, c -> (each to Rookery): three results per message."""
    split = Node(_split, name="split", policy=NodePolicy(validate="none"))
    branches = [_branch(label) for label in ("a", "b", "c")]
    return create(
        split.to(*branches), *(b.to() for b in branches), runtime=runtime, payload_types=[Trip]
    )


def build_join(runtime: object = None) -> Any:
    """split -> a, b, c -> join_k(3) -> collect: one result per message."""
    split = Node(_split, name="split", policy=NodePolicy(validate="none"))
    branches = [_branch(label) for label in ("a", "b", "c")]
    join = join_k("join", 3)
    collect = Node(_collect, name="collect", policy=NodePolicy(validate="none"))
    return create(
        split.to(*branches),
        *(b.to(join) for b in branches),
        join.to(collect),
        collect.to(),
        runtime=runtime,
        payload_types=[Trip],
    )
