"""A ReactPlanner driven by a scripted model, served in-process and by `penguiflow a2a serve`.

The script reads markers in what the planner shows the model (the query, observations, the
human's answer after a pause) and picks the next action; the markers appear in no tool
description, so the catalog in the prompt never triggers them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from penguiflow_planner import ReactPlanner
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.llm import LLMMessage, ScriptedLLMClient

HUMAN_YES = "HUMAN-SAYS-YES"


class Query(BaseModel):
    text: str


class Said(BaseModel):
    text: str


@dataclass
class Probe:
    """What the tools saw, for in-process assertions."""

    tool_contexts: list[dict[str, Any]] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


def _call(node: str, text: str) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": {"text": text}})


def _finish(answer: str, structured: dict[str, Any] | None = None) -> str:
    args: dict[str, Any] = {"answer": answer}
    if structured is not None:
        args["structured"] = structured
    return json.dumps({"thought": "done", "next_node": "final_response", "args": args})


def decide(messages: list[LLMMessage]) -> str:
    seen = "\n".join(m.content for m in messages)
    if HUMAN_YES in seen:
        return _finish("approved and done")
    if "OBS-TALKED" in seen:
        return _finish("talked", {"words": 3})
    if "OBS-ROUTED" in seen:
        return _finish("routed")
    if "#pause#" in seen:
        return _call("approve", "refund 30")
    if "#stream#" in seen:
        return _call("talk", "one two three")
    if "#block#" in seen:
        return _call("wait", "forever")
    if "#context#" in seen:
        return _call("look", "context")
    if "#fail#" in seen:
        raise RuntimeError("the model is down")
    return _finish("plain answer")


def build_tools(probe: Probe) -> list[Any]:
    @tool(desc="Needs a person's approval before acting.")
    async def approve(message: Query, ctx: Any) -> Said:
        await ctx.pause("approval_required", {"what": message.text})
        return Said(text="unreachable")

    @tool(desc="Speaks word by word.")
    async def talk(message: Query, ctx: Any) -> Said:
        words = message.text.split()
        for seq, word in enumerate(words):
            await ctx.emit_chunk("words", seq, word, done=seq == len(words) - 1)
        return Said(text="OBS-TALKED")

    @tool(desc="Waits for a long time.")
    async def wait(message: Query, ctx: Any) -> Said:
        probe.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise
        return Said(text="never")

    @tool(desc="Looks at what it was given.")
    async def look(message: Query, ctx: Any) -> Said:
        probe.tool_contexts.append(dict(ctx.tool_context))
        return Said(text="OBS-ROUTED")

    registry = ModelRegistry()
    nodes = []
    for func in (approve, talk, wait, look):
        registry.register(func.__name__, Query, Said)
        nodes.append(Node(func, name=func.__name__))
    return build_catalog(nodes, registry)


def make_planner(probe: Probe | None = None, **options: Any) -> ReactPlanner:
    client = ScriptedLLMClient([decide] * 200)
    return ReactPlanner(
        llm_client=client, catalog=build_tools(probe or Probe()), llm_max_retries=0, **options
    )


def build_planner() -> ReactPlanner:
    """The `penguiflow a2a serve` target."""
    return make_planner()
