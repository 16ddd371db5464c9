"""Shared helpers for the planner-side session tests: a scripted JSON LLM client, small
tools, and a task runtime stand-in for pipeline tests that do not need a whole session."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from penguiflow_sessions.models import (
    StateUpdate,
    TaskContextSnapshot,
    TaskState,
    TaskStatus,
    TaskType,
    UpdateType,
)
from penguiflow_sessions.steering import SteeringInbox
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node
from penguiflow.catalog import NodeSpec, build_catalog, tool

Rule = Callable[[str], "str | None"]


def action(next_node: str, args: Mapping[str, Any]) -> str:
    return json.dumps({"next_node": next_node, "args": dict(args)})


def answer(text: str) -> str:
    return action("final_response", {"answer": text})


class ScriptedClient:
    """A JSON LLM client whose reply depends on what the conversation holds: each rule sees
    the text of every non-system message and returns a reply or None (next rule)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self.prompts: list[list[Mapping[str, str]]] = []

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Callable[[str, bool], None] | None = None,
    ) -> tuple[str, float]:
        self.prompts.append(list(messages))
        text = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") != "system")
        for rule in self.rules:
            reply = rule(text)
            if reply is not None:
                return reply, 0.0
        raise AssertionError(f"no scripted reply for: {text[-400:]}")


class Topic(BaseModel):
    topic: str


class Notes(BaseModel):
    notes: str


class Report(BaseModel):
    title: str


class ReportOut(BaseModel):
    report: dict[str, Any]


@tool(desc="Research a topic and return notes.", side_effects="read")
async def research(args: Topic, ctx: Any) -> Notes:
    return Notes(notes=f"notes on {args.topic}")


@tool(desc="Ask a human before publishing.", side_effects="write")
async def publish(args: Topic, ctx: Any) -> Notes:
    if not ctx.tool_context.get("approved"):
        await ctx.pause("approval_required", {"topic": args.topic})
    return Notes(notes=f"published {args.topic}")


@tool(
    desc="Build a long report.",
    side_effects="read",
    extra={"background": {"enabled": True, "mode": "job", "default_merge_strategy": "APPEND"}},
)
async def build_report(args: Report, ctx: Any) -> ReportOut:
    return ReportOut(report={"title": args.title, "pages": 3})


def catalog() -> list[NodeSpec]:
    registry = ModelRegistry()
    registry.register("research", Topic, Notes)
    registry.register("publish", Topic, Notes)
    registry.register("build_report", Report, ReportOut)
    nodes = [
        Node(research, name="research"),
        Node(publish, name="publish"),
        Node(build_report, name="build_report"),
    ]
    return build_catalog(nodes, registry)


class FakeRuntime:
    """What a pipeline sees of its task (`TaskRuntime`'s surface), recording its updates."""

    def __init__(
        self,
        *,
        query: str,
        task_type: TaskType = TaskType.BACKGROUND,
        llm_context: dict[str, Any] | None = None,
        tool_context: dict[str, Any] | None = None,
    ) -> None:
        snapshot = TaskContextSnapshot(
            session_id="s1",
            task_id="t1",
            query=query,
            llm_context=llm_context or {},
            tool_context=tool_context or {},
            context_version=3,
            context_hash="abc",
            spawned_from_event_id="ev-1",
        )
        self.state = TaskState(
            task_id="t1",
            session_id="s1",
            status=TaskStatus.RUNNING,
            task_type=task_type,
            context_snapshot=snapshot,
        )
        self.context_snapshot = snapshot
        self.steering = SteeringInbox()
        self.session = None
        self.updates: list[StateUpdate] = []
        self.changed: Any = None

    async def emit_update(
        self,
        update_type: UpdateType,
        content: Any,
        *,
        step_index: int | None = None,
        total_steps: int | None = None,
    ) -> StateUpdate:
        update = StateUpdate(
            session_id=self.state.session_id,
            task_id=self.state.task_id,
            update_type=update_type,
            content=content,
            step_index=step_index,
            total_steps=total_steps,
        )
        self.updates.append(update)
        if self.changed is not None:
            self.changed.set()
        return update

    def of(self, update_type: UpdateType) -> list[Any]:
        return [u.content for u in self.updates if u.update_type == update_type]
