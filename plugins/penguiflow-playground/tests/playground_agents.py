"""Agents the playground tests serve: a planner on the scripted LLM client, a flow, and
factories that fail. `penguiflow dev playground_agents:build_planner` runs from this folder.

The scripted model reads markers in what the planner shows it (the query, observations, the
person's answer after a pause) and picks the next action; no tool description holds a
marker, so the catalog in the prompt never triggers one."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from penguiflow_planner import ReactPlanner
from pydantic import BaseModel

from penguiflow import Message, ModelRegistry, Node, NodePolicy, build_catalog, create, tool
from penguiflow.llm import LLMMessage, ScriptedLLMClient

#: what the page's Approve button sends as the decision; the model finishes when it sees it
APPROVED = "approved in the playground"


class Topic(BaseModel):
    text: str


class Notes(BaseModel):
    text: str


class Branches(BaseModel):
    results: list[Any] = []


def _call(node: str, text: str, thought: str) -> str:
    return json.dumps({"thought": thought, "next_node": node, "args": {"text": text}})


def _finish(answer: str) -> str:
    return json.dumps(
        {"thought": "I can answer now", "next_node": "final_response", "args": {"answer": answer}}
    )


def decide(messages: list[LLMMessage]) -> str:
    seen = "\n".join(m.content for m in messages)
    if APPROVED in seen:
        return _finish("Published the Q3 summary after your approval.")
    if "#publish#" in seen:
        if "OBS-NOTES" in seen:
            return _call("publish", "Q3 summary", "The notes are ready; publishing needs approval.")
        return _call("research", "Q3 report", "First I research the Q3 report.")
    if "#steps" in seen:
        wanted = int(seen.split("#steps", 1)[1].split("#", 1)[0])
        done = seen.count("OBS-TICK")
        if done < wanted:
            return _call("tick", str(done + 1), f"step {done + 1} of {wanted}")
        return _finish(f"ticked {wanted} times")
    if "#parallel#" in seen:
        if "OBS-MERGED" in seen:
            return _finish("Merged both topics.")
        steps = [{"node": "research", "args": {"text": t}} for t in ("penguins", "puffins")]
        plan = {"steps": steps, "join": {"node": "merge"}}
        return json.dumps({"thought": "Both at once.", "next_node": "parallel", "args": plan})
    if "#slow#" in seen and "OBS-SLOW" not in seen:
        return _call("slow", "wait", "This takes a while.")
    if "#fail#" in seen:
        raise RuntimeError("the scripted model is down (#fail# in the query)")
    return _finish("Hello from the scripted planner.")


#: set by a test to release the `slow` tool; the tool waits on it
SLOW_GATE: dict[str, asyncio.Event] = {}


def _tools() -> list[Any]:
    @tool(desc="Research a topic and return notes.", side_effects="read")
    async def research(args: Topic, ctx: Any) -> Notes:
        return Notes(text=f"OBS-NOTES about {args.text}")

    @tool(desc="Publish a document; a person approves first.", side_effects="write")
    async def publish(args: Topic, ctx: Any) -> Notes:
        await ctx.pause("approval_required", {"document": args.text})
        return Notes(text="unreachable: the run resumes by planning again")

    @tool(desc="Count one step.", side_effects="read")
    async def tick(args: Topic, ctx: Any) -> Notes:
        # Paces a long run at about 10 updates a second for the live-view measurement.
        delay = float(os.environ.get("PLAYGROUND_TICK_S", "0"))
        if delay:
            await asyncio.sleep(delay)
        return Notes(text=f"OBS-TICK {args.text}")

    @tool(desc="Wait until released.", side_effects="read")
    async def slow(args: Topic, ctx: Any) -> Notes:
        gate = SLOW_GATE.setdefault("gate", asyncio.Event())
        await gate.wait()
        return Notes(text="OBS-SLOW done")

    @tool(desc="Combine the results of a parallel plan.", side_effects="pure")
    async def merge(args: Branches, ctx: Any) -> Notes:
        return Notes(text=f"OBS-MERGED {len(args.results)} results")

    registry = ModelRegistry()
    nodes = []
    for func in (research, publish, tick, slow):
        registry.register(func.__name__, Topic, Notes)
        nodes.append(Node(func, name=func.__name__))
    registry.register("merge", Branches, Notes)
    nodes.append(Node(merge, name="merge"))
    return build_catalog(nodes, registry)


def build_planner() -> ReactPlanner:
    """The planner every test chats with."""
    return ReactPlanner(
        llm_client=ScriptedLLMClient([decide] * 1000),
        catalog=_tools(),
        llm_max_retries=0,
        max_iters=60,
    )


def build_streaming_planner() -> ReactPlanner:
    """The same planner, streaming its final answer in small chunks as the model writes it."""
    return ReactPlanner(
        llm_client=ScriptedLLMClient([decide] * 1000, chunk_size=4),
        catalog=_tools(),
        llm_max_retries=0,
        max_iters=60,
        stream_final_response=True,
    )


def build_planner_with_memory() -> ReactPlanner:
    """A planner that remembers its turns (truncation) in a state store of its own, not the
    playground's: the Memory view must still show them."""
    from penguiflow_planner.memory import ShortTermMemoryConfig

    from penguiflow.state import InMemoryStateStore

    return ReactPlanner(
        llm_client=ScriptedLLMClient([decide] * 1000),
        catalog=_tools(),
        llm_max_retries=0,
        state_store=InMemoryStateStore(),
        short_term_memory=ShortTermMemoryConfig(strategy="truncation"),
    )


async def _shout(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": str(message.payload).upper()})


async def _exclaim(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": f"{message.payload}!"})


def build_flow() -> Any:
    shout = Node(_shout, name="shout", policy=NodePolicy(validate="none"))
    exclaim = Node(_exclaim, name="exclaim", policy=NodePolicy(validate="none"))
    return create(shout.to(exclaim))


def broken() -> Any:
    raise RuntimeError("the database password is wrong")


def not_an_agent() -> Any:
    return 42
