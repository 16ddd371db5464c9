"""A planner with one tool and a scripted model, for the tests that export a planner run."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
from penguiflow.llm import ScriptedLLMClient


class Query(BaseModel):
    text: str


class Hits(BaseModel):
    titles: list[str]


@tool(desc="Search documents by text.", side_effects="read")
async def search(message: Query, ctx: Any) -> Hits:
    return Hits(titles=[f"doc about {message.text}"])


def planner_with_search(planner_module: ModuleType) -> Any:
    """A `ReactPlanner` whose scripted model calls `search` once, then answers."""
    registry = ModelRegistry()
    registry.register("search", Query, Hits)
    catalog = build_catalog(
        [Node(search, name="search", policy=NodePolicy(validate="none"))], registry
    )
    replies = [
        json.dumps({"thought": "look", "next_node": "search", "args": {"text": "penguins"}}),
        json.dumps(
            {"thought": "done", "next_node": "final_response", "args": {"answer": "penguins!"}}
        ),
    ]
    return planner_module.ReactPlanner(llm_client=ScriptedLLMClient(replies), catalog=catalog)
