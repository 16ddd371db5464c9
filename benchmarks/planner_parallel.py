"""What the planner's switch to anyio costs: a parallel step of N trivial tools.

    python benchmarks/planner_parallel.py            # N = 1, 4, 16, 64; best of 5
    python benchmarks/planner_parallel.py --quick    # fewer steps, best of 3

Three shapes run in one process on the planner's own branch code (`ReactPlanner._branch`: the
`tool_call` event, the tool context, `run_tool` with the node's policy):

- `gather`: the planner before, `asyncio.gather` of the branches behind an `asyncio.Semaphore`
  (a cancelled run did not wait for its branches);
- `anyio_per_branch`: the plain anyio translation, a task per branch in a task group behind a
  `CapacityLimiter`;
- `anyio`: the planner now (`ReactPlanner._parallel`), `max_parallel` workers in a task group
  taking the branches in plan order; a cancelled run cancels and awaits every branch.

Each line reports microseconds per step for each, the ratios to `gather`, and a whole
`ReactPlanner.run` with that plan (one model call for the plan, one for the answer, the append
join) so the difference can be read against a full run with an instant model. Needs
`penguiflow-planner`. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import anyio
from penguiflow_planner import PlannerBudgets, ReactPlanner
from penguiflow_planner._budgets import BudgetUsage
from penguiflow_planner._planner import _Run
from penguiflow_planner._trajectory import Trajectory
from pydantic import BaseModel

import penguiflow
from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
from penguiflow.llm import ScriptedLLMClient

MAX_PARALLEL = 4  # the planner's default


class Item(BaseModel):
    n: int


@tool(desc="Echo a number.")
async def echo(message: Item, ctx: Any) -> Item:
    return message


def planner(replies: list[str] | None = None) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("echo", Item, Item)
    catalog = build_catalog([Node(echo, name="echo", policy=NodePolicy(validate="none"))], registry)
    return ReactPlanner(
        ScriptedLLMClient(replies or []),
        catalog,
        max_parallel=MAX_PARALLEL,
        budgets=PlannerBudgets(max_iters=4),
    )


async def gather_step(
    plan: ReactPlanner, run: _Run, calls: list[tuple[str, dict[str, Any]]]
) -> Any:
    """The parallel step as the planner ran it before the switch."""
    gate = asyncio.Semaphore(plan.max_parallel)

    async def branch(name: str, args: dict[str, Any]) -> Any:
        async with gate:
            return await plan._branch(run, name, args)

    return await asyncio.gather(*(branch(name, args) for name, args in calls))


async def anyio_per_branch_step(
    plan: ReactPlanner, run: _Run, calls: list[tuple[str, dict[str, Any]]]
) -> Any:
    """A task and a limiter slot per branch."""
    limiter = anyio.CapacityLimiter(plan.max_parallel)
    outcomes: list[Any] = [None] * len(calls)

    async def branch(index: int, name: str, args: dict[str, Any]) -> None:
        async with limiter:
            outcomes[index] = await plan._branch(run, name, args)

    async with anyio.create_task_group() as group:
        for index, (name, args) in enumerate(calls):
            group.start_soon(branch, index, name, args)
    return outcomes


async def anyio_step(plan: ReactPlanner, run: _Run, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    return await plan._parallel(run, calls)


async def per_step_us(
    step: Callable[[ReactPlanner, _Run, list[tuple[str, dict[str, Any]]]], Awaitable[Any]],
    width: int,
    steps: int,
    repeat: int,
) -> float:
    plan = planner()
    run = _Run(
        trajectory=Trajectory(query="bench"), usage=BudgetUsage(), memory_key=None, history=[]
    )
    calls = [("echo", {"n": n}) for n in range(width)]
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for _ in range(steps):
            await step(plan, run, calls)
        best = min(best, time.perf_counter() - started)
    return best / steps * 1e6


async def planner_run_us(width: int, runs: int, repeat: int) -> float:
    """A whole run: the model plans `width` calls, then answers."""
    plan_reply = json.dumps({"plan": [{"node": "echo", "args": {"n": n}} for n in range(width)]})
    answer = json.dumps({"next_node": None, "args": {"answer": "done"}})
    best = float("inf")
    for _ in range(repeat):
        plans = [planner([plan_reply, answer]) for _ in range(runs)]
        gc.collect()
        started = time.perf_counter()
        for plan in plans:
            await plan.run("bench")
        best = min(best, time.perf_counter() - started)
    return best / runs * 1e6


async def bench(widths: list[int], branches: int, repeat: int) -> list[dict[str, Any]]:
    lines = []
    for width in widths:
        steps = max(50, branches // width)
        # Gather first and last, so it does not always run on a colder or warmer process.
        gather = await per_step_us(gather_step, width, steps, repeat)
        per_branch = await per_step_us(anyio_per_branch_step, width, steps, repeat)
        structured = await per_step_us(anyio_step, width, steps, repeat)
        gather = min(gather, await per_step_us(gather_step, width, steps, repeat))
        whole = await planner_run_us(width, max(20, steps // 10), repeat)
        line = {
            "workload": "planner_parallel",
            "n": width,
            "steps": steps,
            "max_parallel": MAX_PARALLEL,
            "gather_us_per_step": round(gather, 2),
            "anyio_per_branch_us_per_step": round(per_branch, 2),
            "anyio_us_per_step": round(structured, 2),
            "ratio_anyio_per_branch_to_gather": round(per_branch / gather, 3),
            "ratio_anyio_to_gather": round(structured / gather, 3),
            "extra_us_per_step": round(structured - gather, 2),
            "planner_run_us": round(whole, 1),
            "extra_share_of_run": round((structured - gather) / whole, 4),
            "python": platform.python_version(),
            "anyio": metadata.version("anyio"),
            "penguiflow": penguiflow.__version__,
        }
        print(json.dumps(line), flush=True)
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, best of 3")
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args(argv)
    branches, repeat = (2_000, 3) if args.quick else (20_000, 5)
    asyncio.run(bench(args.widths, branches, repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
