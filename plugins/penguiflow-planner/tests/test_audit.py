"""What the planner puts in the audit trail: pauses, resumes (refused ones too) and calls of
tools that write or are marked destructive, as the run's tenant and user, without tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner import OwnerMismatchError, PlannerFinish, PlannerPause, ReactPlanner
from pydantic import BaseModel
from tools import catalog

from penguiflow import ModelRegistry, Node, NodePolicy, audit, build_catalog, tool
from penguiflow.llm import ScriptedLLMClient
from penguiflow.memory import MemoryKey
from penguiflow.state import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

ALICE = MemoryKey(tenant_id="acme", user_id="alice", session_id="s1")
MALLORY = MemoryKey(tenant_id="globex", user_id="mallory", session_id="s9")


@pytest.fixture(autouse=True)
def _no_capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PENGUIFLOW_CAPTURE_CONTENT", raising=False)
    restore = audit.set_audit_store(None)
    yield
    restore()


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


class Path_(BaseModel):
    path: str


class Removed(BaseModel):
    removed: bool


@tool(desc="Delete a file.", side_effects="external", safety_notes="Destructive: cannot undo.")
async def delete_file(message: Path_, ctx: Any) -> Removed:
    return Removed(removed=True)


def with_delete() -> list[Any]:
    registry = ModelRegistry()
    registry.register("delete_file", Path_, Removed)
    node = Node(delete_file, name="delete_file", policy=NodePolicy(validate="none"))
    return [*catalog(), *build_catalog([node], registry)]


async def test_pause_and_resume_are_recorded_as_the_owner_without_the_token(
    tmp_path: Path,
) -> None:
    async with SQLiteStateStore(f"sqlite:///{tmp_path / 'p.db'}") as store:
        client = ScriptedLLMClient([act("refund", amount=25.0), answer("refunded")])
        planner = ReactPlanner(llm_client=client, catalog=catalog(), state_store=store)
        paused = await planner.run(
            "refund order 7", memory_key=ALICE, tool_context={"trace_id": "e" * 32}
        )
        assert isinstance(paused, PlannerPause)
        token = paused.resume_token
        with pytest.raises(OwnerMismatchError):
            await planner.resume(token, "yes", memory_key=MALLORY)
        finished = await planner.resume(token, "approved: card 4242", memory_key=ALICE)
        assert isinstance(finished, PlannerFinish) and finished.ok

        records = await store.list_audit("acme", session_id="s1")
        assert [(r.action, r.outcome) for r in records] == [
            ("tool.write", "paused"),
            ("planner.pause", "ok"),
            ("planner.resume", "ok"),
        ]
        write, pause, resume = records
        assert write.target == "refund" and write.details["side_effects"] == "write"
        # Named by the digest planner events carry (`pause_ref`), never by the token.
        assert pause.target == resume.target == pause.details["pause_ref"]
        assert pause.target is not None and pause.target.startswith("pause-")
        assert pause.details["reason"] == "approval_required"
        assert {r.user for r in records} == {"alice"} and {r.source for r in records} == {"planner"}
        assert pause.trace_id == "e" * 32
        # The refused attempt is filed under the claimant's tenant, not the owner's.
        (refused,) = await store.list_audit("globex")
        assert (refused.action, refused.outcome, refused.user) == (
            "planner.resume", "refused", "mallory")  # fmt: skip
        assert refused.details["error_type"] == "OwnerMismatchError"
        everything = json.dumps([r.to_dict() for r in [*records, refused]])
        assert token not in everything
        # Content capture is off: neither the tool's arguments nor the human's input.
        assert "4242" not in everything and "25.0" not in everything


async def test_tool_arguments_are_kept_only_with_content_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", "1")
    store = InMemoryStateStore()
    client = ScriptedLLMClient([act("delete_file", path="/srv/data.db"), answer("gone")])
    planner = ReactPlanner(llm_client=client, catalog=with_delete(), state_store=store)
    finished = await planner.run(
        "delete it", tool_context={"tenant_id": "acme", "user_id": "bob", "session_id": "s2"}
    )
    assert isinstance(finished, PlannerFinish) and finished.ok
    (entry,) = await store.list_audit("acme", session_id="s2")
    assert (entry.action, entry.target, entry.outcome, entry.user) == (
        "tool.destructive", "delete_file", "ok", "bob")  # fmt: skip
    assert entry.details["safety_notes"] == "Destructive: cannot undo."
    assert entry.details["content"] == {"args": {"path": "/srv/data.db"}}


async def test_read_only_tools_are_not_audited() -> None:
    store = InMemoryStateStore()
    client = ScriptedLLMClient([act("search", text="penguins"), answer("found")])
    planner = ReactPlanner(llm_client=client, catalog=catalog(), state_store=store)
    await planner.run("find", tool_context={"tenant_id": "acme"})
    assert await store.list_audit("acme") == []


async def test_a_store_without_the_capability_leaves_records_to_the_process_store() -> None:
    class PauseOnly:  # planner_state only: no audit capability
        def __init__(self) -> None:
            self.saved: dict[str, Any] = {}

        async def save_event(self, event: Any) -> None: ...
        async def load_history(self, trace_id: str) -> list[Any]:
            return []

        async def save_remote_binding(self, binding: Any) -> None: ...
        async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
            self.saved[token] = payload

        async def load_planner_state(self, token: str) -> dict[str, Any] | None:
            return self.saved.get(token)

        async def consume_planner_state(self, token: str) -> dict[str, Any] | None:
            return self.saved.pop(token, None)

    trail = InMemoryStateStore()
    restore = audit.set_audit_store(trail)
    try:
        client = ScriptedLLMClient([act("refund", amount=5.0)])
        planner = ReactPlanner(llm_client=client, catalog=catalog(), state_store=PauseOnly())
        assert isinstance(await planner.run("refund", memory_key=ALICE), PlannerPause)
    finally:
        restore()
    assert [r.action for r in await trail.list_audit("acme")] == ["tool.write", "planner.pause"]
