"""PlannerTaskPipeline and PlannerEventProjector: a planner run as a session task, its events
as updates, its finish as a context patch (artifacts a list of {node, field, artifact})."""

from __future__ import annotations

import asyncio
from typing import Any

import penguiflow_sessions.planner as planner_module
import penguiflow_sessions.projections as projections_module
import pytest
from _scripted import FakeRuntime, ScriptedClient, action, answer, catalog
from penguiflow_planner import PlannerEvent, ReactPlanner
from penguiflow_planner._steering import SteeringCancelled
from penguiflow_sessions.models import StateUpdate, TaskType, UpdateType
from penguiflow_sessions.planner import (
    PlannerTaskPipeline,
    artifacts_as_list,
    build_context_patch,
)
from penguiflow_sessions.projections import PlannerEventProjector
from penguiflow_sessions.steering import SteeringEvent, SteeringEventType

from penguiflow.artifacts import ArtifactRef


def test_public_names() -> None:
    assert planner_module.__all__ == ["PlannerEventSink", "PlannerFactory", "PlannerTaskPipeline"]
    assert projections_module.__all__ == ["PlannerEventProjector"]
    for module in (planner_module, projections_module):
        for name in module.__all__:
            assert getattr(module, name) is not None


def _event(kind: str, step: int = 0, **extra: Any) -> PlannerEvent:
    return PlannerEvent(event_type=kind, ts=0.0, trajectory_step=step, extra=extra)


@pytest.mark.parametrize(
    ("event", "update_type", "content"),
    [
        (
            _event("step_start", 2, action_seq=7),
            UpdateType.PROGRESS,
            {"label": "step_start", "current": 3, "details": {"action_seq": 7}},
        ),
        (
            _event("tool_call_start", tool_name="research", tool_call_id="c1", args_json="{}"),
            UpdateType.TOOL_CALL,
            {"phase": "start", "tool_name": "research", "tool_call_id": "c1", "args_json": "{}"},
        ),
        (
            _event("tool_call_result", tool_name="research", tool_call_id="c1", result_json="1"),
            UpdateType.TOOL_CALL,
            {"phase": "result", "tool_name": "research", "tool_call_id": "c1",
             "result_json": "1"},
        ),
        (
            _event("llm_stream_chunk", text="Hel", done=False, channel="answer"),
            UpdateType.RESULT,
            {"text": "Hel", "done": False, "channel": "answer", "phase": None},
        ),
        (
            _event("llm_stream_chunk", text="hmm", channel="thinking"),
            UpdateType.THINKING,
            {"text": "hmm", "done": False, "channel": "thinking", "phase": None},
        ),
        (
            _event("steering_received", event_id="e1", event_type="INJECT_CONTEXT"),
            UpdateType.STATUS_CHANGE,
            {"status": "STEERING_RECEIVED", "event_id": "e1", "event_type": "INJECT_CONTEXT"},
        ),
        (_event("kv_set", key="k", value=1), UpdateType.CHECKPOINT, {"key": "k", "value": 1}),
        (_event("error", error="boom"), UpdateType.ERROR, {"error": "boom"}),
    ],
)  # fmt: skip
def test_projector_maps_planner_events(
    event: PlannerEvent, update_type: UpdateType, content: dict[str, Any]
) -> None:
    projector = PlannerEventProjector(session_id="s1", task_id="t1", trace_id="tr")
    [update] = projector.project(event)
    assert isinstance(update, StateUpdate)
    assert (update.session_id, update.task_id, update.trace_id) == ("s1", "t1", "tr")
    assert update.update_type == update_type
    assert update.content == content
    assert update.step_index == event.trajectory_step


def test_projector_ignores_events_clients_do_not_follow() -> None:
    projector = PlannerEventProjector(session_id="s1", task_id="t1")
    assert projector.project(_event("planner_args_invalid")) == []
    assert projector.project(_event("trajectory_compressed")) == []


def test_artifacts_become_a_list_of_node_field_artifact_dicts() -> None:
    ref = ArtifactRef(id="art-1", mime_type="application/pdf", size_bytes=10)
    planner_shape = {
        "chart": {"image": {"id": "a2", "mime_type": "image/png"}, "note": "not an artifact"},
        "report": {"pdf": ref},
    }
    listed = artifacts_as_list(planner_shape)
    assert listed == [
        {"node": "chart", "field": "image", "artifact": {"id": "a2", "mime_type": "image/png"}},
        {"node": "report", "field": "pdf", "artifact": ref.model_dump(mode="json")},
    ]
    assert artifacts_as_list(listed) == listed  # already a list: kept
    assert artifacts_as_list(None) == [] and artifacts_as_list("junk") == []


def test_patch_digest_is_the_answer_capped_at_5000_chars() -> None:
    patch = build_context_patch(
        task_id="t1",
        payload={"raw_answer": "x" * 6000},
        metadata={"artifacts": {"tool": {"f": {"id": "a"}}}, "sources": [{"url": "u"}]},
        context_version=4,
        context_hash="h",
        spawned_from_event_id="e",
    )
    assert patch.digest == ["x" * 5000]
    assert patch.artifacts == [{"node": "tool", "field": "f", "artifact": {"id": "a"}}]
    assert patch.sources == [{"url": "u"}]
    assert (patch.source_context_version, patch.source_context_hash) == (4, "h")
    # The patch survives the JSON round trip that persistence gives it.
    assert type(patch).model_validate_json(patch.model_dump_json()) == patch


