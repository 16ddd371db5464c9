"""The streams over real HTTP on loopback: the live event stream, AG-UI, and a client that
disconnects mid-run (the run goes on and is recorded)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from _support import eventually, serving, sse_events
from penguiflow_playground import AgUiTranslator, RunAgentInput

from penguiflow.observability import Event, publish


async def test_live_stream_filters_by_trace(planner_app: Any) -> None:
    async with (
        serving(planner_app) as url,
        httpx.AsyncClient(base_url=url) as client,
        client.stream("GET", "/api/live", params={"trace_id": "t-wanted"}) as live,
    ):
        assert live.headers["content-type"].startswith("text/event-stream")
        lines = live.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        assert await anext(lines) == ": subscribed"
        await publish(Event("planner", "step_start", trace_id="t-other"))
        await publish(Event("planner", "step_start", trace_id="t-wanted", attributes={"step": 0}))
        async for event in sse_events(lines):
            assert event["trace_id"] == "t-wanted"
            assert event["attributes"] == {"step": 0}
            assert event["emitted_at"] >= event["ts"] - 1
            break


async def test_disconnect_mid_run_keeps_the_run(planner_app: Any) -> None:
    import playground_agents

    gate = playground_agents.SLOW_GATE.setdefault("gate", asyncio.Event())
    gate.clear()
    async with serving(planner_app) as url, httpx.AsyncClient(base_url=url) as client:
        turn = (await client.post("/api/sessions/d1/chat", json={"query": "#slow#"})).json()
        # The browser watches the run, then goes away while the tool is still working.
        async with client.stream("GET", "/api/sessions/d1/events") as updates:
            async for line in updates.aiter_lines():
                if "tool_call" in line.lower() and "slow" in line:
                    break
        async with client.stream("GET", "/api/live", params={"trace_id": turn["trace_id"]}) as live:
            async for event in sse_events(live):
                if event.get("name") == "tool_call_start":
                    break
        gate.set()

        async def done() -> dict[str, Any] | None:
            task = (await client.get(f"/api/sessions/d1/tasks/{turn['task_id']}")).json()
            return task if task["status"] == "COMPLETE" else None

        await eventually(done)
        trace = (await client.get(f"/api/history/{turn['trace_id']}")).json()
        assert trace["trace"]["status"] == "complete"
        assert next(s["tool"] for s in trace["steps"]) == "slow"
        # every update of the run is stored: a reconnecting page catches up from the store
        updates_after = (await client.get("/api/sessions/d1/updates")).json()["updates"]
        assert any(u["content"].get("status") == "COMPLETE" for u in updates_after)


async def test_agui_run_streams_protocol_events(planner_app: Any) -> None:
    body = {
        "threadId": "thread-1",
        "runId": "run-1",
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": "hello there"}],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }
    async with (
        serving(planner_app) as url,
        httpx.AsyncClient(base_url=url) as client,
        client.stream("POST", "/ag-ui", json=body) as response,
    ):
        assert response.status_code == 200
        events = [event async for event in sse_events(response)]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED"
    assert events[0]["threadId"] == "thread-1" and events[0]["runId"] == "run-1"
    assert kinds[1] == "STATE_SNAPSHOT"
    assert "STEP_STARTED" in kinds
    start = kinds.index("TEXT_MESSAGE_START")
    assert kinds[start + 1] == "TEXT_MESSAGE_CONTENT" and kinds[start + 2] == "TEXT_MESSAGE_END"
    assert events[start + 1]["delta"] == "Hello from the scripted planner."
    assert events[-1]["result"]["status"] == "complete"


async def test_agui_tool_calls_and_pause(planner_app: Any) -> None:
    body = {
        "threadId": "thread-2",
        "runId": "run-2",
        "messages": [{"id": "m1", "role": "user", "content": "#publish# please"}],
    }
    async with serving(planner_app) as url, httpx.AsyncClient(base_url=url) as client:
        async with client.stream("POST", "/ag-ui", json=body) as response:
            events = [event async for event in sse_events(response)]
        kinds = [e["type"] for e in events]
        assert kinds[:2] == ["RUN_STARTED", "STATE_SNAPSHOT"]
        first = kinds.index("TOOL_CALL_START")
        assert events[first]["toolCallName"] == "research"
        assert kinds[first + 1 : first + 4] == [
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
        ]
        assert events[first + 1]["delta"] == '{"text": "Q3 report"}'
        pause = next(e for e in events if e["type"] == "CUSTOM" and e["name"] == "penguiflow.pause")
        assert events[-1]["type"] == "RUN_FINISHED"
        assert events[-1]["result"]["status"] == "paused"
        # the run waits in the session; the playground's pause API resumes it
        ref = pause["value"]["ref"]
        task_id = pause["value"]["taskId"]
        resumed = await client.post(
            f"/api/sessions/thread-2/pauses/{task_id}/approve", json={"ref": ref}
        )
        assert resumed.status_code == 202


async def test_agui_refuses_input_without_a_user_message(client: httpx.AsyncClient) -> None:
    missing = await client.post("/ag-ui", json={"threadId": "t", "runId": "r", "messages": []})
    assert missing.status_code == 422 and "user message" in missing.json()["error"]["message"]
    invalid = await client.post("/ag-ui", json={"runId": "r"})
    assert invalid.status_code == 422 and "threadId" in invalid.json()["error"]["message"]


def test_translator_maps_updates() -> None:
    translator = AgUiTranslator("t", "r")
    assert [e["type"] for e in translator.started()] == ["RUN_STARTED"]
    chunk = {"update_type": "RESULT", "content": {"channel": "answer", "text": "Hi", "done": False}}
    assert [e["type"] for e in translator.translate(chunk)] == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
    ]
    # an answer that streamed is not sent again at the end
    ended = translator.finish("Hi", {"ok": True})
    assert [e["type"] for e in ended] == ["TEXT_MESSAGE_END", "RUN_FINISHED"]
    thinking = translator.translate({"update_type": "THINKING", "content": {"text": "hmm"}})
    assert thinking[0]["name"] == "penguiflow.thinking"
    assert translator.translate({"update_type": "NOTIFICATION", "content": {}}) == []
    failed = AgUiTranslator("t", "r").error("boom", "task_failed")
    assert failed[-1] == {
        **failed[-1],
        "type": "RUN_ERROR",
        "message": "boom",
        "code": "task_failed",
    }


def test_run_agent_input_reads_the_last_user_text() -> None:
    run = RunAgentInput.model_validate(
        {
            "threadId": "t",
            "runId": "r",
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]},
            ],
            "somethingNew": 1,
        }
    )
    assert run.query() == "second"
