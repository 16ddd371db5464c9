"""Background tasks from the planner's side: `ReactPlanner(background_tasks=
BackgroundTasksConfig(enabled=True))` with penguiflow-sessions installed (task tools in the
catalog, prompt guidance, tools marked to run in the background), the error without it, and a
foreground turn with a scripted model that spawns two background tasks through `tasks.spawn`,
which run, and whose patches are applied (one automatically, one approved)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest
from _scripted import ScriptedClient, action, answer, catalog
from penguiflow_planner import BackgroundTasksConfig, PlannerFinish, ReactPlanner
from penguiflow_planner._background_support import BACKGROUND_GUIDANCE
from penguiflow_sessions.models import MergeStrategy, TaskStatus, TaskType
from penguiflow_sessions.planner import PlannerTaskPipeline
from penguiflow_sessions.task_tools import build_task_tool_specs
from test_task_tools import RecordingService

from penguiflow.errors import MissingPluginError

TASK_TOOLS = {spec.name for spec in build_task_tool_specs()}


def _planner(rules: list[Any], **config: Any) -> ReactPlanner:
    return ReactPlanner(
        llm_client=ScriptedClient(rules),
        catalog=catalog(),
        max_iters=6,
        background_tasks=BackgroundTasksConfig(**config) if config else None,
    )


def _system_prompt(planner: ReactPlanner) -> str:
    client = planner._settings.client
    assert isinstance(client, ScriptedClient) and client.prompts
    return str(client.prompts[0][0]["content"])


async def test_enabled_adds_the_task_tools_and_the_guidance() -> None:
    planner = _planner([lambda text: answer("hi")], enabled=True)
    names = {spec.name for spec in planner.catalog}
    assert names >= TASK_TOOLS and {"research", "publish"} <= names
    await planner.run("hello")
    prompt = _system_prompt(planner)
    assert BACKGROUND_GUIDANCE in prompt
    assert "tasks.spawn" in prompt


async def test_guidance_can_be_left_out_and_disabled_changes_nothing() -> None:
    quiet = _planner([lambda text: answer("hi")], enabled=True, include_prompt_guidance=False)
    await quiet.run("hello")
    assert BACKGROUND_GUIDANCE not in _system_prompt(quiet)
    for off in (_planner([lambda text: answer("hi")]),
                _planner([lambda text: answer("hi")], enabled=False)):  # fmt: skip
        assert {spec.name for spec in off.catalog} == {"research", "publish", "build_report"}
        await off.run("hello")
        assert "<background_tasks>" not in _system_prompt(off)


def test_without_penguiflow_sessions_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "penguiflow_sessions", None)  # import now fails
    with pytest.raises(MissingPluginError, match="pip install penguiflow-sessions"):
        _planner([], enabled=True)
    _planner([], enabled=False)  # off: nothing to install


def test_a_fork_keeps_the_tools_once_and_a_sub_agent_fork_has_none() -> None:
    planner = _planner([], enabled=True)
    child = planner.fork()
    names = [spec.name for spec in child.catalog]
    assert sorted(names) == sorted({*names}) and set(names) >= TASK_TOOLS
    sub = planner.fork(background_tasks=None)
    assert not TASK_TOOLS & {spec.name for spec in sub.catalog}
    assert "research" in {spec.name for spec in sub.catalog}


def _report_rules(text: str) -> str | None:
    if '"task_id": "j1"' in text:
        return answer("The report is being built.")
    return action("build_report", {"title": "Q4"})


async def test_a_tool_marked_background_returns_a_task_handle() -> None:
    service = RecordingService()
    planner = _planner([_report_rules], enabled=True, allow_tool_background=True)
    finish = await planner.run(
        "build it", tool_context={"task_service": service, "session_id": "s1", "task_id": "fg"}
    )
    assert isinstance(finish, PlannerFinish) and finish.ok
    [(name, kwargs)] = service.calls
    assert name == "spawn_tool_job"
    assert kwargs["tool_name"] == "build_report" and kwargs["tool_args"] == {"title": "Q4"}
    assert kwargs["merge_strategy"] == MergeStrategy.APPEND  # the tool's own default
    assert kwargs["parent_task_id"] == "fg"
    step = finish.metadata["steps"][0]
    assert step["observation"] == {"task_id": "j1", "status": "RUNNING",
                                   "message": "spawned:job"}  # fmt: skip


async def test_a_background_tool_runs_inline_unless_allowed_and_possible() -> None:
    def rules(text: str) -> str | None:
        if '"pages": 3' in text:
            return answer("Built inline.")
        return action("build_report", {"title": "Q4"})

    service = RecordingService()
    cases = [
        ({"enabled": True}, {"task_service": service, "session_id": "s1"}),  # not allowed
        ({"enabled": True, "allow_tool_background": True}, {"session_id": "s1"}),  # no service
        ({"enabled": True, "allow_tool_background": True},
         {"task_service": service, "session_id": "s1", "proactive_hops_remaining": 0}),
    ]  # fmt: skip
    for config, tools in cases:
        finish = await _planner([rules], **config).run("build", tool_context=tools)
        assert isinstance(finish, PlannerFinish) and finish.payload is not None
        assert "Built inline." in str(finish.payload)
    assert service.calls == []


async def test_a_refused_background_spawn_is_an_observation() -> None:
    class Refusing(RecordingService):
        async def spawn_tool_job(self, **kwargs: Any) -> Any:
            raise RuntimeError("quota reached")

    def rules(text: str) -> str | None:
        if "quota reached" in text:
            return answer("Could not start it.")
        return action("build_report", {"title": "Q4"})

    planner = _planner([rules], enabled=True, allow_tool_background=True)
    finish = await planner.run("b", tool_context={"task_service": Refusing(), "session_id": "s1"})
    assert isinstance(finish, PlannerFinish)
    assert "could not start in the background" in str(finish.metadata["steps"][0]["error"])


# -- end to end with a real session -------------------------------------------------------------


def _foreground_rules(text: str) -> str | None:
    if text.count('"task_id"') >= 2:
        return answer("Both tasks are running in the background.")
    if '"task_id"' in text:
        return action("tasks.spawn", {"query": "research krill", "merge_strategy": "append"})
    return action("tasks.spawn", {"query": "research penguins"})


def _subagent_rules(text: str) -> str | None:
    for topic in ("penguins", "krill"):
        if f"notes on {topic}" in text:
            return answer(f"Findings about {topic}.")
    for topic in ("penguins", "krill"):
        if f"research {topic}" in text:
            return action("research", {"topic": topic})
    return None


async def _wait_ended(session: Any, task_ids: list[str]) -> dict[str, Any]:
    ended = {TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.CANCELLED}
    async with asyncio.timeout(20):
        while True:
            tasks = {task_id: await session.get_task(task_id) for task_id in task_ids}
            if all(task is not None and task.status in ended for task in tasks.values()):
                return tasks
            await asyncio.sleep(0.01)  # polling the registry with a deadline


async def test_a_foreground_turn_spawns_two_background_tasks_that_run_and_merge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("penguiflow_sessions.manager", reason="the session engine (S2)")
    from penguiflow_sessions.manager import SessionManager
    from penguiflow_sessions.task_service import InProcessTaskService

    foreground = _planner([_foreground_rules], enabled=True)

    def subagent() -> ReactPlanner:
        return ReactPlanner(llm_client=ScriptedClient([_subagent_rules]), catalog=catalog())

    manager = SessionManager()
    service = InProcessTaskService(
        sessions=manager, planner_factory=subagent,
        background_config=BackgroundTasksConfig(enabled=True),
    )  # fmt: skip
    caplog.set_level(logging.INFO)
    session = await manager.get_or_create("s1")
    # The foreground turn is a task of the session too; its tools find the service here.
    session.update_context(llm_context={}, tool_context={"task_service": service})
    turn = await session.run_task(
        PlannerTaskPipeline(planner_factory=lambda: foreground),
        query="Research penguins and krill in the background",
    )
    finish_steps = turn.metadata["steps"]
    assert turn.digest == ["Both tasks are running in the background."]
    spawned = [step["observation"]["task_id"] for step in finish_steps
               if step["action"]["next_node"] == "tasks.spawn"]  # fmt: skip
    assert len(spawned) == 2
    tasks = await _wait_ended(session, spawned)
    assert {task.status for task in tasks.values()} == {TaskStatus.COMPLETE}
    assert {task.task_type for task in tasks.values()} == {TaskType.BACKGROUND}
    # The HUMAN_GATED one (the default) waits for approval; the APPEND one merged itself.
    pending = dict(session.pending_patches)
    assert [p.task_id for p in pending.values()] == [spawned[0]]
    [(patch_id, gated)] = pending.items()
    assert gated.patch.digest == ["Findings about penguins."]
    assert await service.apply_patch(session_id="s1", patch_id=patch_id, action="apply")
    assert not session.pending_patches
    details = await service.get(session_id="s1", task_id=spawned[1], include_result=True)
    assert details is not None and details.result_digest == ["Findings about krill."]
    # Telemetry of the tasks reached the logs (the default sink never drops them).
    # The event follows the status change, so wait for it (with a deadline).
    async with asyncio.timeout(10):
        while not all(
            any(f"task completed: {task_id}" in record.getMessage() for record in caplog.records)
            for task_id in spawned
        ):
            await asyncio.sleep(0.01)
    await manager.drop("s1")
