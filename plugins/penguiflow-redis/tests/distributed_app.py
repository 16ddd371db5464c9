"""The flow the runtime tests run on worker processes (`penguiflow worker distributed_app:build`).

`work` sleeps for the job's delay and reports which process ran it; `finish` turns that into
a final answer `"<n>:<pid>"`. With `PF_TEST_MARKERS` set, `work` drops marker files when it
starts and when it is cancelled, so tests can see what happened inside another process.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel

from penguiflow import Message, Node, NodePolicy, create, join_k
from penguiflow.types import FinalAnswer


class Job(BaseModel):
    n: int
    delay: float = 0.0
    #: the worker process running this job dies at once (as with kill -9 or out-of-memory)
    crash: bool = False


class Done(BaseModel):
    n: int
    pid: int


def _mark(name: str) -> None:
    folder = os.environ.get("PF_TEST_MARKERS")
    if folder:
        Path(folder, name).touch()


async def work(message: Message, ctx: object) -> Message:
    job: Job = message.payload
    _mark(f"started-{message.trace_id}")
    if job.crash:
        os._exit(17)
    try:
        await asyncio.sleep(job.delay)
    except asyncio.CancelledError:
        _mark(f"cancelled-{message.trace_id}")
        raise
    return message.model_copy(update={"payload": Done(n=job.n, pid=os.getpid())})


async def finish(message: Message, ctx: object) -> Message:
    done: Done = message.payload
    return message.model_copy(update={"payload": FinalAnswer(text=f"{done.n}:{done.pid}")})


def build(runtime: object = None, *, errors: bool = False) -> object:
    """The same definition serves the client (`build(runtime=url)`) and the workers."""
    work_node = Node(work, name="work", policy=NodePolicy(validate="none"))
    finish_node = Node(finish, name="finish", policy=NodePolicy(validate="none"))
    return create(
        work_node.to(finish_node),
        finish_node.to(),
        runtime=runtime,
        payload_types=[Job, Done],
        emit_errors_to_rookery=errors,
    )


def build_with_errors(runtime: object = None) -> object:
    """`build` with emit_errors_to_rookery=True: failures reach the client as FlowErrors."""
    return build(runtime, errors=True)


class Branch(BaseModel):
    n: int
    branch: str
    pid: int


def _branch(label: str) -> Node:
    async def run(message: Message, ctx: object) -> Message:
        job: Job = message.payload
        await asyncio.sleep(job.delay)
        return message.model_copy(
            update={"payload": Branch(n=job.n, branch=label, pid=os.getpid())}
        )

    return Node(run, name=label, policy=NodePolicy(validate="none"))


async def collect(message: Message, ctx: object) -> Message:
    branches: list[Branch] = message.payload
    n = branches[0].n
    labels = ",".join(sorted(b.branch for b in branches))
    pids = ",".join(sorted({str(b.pid) for b in branches}))
    return message.model_copy(update={"payload": FinalAnswer(text=f"{n}:{labels}:{pids}")})


def build_join(runtime: object = None) -> object:
    """A fan-out to three branches joined again by join_k: `"<n>:a,b,c:<pids of branches>"`."""
    split = Node(_pass, name="split", policy=NodePolicy(validate="none"))
    branches = [_branch(label) for label in ("a", "b", "c")]
    join = join_k("join", 3)
    done = Node(collect, name="collect", policy=NodePolicy(validate="none"))
    return create(
        split.to(*branches),
        *(b.to(join) for b in branches),
        join.to(done),
        done.to(),
        runtime=runtime,
        payload_types=[Job, Branch],
    )


async def _pass(message: Message, ctx: object) -> Message:
    return message


class MarkingMiddleware:
    """A middleware given to `create()`: marks `middleware-<pid>` when a node succeeds."""

    async def __call__(self, event: object) -> None:
        if getattr(event, "event_type", None) == "node_success":
            _mark(f"middleware-{os.getpid()}")


def build_observed(runtime: object = None) -> object:
    """`build` with a middleware and the state store named by `PF_TEST_STATE_STORE`."""
    work_node = Node(work, name="work", policy=NodePolicy(validate="none"))
    finish_node = Node(finish, name="finish", policy=NodePolicy(validate="none"))
    return create(
        work_node.to(finish_node),
        finish_node.to(),
        runtime=runtime,
        payload_types=[Job, Done],
        middlewares=[MarkingMiddleware()],
        state_store=os.environ["PF_TEST_STATE_STORE"],
    )
