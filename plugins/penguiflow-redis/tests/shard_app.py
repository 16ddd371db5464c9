"""The flow the shard tests run on worker processes (`penguiflow worker shard_app:build`).

`split` fans a job out to three branches `a`, `b`, `c` (each sleeps for the job's `delay`),
which a join_k node joins again; `collect` answers `"<n>:a,b,c"`. With chaining on (the
default) a worker serving every node runs `split` and the branches in one entry, crosses Redis
to the join (its bucket lives in Redis), and runs `collect` after the join in the join's entry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from penguiflow import Message, Node, NodePolicy, create, join_k
from penguiflow.types import FinalAnswer


class Job(BaseModel):
    n: int
    delay: float = 0.0


class Part(BaseModel):
    n: int
    branch: str


async def split(message: Message, ctx: Any) -> Message:
    return message


def _branch(label: str) -> Node:
    async def run(message: Message, ctx: Any) -> Message:
        job: Job = message.payload
        await asyncio.sleep(job.delay)
        return message.model_copy(update={"payload": Part(n=job.n, branch=label)})

    return Node(run, name=label, policy=NodePolicy(validate="none"))


async def collect(message: Message, ctx: Any) -> Message:
    parts: list[Part] = message.payload
    labels = ",".join(sorted(part.branch for part in parts))
    return message.model_copy(update={"payload": FinalAnswer(text=f"{parts[0].n}:{labels}")})


def build(runtime: object = None) -> Any:
    first = Node(split, name="split", policy=NodePolicy(validate="none"))
    branches = [_branch(label) for label in ("a", "b", "c")]
    join = join_k("join", 3)
    done = Node(collect, name="collect", policy=NodePolicy(validate="none"))
    return create(
        first.to(*branches),
        *(branch.to(join) for branch in branches),
        join.to(done),
        done.to(),
        runtime=runtime,
        payload_types=[Job, Part],
    )