def _planner(rules: list[Any]) -> ReactPlanner:
    return ReactPlanner(llm_client=ScriptedClient(rules), catalog=catalog(), max_iters=4)


async def test_pipeline_runs_the_planner_and_returns_a_patch() -> None:
    def rules(text: str) -> str | None:
        if "notes on penguins" in text:
            return answer("Penguins live in the south.")
        return action("research", {"topic": "penguins"})

    seen: list[str] = []
    pipeline = PlannerTaskPipeline(
        planner_factory=lambda: _planner([rules]),
        event_sink=lambda event, trace: seen.append(event.event_type),
    )
    runtime = FakeRuntime(query="Tell me about penguins", tool_context={"db": object()})
    result = await pipeline(runtime)
    assert result.payload is not None
    assert result.digest == ["Penguins live in the south."]
    assert result.context_patch is not None
    assert result.context_patch.task_id == "t1"
    assert result.context_patch.source_context_version == 3
    assert result.context_patch.spawned_from_event_id == "ev-1"
    assert result.notification is not None  # a background task announces its result
    assert result.notification.actions[0].payload == {"task_id": "t1"}
    tool_updates = runtime.of(UpdateType.TOOL_CALL)
    assert [u["phase"] for u in tool_updates] == ["start", "end", "result"]
    assert runtime.of(UpdateType.PROGRESS)[0]["label"] == "step_start"
    assert "tool_call_start" in seen
    assert runtime.state.trace_id  # the task got a trace id


async def test_a_background_task_has_its_own_session_scope() -> None:
    captured: dict[str, Any] = {}

    def rules(text: str) -> str | None:
        return answer("done")

    planner = _planner([rules])
    original = planner.run

    async def spy(**kwargs: Any) -> Any:
        captured.update(kwargs["tool_context"])
        return await original(**kwargs)

    planner.run = spy  # type: ignore[method-assign]
    await PlannerTaskPipeline(planner_factory=lambda: planner)(FakeRuntime(query="q"))
    assert captured["session_id"] == "s1:t1"
    assert captured["parent_session_id"] == "s1"
    assert captured["is_subagent"] is True
    assert captured["task_id"] == "t1"

    captured.clear()
    fg = FakeRuntime(query="q", task_type=TaskType.FOREGROUND)
    await PlannerTaskPipeline(planner_factory=lambda: planner)(fg)
    assert captured["session_id"] == "s1"
    assert captured["is_subagent"] is False
    assert (await PlannerTaskPipeline(planner_factory=lambda: planner)(fg)).notification is None


def _publish_rules(text: str) -> str | None:
    if "yes, publish" in text:  # the human's decision reaches the model after the resume
        return answer("Published.")
    return action("publish", {"topic": "moon"})


async def _paused(runtime: FakeRuntime) -> tuple[asyncio.Task[Any], str]:
    """Start a pipeline that pauses for approval; return it and the pause's token."""
    runtime.changed = asyncio.Event()

    def with_approval() -> ReactPlanner:
        return _planner([_publish_rules])

    task = asyncio.create_task(PlannerTaskPipeline(planner_factory=with_approval)(runtime))
    async with asyncio.timeout(10):
        while not runtime.of(UpdateType.CHECKPOINT):
            runtime.changed.clear()
            await runtime.changed.wait()
    [checkpoint] = runtime.of(UpdateType.CHECKPOINT)
    assert checkpoint["kind"] == "approval_required"
    assert checkpoint["resume_token"] == checkpoint["ref"]  # never the secret token itself
    assert checkpoint["ref"].startswith("pause-")
    assert {"status": "PAUSED", "reason": "checkpoint"} in runtime.of(UpdateType.STATUS_CHANGE)
    return task, checkpoint["resume_token"]


async def test_a_pause_waits_for_approval_through_the_task_inbox() -> None:
    runtime = FakeRuntime(query="publish", task_type=TaskType.FOREGROUND)
    task, token = await _paused(runtime)
    # An answer to another pause, and other steering, do not resume it.
    await runtime.steering.push(SteeringEvent(
        session_id="s1", task_id="t1", event_type=SteeringEventType.APPROVE,
        payload={"resume_token": "someone-else"},
    ))  # fmt: skip
    await runtime.steering.push(SteeringEvent(
        session_id="s1", task_id="t1", event_type=SteeringEventType.APPROVE,
        payload={"resume_token": token, "decision": "yes, publish"},
    ))  # fmt: skip
    async with asyncio.timeout(10):
        result = await task
    assert result.digest == ["Published."]
    assert {"status": "RUNNING", "reason": "resume"} in runtime.of(UpdateType.STATUS_CHANGE)


async def test_a_rejected_pause_cancels_the_task() -> None:
    runtime = FakeRuntime(query="publish")
    task, token = await _paused(runtime)
    await runtime.steering.push(SteeringEvent(
        session_id="s1", task_id="t1", event_type=SteeringEventType.REJECT,
        payload={"resume_token": token},
    ))  # fmt: skip
    with pytest.raises(SteeringCancelled, match="pause_rejected"):
        async with asyncio.timeout(10):
            await task


def test_a_factory_must_be_callable() -> None:
    from penguiflow.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="planner_factory"):
        PlannerTaskPipeline(planner_factory=None)  # type: ignore[arg-type]
