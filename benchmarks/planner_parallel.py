"""What the planner's parallel step costs: a plan of N trivial tools, against plain asyncio.

    python benchmarks/planner_parallel.py            # N = 1, 4, 16, 64; best of 5
    python benchmarks/planner_parallel.py --quick    # fewer steps, best of 3

Three shapes run in one process on the same tool (`echo`, which returns its input):

- `gather`: the floor, `asyncio.gather` of the N tool calls, nothing else;
- `anyio_per_branch`: the same calls as a task each in an anyio task group (what structured
  concurrency costs by itself, with nothing of the planner);
- `anyio`: the planner's parallel step, through its public API only: a `ReactPlanner` whose
  scripted model plans the N calls (`{"next_node": "parallel", ...}`, no join, every branch at
  once: `max_concurrent_branches=None`), timed from the step's `step_start` event to its
  `step_complete` event. So it includes what a step is made of beyond running the branches:
  the model's decision (an instant scripted reply, parsed and checked), the per-call events,
  the tool context and policy, and the branches' observation.

Each line reports microseconds per step for each, the ratios to `gather`, and a whole
`ReactPlanner.run` with that plan (one model call for the plan, one for the answer), so the
step can be read against a full run with an instant model. Needs `penguiflow-planner`.
Nothing is asserted.
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
from penguiflow_planner import PlannerEvent, PlannerFinish, ReactPlanner
from pydantic import BaseModel

import penguiflow
from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool

#: the planner's default: every branch of a plan at once
MAX_PARALLEL: int | None = None


class Item(BaseModel):
    n: int


@tool(desc="Echo a number.")
async def echo(message: Item, ctx: Any) -> Item:
    return message


class PlanThenAnswer:
    """A model (a plain client returning text) that plans `width` echo calls, then answers,
    run after run: runs go one after another, so the replies simply alternate."""

    def __init__(self, width: int) -> None:
        steps = [{"node": "echo", "args": {"n": n}} for n in range(width)]
        self._replies = (
            json.dumps({"next_node": "parallel", "args": {"steps": steps}}),
            json.dumps({"next_node": "final_response", "args": {"answer": "done"}}),
        )
        self._calls = 0

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Callable[[str, bool], None] | None = None,
    ) -> str:
        reply = self._replies[self._calls % 2]
        self._calls += 1
        return reply


class StepClock:
    """The event callback that times each step that acted (`step_start` to `step_complete`;
    the answering step ends the run instead and is not counted)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self.steps = 0
        self._started: float | None = None

    def __call__(self, event: PlannerEvent) -> None:
        now = time.perf_counter()
        if event.event_type == "step_start":
            self._started = now
        elif event.event_type == "step_complete" and self._started is not None:
            self.total_s += now - self._started
            self.steps += 1
            self._started = None


def planner(width: int, clock: StepClock) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("echo", Item, Item)
    catalog = build_catalog([Node(echo, name="echo", policy=NodePolicy(validate="none"))], registry)
    return ReactPlanner(
        llm_client=PlanThenAnswer(width),
        catalog=catalog,
        max_iters=4,
        max_concurrent_branches=MAX_PARALLEL,
        absolute_max_parallel=max(50, width),  # PenguiFlow's cap of 50 would refuse N = 64
        event_callback=clock,
    )


async def gather_step(width: int) -> Any:
    return await asyncio.gather(*(echo(Item(n=n), None) for n in range(width)))


async def anyio_per_branch_step(width: int) -> Any:
    outcomes: list[Any] = [None] * width

    async def branch(index: int) -> None:
        outcomes[index] = await echo(Item(n=index), None)

    async with anyio.create_task_group() as group:
        for index in range(width):
            group.start_soon(branch, index)
    return outcomes


async def per_step_us(
    step: Callable[[int], Awaitable[Any]], width: int, steps: int, repeat: int
) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for _ in range(steps):
            await step(width)
        best = min(best, time.perf_counter() - started)
    return best / steps * 1e6


async def planner_us(width: int, runs: int, repeat: int) -> tuple[float, float]:
    """The planner's parallel step and its whole run, in microseconds (best of `repeat`)."""
    best_step = best_run = float("inf")
    for _ in range(repeat):
        clock = StepClock()
        async with planner(width, clock) as plan:
            gc.collect()
            started = time.perf_counter()
            for _ in range(runs):
                result = await plan.run("bench")
                if not (isinstance(result, PlannerFinish) and result.ok):
                    raise RuntimeError(f"the benchmark run did not answer: {result!r}")
            elapsed = time.perf_counter() - started
        if clock.steps != runs:
            raise RuntimeError(f"expected {runs} parallel steps, timed {clock.steps}")
        best_step = min(best_step, clock.total_s / runs)
        best_run = min(best_run, elapsed / runs)
    return best_step * 1e6, best_run * 1e6


async def bench(widths: list[int], branches: int, repeat: int) -> list[dict[str, Any]]:
    lines = []
    for width in widths:
        steps = max(50, branches // width)
        # Gather first and last, so it does not always run on a colder or warmer process.
        gather = await per_step_us(gather_step, width, steps, repeat)
        per_branch = await per_step_us(anyio_per_branch_step, width, steps, repeat)
        structured, whole = await planner_us(width, max(20, steps // 10), repeat)
        gather = min(gather, await per_step_us(gather_step, width, steps, repeat))
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, best of 3")
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args(argv)
    branches, repeat = (2_000, 3) if args.quick else (20_000, 5)
    asyncio.run(bench(args.widths, branches, repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
