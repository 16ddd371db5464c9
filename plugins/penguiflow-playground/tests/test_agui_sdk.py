"""The AG-UI endpoint checked with the protocol's own Python SDK (`ag-ui-protocol`, written by
the AG-UI project, not by us): the request is built with its models, and every event we stream
must validate as one of its events, fields and casing included."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _support import serving, sse_events

core = pytest.importorskip("ag_ui.core", reason="pip install ag-ui-protocol (the test extra)")


def request(thread: str, text: str) -> dict[str, Any]:
    body = core.RunAgentInput(
        thread_id=thread,
        run_id=f"{thread}-run",
        state={},
        messages=[core.UserMessage(id="m1", content=text)],
        tools=[],
        context=[],
        forwarded_props={},
    )
    return dict(body.model_dump(by_alias=True, exclude_none=True, mode="json"))


async def run(app: Any, thread: str, text: str) -> list[Any]:
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(core.Event)
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url) as client,
        client.stream("POST", "/ag-ui", json=request(thread, text)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = [event async for event in sse_events(response)]
    return [adapter.validate_python(event) for event in raw]


async def test_an_answer_is_a_valid_ag_ui_run(planner_app: Any) -> None:
    events = await run(planner_app, "sdk-1", "hello there")
    assert isinstance(events[0], core.RunStartedEvent) and events[0].thread_id == "sdk-1"
    assert isinstance(events[-1], core.RunFinishedEvent) and events[-1].run_id == "sdk-1-run"
    text = "".join(e.delta for e in events if isinstance(e, core.TextMessageContentEvent))
    assert text == "Hello from the scripted planner."


async def test_tool_calls_and_a_pause_are_valid_ag_ui_events(planner_app: Any) -> None:
    events = await run(planner_app, "sdk-2", "#publish# please")
    starts = [e for e in events if isinstance(e, core.ToolCallStartEvent)]
    assert [e.tool_call_name for e in starts][:1] == ["research"]
    results = {e.tool_call_id for e in events if isinstance(e, core.ToolCallResultEvent)}
    assert starts[0].tool_call_id in results
    custom = [e for e in events if isinstance(e, core.CustomEvent)]
    [pause] = [e for e in custom if e.name == "penguiflow.pause"]
    assert pause.value["reason"] == "approval_required"
    assert isinstance(events[-1], core.RunFinishedEvent)
