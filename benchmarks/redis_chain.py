"""The `chain` workload's flow for worker processes: `penguiflow worker redis_chain:build`.

Ten pass-through nodes with validation off, as in `workloads.chain_flow`; the benchmark's
client builds the same definition with `build(runtime=url)`.
"""

from __future__ import annotations

import itertools
from typing import Any

from penguiflow import Node, NodePolicy, create

HOPS = 10


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def build(runtime: str | None = None) -> Any:
    policy = NodePolicy(validate="none")
    nodes = [Node(passthrough, name=f"n{i}", policy=policy) for i in range(HOPS)]
    return create(*(a.to(b) for a, b in itertools.pairwise(nodes)), nodes[-1].to(), runtime=runtime)
