"""The playground's JSON API against the ASGI app (httpx): chat turns recorded as traces,
pauses approved, rejected and answered, tasks, history, graph, memory, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import penguiflow_playground
import pytest
from _support import eventually
from playground_agents import build_flow

from penguiflow.errors import ConfigurationError

TERMINAL = ("COMPLETE", "FAILED", "CANCELLED")


def test_public_names() -> None:
    for name in penguiflow_playground.__all__:
        assert getattr(penguiflow_playground, name) is not None
    assert sorted(penguiflow_playground.__all__) == sorted(set(penguiflow_playground.__all__))


async def _task(client: httpx.AsyncClient, session: str, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/sessions/{session}/tasks/{task_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _finished(client: httpx.AsyncClient, session: str, task_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        task = await _task(client, session, task_id)
        return task if task["status"] in TERMINAL else None

    result: dict[str, Any] = await eventually(check)
    return result


async def _pause(client: httpx.AsyncClient, session: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        pauses = (await client.get(f"/api/sessions/{session}/pauses")).json()["pauses"]
        return pauses[0] if pauses else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_chat_pause_approve_finish_and_history(client: httpx.AsyncClient) -> None:
    turn = await client.post("/api/sessions/s1/chat", json={"query": "please #publish# it"})
    assert turn.status_code == 202, turn.text
    task_id, trace_id = turn.json()["task_id"], turn.json()["trace_id"]

    pause = await _pause(client, "s1")
    assert pause["task_id"] == task_id
    assert pause["reason"] == "approval_required"
    assert pause["payload"] == {"document": "Q3 summary"}
    assert pause["ref"].startswith("pause-")
    # a second turn while this one waits is refused with a message saying what to do
    busy = await client.post("/api/sessions/s1/chat", json={"query": "hello"})
    assert busy.status_code == 409
    assert "Tasks view" in busy.json()["error"]["message"]

    approved = await client.post(
        f"/api/sessions/s1/pauses/{task_id}/approve", json={"ref": pause["ref"]}
    )
    assert approved.status_code == 202 and approved.json()["accepted"] is True
    task = await _finished(client, "s1", task_id)
    assert task["status"] == "COMPLETE"
    assert task["result"]["raw_answer"] == "Published the Q3 summary after your approval."

    # the history finds it by session, tenant, text and time, and opens it
    found = (await client.get("/api/history", params={"session_id": "s1"})).json()["traces"]
    assert [t["trace_id"] for t in found] == [trace_id]
    assert found[0]["status"] == "complete" and found[0]["tenant"] == "local"
    assert (await client.get("/api/history", params={"q": "publish"})).json()["traces"]
    assert not (await client.get("/api/history", params={"q": "nothing-like-it"})).json()["traces"]
    assert not (await client.get("/api/history", params={"tenant": "other"})).json()["traces"]
    later = found[0]["started_at"] + 3600
    assert not (await client.get("/api/history", params={"since": later})).json()["traces"]
    assert (await client.get("/api/history", params={"until": "2999-01-01T00:00:00"})).json()[
        "traces"
    ]

    trace = (await client.get(f"/api/history/{trace_id}")).json()
    names = [f"{e['family']}.{e['name']}" for e in trace["events"]]
    assert "planner.pause" in names and "planner.finish" in names
    tools = [s["tool"] for s in trace["steps"]]
    assert tools[:2] == ["research", "publish"]
    assert trace["steps"][0]["thought"] == "First I research the Q3 report."
    assert "OBS-NOTES" in trace["steps"][0]["observation"]
    assert {s["kind"] for s in trace["timeline"]} >= {"planner.run", "planner.step", "tool.call"}
    # the wait for the approval is the trace's one gap, between the two runs
    [gap] = trace["gaps"]
    assert gap["reason"] == "paused"
    runs = [s for s in trace["timeline"] if s["kind"] == "planner.run"]
    assert runs[0]["start_ms"] < gap["start_ms"] < gap["end_ms"] <= runs[1]["start_ms"]
    exported = await client.get(f"/api/history/{trace_id}/export")
    assert exported.headers["content-disposition"].startswith("attachment;")
    assert exported.json()["trace"]["trace_id"] == trace_id


async def test_reject_cancels_the_turn(client: httpx.AsyncClient) -> None:
    turn = (await client.post("/api/sessions/s2/chat", json={"query": "#publish# now"})).json()
    pause = await _pause(client, "s2")
    rejected = await client.post(
        f"/api/sessions/s2/pauses/{turn['task_id']}/reject", json={"ref": pause["ref"]}
    )
    assert rejected.status_code == 202
    task = await _finished(client, "s2", turn["task_id"])
    assert task["status"] in ("CANCELLED", "FAILED")
    record = (await client.get(f"/api/history/{turn['trace_id']}")).json()["trace"]
    assert record["status"] == "cancelled"


async def test_answer_resumes_with_the_text(client: httpx.AsyncClient) -> None:
    turn = (await client.post("/api/sessions/s3/chat", json={"query": "#publish#"})).json()
    pause = await _pause(client, "s3")
    empty = await client.post(
        f"/api/sessions/s3/pauses/{turn['task_id']}/answer", json={"ref": pause["ref"]}
    )
    assert empty.status_code == 422 and "text" in empty.json()["error"]["message"]
    answered = await client.post(
        f"/api/sessions/s3/pauses/{turn['task_id']}/answer",
        json={"ref": pause["ref"], "text": "yes, approved in the playground"},
    )
    assert answered.status_code == 202
    assert (await _finished(client, "s3", turn["task_id"]))["status"] == "COMPLETE"


async def test_bad_requests_name_the_fix(client: httpx.AsyncClient) -> None:
    empty = await client.post("/api/sessions/s4/chat", json={"query": "   "})
    assert empty.status_code == 422 and "empty" in empty.json()["error"]["message"]
    wrong = await client.post("/api/sessions/s4/chat", json={"text": "hi"})
    assert wrong.status_code == 422 and '"query"' in wrong.json()["error"]["message"]
    not_json = await client.post("/api/sessions/s4/chat", content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    bad_id = await client.post("/api/sessions/a%20b/chat", json={"query": "hi"})
    assert bad_id.status_code == 422
    no_ref = await client.post("/api/sessions/s4/pauses/t1/approve", json={})
    assert no_ref.status_code == 422 and "ref" in no_ref.json()["error"]["message"]
    bad_action = await client.post("/api/sessions/s4/pauses/t1/maybe", json={"ref": "x"})
    assert bad_action.status_code == 404
    unknown = await client.get("/api/history/0123")
    assert unknown.status_code == 404 and "History" in unknown.json()["error"]["message"]
    limit = await client.get("/api/history", params={"limit": "0"})
    assert limit.status_code == 422
    since = await client.get("/api/history", params={"since": "yesterday"})
    assert since.status_code == 422 and "ISO" in since.json()["error"]["message"]


async def test_failing_turn_is_recorded_failed(client: httpx.AsyncClient) -> None:
    turn = (await client.post("/api/sessions/s5/chat", json={"query": "#fail#"})).json()
    task = await _finished(client, "s5", turn["task_id"])
    assert task["status"] in ("FAILED", "COMPLETE")
    record = (await client.get(f"/api/history/{turn['trace_id']}")).json()["trace"]
    assert record["status"] in ("failed", "complete")
    assert record["ended_at"] is not None


async def test_tasks_cancel_inject_prioritize_groups(
    client: httpx.AsyncClient, planner_app: Any
) -> None:
    from penguiflow_sessions.models import TaskType
    from penguiflow_sessions.server import Principal

    host = planner_app.state.session_host
    session = await host.open(Principal("local", "local"), "s6")
    seen: list[Any] = []

    async def background(runtime: Any) -> None:
        while True:
            seen.append(await runtime.steering.next())

    task_id = await session.spawn_task(
        background, task_type=TaskType.BACKGROUND, description="a long job"
    )
    listed = (await client.get("/api/sessions/s6/tasks")).json()["tasks"]
    assert [t["task_id"] for t in listed] == [task_id]
    steer = await client.post(
        "/api/sessions/s6/steer",
        json={"task_id": task_id, "event_type": "INJECT_CONTEXT", "payload": {"text": "hi"}},
    )
    assert steer.status_code == 202 and steer.json()["accepted"]
    prio = await client.post(
        "/api/sessions/s6/steer",
        json={"task_id": task_id, "event_type": "PRIORITIZE", "payload": {"priority": 5}},
    )
    assert prio.status_code == 202
    assert (await _task(client, "s6", task_id))["priority"] == 5
    cancel = await client.post(f"/api/sessions/s6/tasks/{task_id}/cancel", json={"reason": "x"})
    assert cancel.status_code == 202
    assert (await _finished(client, "s6", task_id))["status"] == "CANCELLED"
    groups = await client.get("/api/sessions/s6/groups")
    assert groups.status_code == 200 and groups.json() == {"groups": []}


async def test_graph_info_memory_health(client: httpx.AsyncClient) -> None:
    info = (await client.get("/api/info")).json()
    assert info["kind"] == "planner"
    # Given as an object, it is named by its class, never "<object>".
    assert info["label"] == "planner · a ReactPlanner from penguiflow_planner._planner"
    assert info["budgets"]["max_iters"] == 60 and info["budgets"]["hop_budget"] is None
    graph = (await client.get("/api/graph")).json()
    nodes = {n["id"] for n in graph["nodes"]}
    assert nodes == {"planner", "research", "publish", "tick", "slow", "merge"}
    assert {"source": "planner", "target": "publish"} in graph["edges"]
    memory = (await client.get("/api/sessions/s7/memory")).json()
    assert isinstance(memory["context_version"], int)
    assert memory["llm_context"] == {} and memory["memory"] is None
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and "state_store" in ready.json()["checks"]
    page = await client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("app.js", "live.js", "history.js", "progress.js", "api.js", "style.css"):
        assert (await client.get(f"/static/{asset}")).status_code == 200


async def test_flow_agent_chat_and_graph() -> None:
    from penguiflow_playground import create_playground_app

    app = create_playground_app(build_flow())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pg") as client:
            graph = (await client.get("/api/graph")).json()
            assert graph["kind"] == "flow"
            assert {"source": "OpenSea", "target": "shout"} in graph["edges"]
            assert {"source": "shout", "target": "exclaim"} in graph["edges"]
            assert {"source": "exclaim", "target": "Rookery"} in graph["edges"]
            assert graph["mermaid"].startswith("graph TD")
            turn = (await client.post("/api/sessions/f1/chat", json={"query": "hi"})).json()
            task = await _finished(client, "f1", turn["task_id"])
            assert task["status"] == "COMPLETE" and task["result"] == {"answer": "HI!"}
            trace = (await client.get(f"/api/history/{turn['trace_id']}")).json()
            nodes = {e["attributes"].get("node_name") for e in trace["events"]}
            assert {"shout", "exclaim"} <= nodes


async def test_token_is_required_when_set() -> None:
    from penguiflow_playground import create_playground_app
    from playground_agents import build_planner

    app = create_playground_app(build_planner(), token="s3cret-token")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pg") as client:
            refused = await client.get("/api/info")
            assert refused.status_code == 401 and "token" in refused.json()["error"]["message"]
            assert (await client.get("/api/sessions/x/tasks")).status_code == 401
            bearer = {"Authorization": "Bearer s3cret-token"}
            assert (await client.get("/api/info", headers=bearer)).status_code == 200
            query = await client.get("/api/info", params={"access_token": "s3cret-token"})
            assert query.status_code == 200
            # the page itself holds no secret; probes need no token
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
    with pytest.raises(ConfigurationError, match="empty"):
        create_playground_app(build_planner(), token=" ")


def test_agent_of_refuses_other_objects() -> None:
    from penguiflow_playground import agent_of

    with pytest.raises(ConfigurationError, match="ReactPlanner or a flow"):
        agent_of(42, "m:x")


def test_page_assets_ship_in_the_package() -> None:
    # Installed from a wheel (the tox env), these come from its package data: no CDN, no Node.
    from importlib.resources import files

    static = files("penguiflow_playground") / "static"
    names = ("index.html", "app.js", "live.js", "history.js", "progress.js", "api.js", "style.css")
    for name in names:
        text = (static / name).read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text


async def _served(factory: Any, **options: Any) -> Any:
    from penguiflow_playground import create_playground_app

    return create_playground_app(factory(), **options)


async def test_info_names_the_served_target() -> None:
    from playground_agents import build_planner

    app = await _served(build_planner, target="playground_agents:build_planner")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pg") as client:
            info = (await client.get("/api/info")).json()
    assert info["target"] == "playground_agents:build_planner"
    assert info["label"] == "planner · playground_agents:build_planner"


async def test_steps_carry_tokens_of_their_llm_calls(client: httpx.AsyncClient) -> None:
    turn = (await client.post("/api/sessions/k1/chat", json={"query": "#steps2#"})).json()
    assert (await _finished(client, "k1", turn["task_id"]))["status"] == "COMPLETE"
    trace = (await client.get(f"/api/history/{turn['trace_id']}")).json()
    calls = [e for e in trace["events"] if e["family"] == "llm"]
    assert len(calls) == 3 and all(e["trace_id"] == turn["trace_id"] for e in calls)
    steps = trace["steps"]
    assert [s["tool"] for s in steps] == ["tick", "tick", None]
    assert all(s["tokens"] > 0 for s in steps)
    assert all(s["cost_usd"] == 0.0 for s in steps)  # the scripted client costs nothing


async def test_parallel_branches_and_their_join_are_steps_calls(
    client: httpx.AsyncClient,
) -> None:
    turn = (await client.post("/api/sessions/p1/chat", json={"query": "#parallel#"})).json()
    task = await _finished(client, "p1", turn["task_id"])
    assert task["status"] == "COMPLETE", task
    trace = (await client.get(f"/api/history/{turn['trace_id']}")).json()
    calls = trace["steps"][0]["calls"]
    branches = [c for c in calls if c["role"] == "branch"]
    assert [c["tool"] for c in branches] == ["research", "research"]
    assert sorted(json.loads(c["args"])["text"] for c in branches) == ["penguins", "puffins"]
    [join] = [c for c in calls if c["role"] == "join"]
    assert join["tool"] == "merge" and "OBS-MERGED 2" in join["observation"]


async def test_chat_streams_the_answer_in_chunks() -> None:
    from playground_agents import build_streaming_planner

    app = await _served(build_streaming_planner)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pg") as client:
            turn = (await client.post("/api/sessions/st/chat", json={"query": "hi"})).json()
            task = await _finished(client, "st", turn["task_id"])
            updates = (
                await client.get("/api/sessions/st/updates", params={"task_id": turn["task_id"]})
            ).json()["updates"]
    answer = task["result"]["raw_answer"]
    assert answer == "Hello from the scripted planner."
    # What the page appends to the bubble: RESULT pieces on the answer channels, in order.
    pieces = [
        u["content"]["text"]
        for u in updates
        if u["update_type"] == "RESULT"
        and u["content"].get("channel") in ("answer", "revision")
        and u["content"].get("text")
    ]
    assert len(pieces) > 3 and "".join(pieces) == answer
    done = [
        i
        for i, u in enumerate(updates)
        if u["update_type"] == "STATUS_CHANGE" and u["content"].get("status") == "COMPLETE"
    ]
    first_piece = next(i for i, u in enumerate(updates) if u["update_type"] == "RESULT")
    assert not done or first_piece < done[0]  # streamed before the turn ended


async def test_memory_comes_from_the_planners_own_memory() -> None:
    from playground_agents import build_planner_with_memory

    app = await _served(build_planner_with_memory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pg") as client:
            assert (await client.get("/api/sessions/m1/memory")).json()["memory"] is None
            for query in ("first question", "second question"):
                turn = (await client.post("/api/sessions/m1/chat", json={"query": query})).json()
                await _finished(client, "m1", turn["task_id"])
            memory = (await client.get("/api/sessions/m1/memory")).json()["memory"]
            other = (await client.get("/api/sessions/m2/memory")).json()["memory"]
    assert [t["user_message"] for t in memory["turns"]] == ["first question", "second question"]
    assert other is None  # another session's key remembers nothing


async def test_tasks_progress_and_groups(client: httpx.AsyncClient, planner_app: Any) -> None:
    from penguiflow_sessions.models import TaskType, UpdateType
    from penguiflow_sessions.server import Principal

    session = await planner_app.state.session_host.open(Principal("local", "local"), "g1")
    group = await session.resolve_or_create_group(group_name="crawl")

    async def background(runtime: Any) -> None:
        await runtime.emit(UpdateType.PROGRESS, {"done": 3, "total": 10})
        while True:
            await runtime.steering.next()

    first = await session.spawn_task(
        background, task_type=TaskType.BACKGROUND, description="part 1", group_id=group.group_id
    )
    second = await session.spawn_task(
        background, task_type=TaskType.BACKGROUND, description="part 2", group_id=group.group_id
    )

    async def progressed() -> bool:
        tasks = (await client.get("/api/sessions/g1/tasks")).json()["tasks"]
        return all(t["progress"] == {"done": 3, "total": 10} for t in tasks) and len(tasks) == 2

    await eventually(progressed)
    [listed] = (await client.get("/api/sessions/g1/groups")).json()["groups"]
    assert listed["name"] == "crawl" and sorted(listed["task_ids"]) == sorted([first, second])
    for task_id in (first, second):
        cancel = await client.post(f"/api/sessions/g1/tasks/{task_id}/cancel", json={})
        assert cancel.status_code == 202
        assert (await _finished(client, "g1", task_id))["status"] == "CANCELLED"
