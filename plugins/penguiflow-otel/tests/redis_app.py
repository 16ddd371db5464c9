"""The flow the MLflow test runs on two `penguiflow worker redis_app:build` processes.

`work` holds each job for its `delay` (so that one worker cannot take every job before the
other asks) and `finish` answers `"<n>:<pid>"`; the same definition serves the client
(`build(runtime=url)`) and the workers. Nothing here exports spans itself: the installed
penguiflow-otel plugin does, configured by the `OTEL_*` variables of each process.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from penguiflow import Message, Node, NodePolicy, create
from penguiflow.runtime import Flow
from penguiflow.types import FinalAnswer

__all__ = ["Done", "Job", "build"]


class Job(BaseModel):
    n: int
    delay: float = 0.0


class Done(BaseModel):
    n: int
    pid: int


async def work(message: Message, ctx: object) -> Message:
    job: Job = message.payload
    await asyncio.sleep(job.delay)
    return message.model_copy(update={"payload": Done(n=job.n, pid=os.getpid())})


async def finish(message: Message, ctx: object) -> Message:
    done: Done = message.payload
    return message.model_copy(update={"payload": FinalAnswer(text=f"{done.n}:{done.pid}")})


def build(runtime: str = "local") -> Flow:
    work_node = Node(work, name="work", policy=NodePolicy(validate="none"))
    finish_node = Node(finish, name="finish", policy=NodePolicy(validate="none"))
    # Named with its type: mypy 2.4 rejects the bare list literal against create()'s overloads.
    payload_types: list[type[BaseModel]] = [Job, Done]
    return create(
        work_node.to(finish_node),
        finish_node.to(),
        runtime=runtime,
        payload_types=payload_types,
    )
