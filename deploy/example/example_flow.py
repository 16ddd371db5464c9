"""The flow the image runs when you bring none: two nodes on the redis runtime.

Replace this folder with your own (build argument APP_DIR) and point the manifests' TARGET
arguments at your module. `build` is what workers load (`penguiflow worker
example_flow:build`); `agent` is what the A2A server serves (`penguiflow a2a serve
example_flow:agent`): the same flow, as a client of the runtime named by $PENGUIFLOW_RUNTIME,
so the server only emits and fetches and the workers run the nodes.

With the runtime URL's `flow_name=example` the nodes' input streams are
`penguiflow:example:in:tidy` and `penguiflow:example:in:count`, the names
deploy/kubernetes/scaledobject.yaml watches.
"""

from __future__ import annotations

import os
from typing import Any

from penguiflow import Message, Node, NodePolicy, create

__all__ = ["NODES", "agent", "build"]

#: the node names, in order (each has a stream `<prefix>:<flow name>:in:<node>`)
NODES = ("tidy", "count")

_PLAIN = NodePolicy(validate="none")


async def tidy(message: Message, ctx: Any) -> Message:
    """Collapse the text's whitespace."""
    return message.model_copy(update={"payload": " ".join(str(message.payload).split())})


async def count(message: Message, ctx: Any) -> Message:
    """Answer the text with its number of words."""
    text = str(message.payload)
    return message.model_copy(update={"payload": {"text": text, "words": len(text.split())}})


def build(runtime: str | None = None) -> Any:
    """The flow; `runtime` is given by clients (workers get theirs from `--runtime`)."""
    first = Node(tidy, name=NODES[0], policy=_PLAIN)
    second = Node(count, name=NODES[1], policy=_PLAIN)
    return create(first.to(second), second.to(), runtime=runtime)


def agent() -> Any:
    """The flow as a client of the distributed runtime, for `penguiflow a2a serve`."""
    runtime = os.environ.get("PENGUIFLOW_RUNTIME")
    if not runtime:
        raise RuntimeError(
            "PENGUIFLOW_RUNTIME is not set: set it to the runtime URL the workers use, e.g. "
            "redis://redis:6379/0?flow_name=example"
        )
    return build(runtime=runtime)
