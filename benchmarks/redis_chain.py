"""The `chain` workload's flow for worker processes: `penguiflow worker redis_chain:build`.

Ten pass-through nodes with validation off, as in `workloads.chain_flow`; the benchmark's
client builds the same definition with `build(runtime=url)`. With `PENGUIFLOW_BENCH_NODE_US`
set (microseconds), each node first keeps the CPU busy that long: work in the nodes makes the
workers, not the client and Redis, what bounds throughput, so adding workers shows on a small
machine (`redis_scale.py --node-us`).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from penguiflow import Node, NodePolicy, create

HOPS = 10
#: the environment variable giving each node's CPU work per message, in microseconds
NODE_US_ENV = "PENGUIFLOW_BENCH_NODE_US"


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def _working(micros: float) -> Any:
    seconds = micros / 1e6

    async def working(message: Any, ctx: Any) -> Any:
        # CPU, not a sleep: a sleeping node costs a worker nothing, so it would not show
        # what adding worker processes buys.
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            pass
        return message

    return working


def build(runtime: str | None = None) -> Any:
    policy = NodePolicy(validate="none")
    micros = float(os.environ.get(NODE_US_ENV, "0") or 0)
    func = _working(micros) if micros > 0 else passthrough
    nodes = [Node(func, name=f"n{i}", policy=policy) for i in range(HOPS)]
    return create(*(a.to(b) for a, b in itertools.pairwise(nodes)), nodes[-1].to(), runtime=runtime)
