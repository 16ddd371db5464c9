"""The issue's end-to-end scenario over real loopback HTTP.

A session served by the real app (uvicorn in-process on 127.0.0.1) runs a planner whose model
is scripted. An SSE client (httpx) and a WebSocket client (`websockets`) drive it: a user
message starts a foreground turn that spawns two background sub-agents through `tasks.spawn`
(alpha, HUMAN_GATED; beta, APPEND); the clients watch their progress; alpha is steered
(INJECT_CONTEXT, which its model sees exactly once), beta is cancelled (with its `cascade`
child, not its `isolate` one), alpha's patch is approved into the session context; each client
disconnects mid-way and resumes from its cursor without a gap or a duplicate. Then the server,
its session manager and its store are closed and a new process's worth of them is started over
the same database (SQLite, Redis): resuming clients get the rest, once, and the tasks are there.

Synchronisation is by events and by polling observable state with a deadline, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import websockets
from _scripted import Notes, Topic, action, answer
from _server_support import (
    ALICE,
    TOKENS,
    SseReader,
    auth,
    eventually,
    host_of,
    serving,
    wait_for,
)
from penguiflow_planner import BackgroundTasksConfig, ReactPlanner
from penguiflow_sessions.manager import SessionManager
from penguiflow_sessions.models import (
    ContextPatch,
    MergeStrategy,
    SessionLimits,
    TaskResult,
    TaskType,
)
from penguiflow_sessions.server import BearerTokenAuthenticator, ServerLimits, create_app
from penguiflow_sessions.session import StreamingSession
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node
from penguiflow.catalog import NodeSpec, build_catalog, tool
from penguiflow.state.sqlite import SQLiteStateStore

TOKEN = "alice-token-1"
SID = "chat"
QUERY = "Research emperor penguins and krill prices in the background"
ALPHA = "ALPHA-TASK: research emperor penguins"
BETA = "BETA-TASK: track krill prices"
NEXT_TURN = "NEXT-TURN: what did the background work find?"
INJECTED = "focus on the Ross Sea colonies"
ALPHA_ANSWER = "Emperor penguins of the Ross Sea dive to 500 m."
TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}
PROPAGATION: tuple[Literal["cascade", "isolate"], ...] = ("cascade", "isolate")


# -- the model and the tools -------------------------------------------------------------------


class Gate(BaseModel):
    name: str


class Gates:
    """Named gates a tool waits on: the test sees a tool enter and decides when it returns."""

    def __init__(self) -> None:
        self.entered: dict[str, asyncio.Event] = {}
        self.opened: dict[str, asyncio.Event] = {}

    def _pair(self, name: str) -> tuple[asyncio.Event, asyncio.Event]:
        return (
            self.entered.setdefault(name, asyncio.Event()),
            self.opened.setdefault(name, asyncio.Event()),
        )

    async def wait(self, name: str) -> None:
        entered, opened = self._pair(name)
        entered.set()
        await opened.wait()

    def open(self, name: str) -> None:
        self._pair(name)[1].set()


def _catalog(gates: Gates) -> list[NodeSpec]:
    @tool(desc="Research a topic and return notes.", side_effects="read")
    async def research(args: Topic, ctx: Any) -> Notes:
        return Notes(notes=f"notes on {args.topic}")

    @tool(desc="Wait until a data source is ready.", side_effects="read")
    async def wait_gate(args: Gate, ctx: Any) -> Notes:
        await gates.wait(args.name)
        return Notes(notes=f"gate {args.name} opened")

    registry = ModelRegistry()
    registry.register("research", Topic, Notes)
    registry.register("wait_gate", Gate, Notes)
    nodes = [Node(research, name="research"), Node(wait_gate, name="wait_gate")]
    return build_catalog(nodes, registry)


def _text(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages if m.get("role") != "system")


def _first_user(messages: Sequence[Mapping[str, str]]) -> str:
    return next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")


class RoutedClient:
    """A scripted JSON LLM client shared by the foreground planner and its forks: each call is
    routed by the query in its first user message (the turn, alpha, beta, the next turn) and
    recorded under that route."""

    def __init__(self) -> None:
        self.prompts: list[tuple[str, str]] = []

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Callable[[str, bool], None] | None = None,
    ) -> tuple[str, float]:
        first, text = _first_user(messages), _text(messages)
        route = next((r for r in ("ALPHA", "BETA", "NEXT-TURN") if r in first), "turn")
        self.prompts.append((route, text))
        return getattr(self, "_" + route.lower().replace("-", "_"))(text), 0.0

    def of(self, route: str) -> list[str]:
        return [text for r, text in self.prompts if r == route]

    @staticmethod
    def _turn(text: str) -> str:
        spawned = text.count('"task_id"')
        if spawned == 0:  # HUMAN_GATED is tasks.spawn's default merge strategy
            return action("tasks.spawn", {"query": ALPHA})
        if spawned == 1:
            return action("tasks.spawn", {"query": BETA, "merge_strategy": "append"})
        return answer("Both tasks are running in the background.")

    @staticmethod
    def _alpha(text: str) -> str:
        if "notes on emperor penguins" in text:
            return answer(ALPHA_ANSWER)
        if "gate alpha opened" in text:
            if INJECTED in text:
                return action("research", {"topic": "emperor penguins"})
            return answer("The steering never arrived.")  # the assertions will say so
        return action("wait_gate", {"name": "alpha"})

    @staticmethod
    def _beta(text: str) -> str:
        if "gate beta opened" in text:
            return answer("Krill prices rose.")
        return action("wait_gate", {"name": "beta"})

    @staticmethod
    def _next_turn(text: str) -> str:
        return answer("Alpha found where emperor penguins dive.")


def _planner(client: RoutedClient, gates: Gates) -> ReactPlanner:
    return ReactPlanner(
        llm_client=client,
        catalog=_catalog(gates),
        max_iters=6,
        background_tasks=BackgroundTasksConfig(enabled=True),
    )


class Child:
    """A task pipeline that runs until the test finishes it (or it is cancelled)."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self._done = asyncio.Event()

    def finish(self) -> None:
        self._done.set()

    async def __call__(self, runtime: Any) -> str:
        self.running.set()
        await self._done.wait()
        return "child work done"


# -- clients -----------------------------------------------------------------------------------


class Updates:
    """The updates one client received, in order, over all its connections."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    @property
    def ids(self) -> list[str]:
        return [u["update_id"] for u in self.items]

    def of(self, task_id: str, update_type: str | None = None) -> list[dict[str, Any]]:
        return [
            u
            for u in self.items
            if u["task_id"] == task_id and (update_type is None or u["update_type"] == update_type)
        ]

    def has_status(self, task_id: str, status: str) -> bool:
        return any(u["content"].get("status") == status for u in self.of(task_id, "STATUS_CHANGE"))

    async def until(self, predicate: Callable[[], bool]) -> None:
        await wait_for(predicate, timeout=20)

    async def until_id(self, update_id: str) -> None:
        await self.until(lambda: update_id in self.ids)


class SseClient:
    """An httpx SSE connection whose events a background task appends to `updates`."""

    def __init__(self, http: httpx.AsyncClient, updates: Updates) -> None:
        self.http = http
        self.updates = updates
        self.last_id: str | None = None
        self._stack: AsyncExitStack | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, last_event_id: str | None = None) -> None:
        headers = auth(TOKEN)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._stack = AsyncExitStack()
        response = await self._stack.enter_async_context(
            self.http.stream("GET", f"/sessions/{SID}/events", headers=headers)
        )
        assert response.status_code == 200, response.status_code
        reader = SseReader(response)
        await asyncio.wait_for(reader.until_comment("subscribed"), 10)
        self._reader = asyncio.create_task(self._read(reader))

    async def _read(self, reader: SseReader) -> None:
        while True:
            event = await reader.next_event()
            if event.event == "end":
                return
            assert event.id == event.data["update_id"]
            self.updates.items.append(event.data)
            self.last_id = event.id

    async def disconnect(self) -> None:
        assert self._reader is not None and self._stack is not None
        if self._reader.done():
            self._reader.result()  # a reader that failed says why
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._stack.aclose()


class WsClient:
    """A WebSocket connection: updates go to `updates`, every other frame to `frames`."""

    def __init__(self, base: str, updates: Updates) -> None:
        self.url = base.replace("http://", "ws://") + f"/sessions/{SID}/ws"
        self.updates = updates
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.last_id: str | None = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, since_id: str | None = None) -> None:
        url = self.url + (f"?since_id={since_id}" if since_id else "")
        self._ws = await websockets.connect(url, additional_headers=auth(TOKEN))
        ready = json.loads(await asyncio.wait_for(self._ws.recv(), 10))
        assert ready == {"type": "ready", "session_id": SID}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            frame = json.loads(raw)
            if frame["type"] == "update":
                self.updates.items.append(frame["update"])
                self.last_id = frame["update"]["update_id"]
            else:
                self.frames.put_nowait(frame)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a frame and return the answer carrying its request id."""
        request_id = secrets.token_hex(4)
        await self._ws.send(json.dumps({**frame, "request_id": request_id}))
        while True:
            answer_frame = await asyncio.wait_for(self.frames.get(), 10)
            if answer_frame.get("request_id") == request_id:
                return answer_frame

    async def disconnect(self) -> None:
        assert self._reader is not None
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def _tasks(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await http.get(f"/sessions/{SID}/tasks", headers=auth(TOKEN))
    assert response.status_code == 200
    return {task["task_id"]: task for task in response.json()["tasks"]}


async def _task_status(http: httpx.AsyncClient, task_id: str) -> str:
    response = await http.get(f"/sessions/{SID}/tasks/{task_id}", headers=auth(TOKEN))
    assert response.status_code == 200
    status: str = response.json()["status"]
    return status


async def _until_status(http: httpx.AsyncClient, task_id: str, statuses: set[str]) -> str:
    found: list[str] = []

    async def check() -> bool:
        found[:] = [await _task_status(http, task_id)]
        return found[0] in statuses

    await eventually(check, timeout=20)
    return found[0]


async def _stored_ids(http: httpx.AsyncClient, since_id: str | None = None) -> list[str]:
    params = {"limit": "5000", **({"since_id": since_id} if since_id else {})}
    response = await http.get(f"/sessions/{SID}/updates", params=params, headers=auth(TOKEN))
    assert response.status_code == 200
    return [u["update_id"] for u in response.json()["updates"]]


def _assert_once_and_in_order(got: list[str], stored: list[str]) -> None:
    assert len(got) == len(set(got)), "a client received an update twice"
    missing = [i for i in stored if i not in set(got)]
    assert not missing, f"a client missed {len(missing)} updates: {missing[:5]}"
    assert got == stored


# -- the store, per backend --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Opens the state store over one database; each call is what a new process opens."""
    opened: list[Any] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sessions.db'}"

        def factory() -> Any:
            opened.append(SQLiteStateStore(url))
            return opened[-1]

    else:
        redis_url = os.environ.get("PENGUIFLOW_REDIS_URL")
        if redis_url is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PENGUIFLOW_REDIS_URL is not set under CI")
            pytest.skip("set PENGUIFLOW_REDIS_URL (scripts/services/redis.sh) for Redis tests")
        from penguiflow_redis.store import RedisStateStore

        prefix = f"pf-e2e-{secrets.token_hex(4)}"

        def factory() -> Any:
            opened.append(RedisStateStore(redis_url, prefix=prefix))
            return opened[-1]

    yield factory
    for store in opened:
        await store.aclose()


def _manager(store: Any) -> SessionManager:
    # Alpha, beta and beta's two children run at once.
    return SessionManager(
        state_store=store, limits=SessionLimits(max_concurrent_tasks=0, max_background_tasks=6)
    )


def _app(planner: ReactPlanner, manager: SessionManager) -> Any:
    return create_app(
        planner=planner,
        manager=manager,
        authenticator=BearerTokenAuthenticator(TOKENS),
        limits=ServerLimits(heartbeat_s=1.0),
    )


def _http(base: str) -> httpx.AsyncClient:
    # No read timeout: an SSE stream is quiet between updates (the heartbeat keeps it alive).
    return httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10.0, read=None))


# -- the scenario ------------------------------------------------------------------------------


async def test_the_issue_scenario_over_sse_and_websocket_survives_a_restart(
    open_store: Callable[[], Any],
) -> None:
    gates = Gates()
    client = RoutedClient()
    store = open_store()
    manager = _manager(store)
    app = _app(_planner(client, gates), manager)
    sse_updates, ws_updates = Updates(), Updates()
    async with serving(app) as base, _http(base) as http:
        # Both clients subscribe before the session has any update: they see all of them.
        sse = SseClient(http, sse_updates)
        await sse.connect()
        ws = WsClient(base, ws_updates)
        await ws.connect()

        # 1. A user message over HTTP starts the foreground turn, which spawns two tasks.
        posted = await http.post(
            f"/sessions/{SID}/messages", json={"query": QUERY}, headers=auth(TOKEN)
        )
        assert posted.status_code == 202, posted.text
        turn_id = posted.json()["task_id"]
        assert await _until_status(http, turn_id, TERMINAL) == "COMPLETE"
        tasks = await _tasks(http)
        by_query = {task["query"]: task for task in tasks.values()}
        alpha, beta = by_query[ALPHA]["task_id"], by_query[BETA]["task_id"]
        assert by_query[ALPHA]["parent_task_id"] == turn_id
        assert by_query[ALPHA]["task_type"] == "BACKGROUND"

        # 2. The clients watch both tasks work: each reaches its gate tool.
        def both_at_gate(updates: Updates) -> Callable[[], bool]:
            def check() -> bool:
                return all(
                    any(u["content"].get("tool_name") == "wait_gate"
                        for u in updates.of(task_id, "TOOL_CALL"))
                    for task_id in (alpha, beta)
                )  # fmt: skip

            return check

        for updates in (sse_updates, ws_updates):
            await updates.until(both_at_gate(updates))
            assert updates.of(alpha, "PROGRESS") and updates.of(beta, "PROGRESS")
        await asyncio.wait_for(gates.entered["alpha"].wait(), 10)
        await asyncio.wait_for(gates.entered["beta"].wait(), 10)

        # Beta gets two children: one cancelled with it, one that keeps running.
        session = await host_of(app).open(ALICE, SID)
        kids = {"cascade": Child(), "isolate": Child()}
        kid_ids: dict[str, str] = {}
        for mode in PROPAGATION:
            kid_ids[mode] = await session.spawn_task(
                kids[mode],
                task_type=TaskType.BACKGROUND,
                parent_task_id=beta,
                propagate_on_cancel=mode,
                query=f"beta's {mode} child",
            )
        for pipeline in kids.values():
            await asyncio.wait_for(pipeline.running.wait(), 10)

        # 3. The SSE client goes away mid-way.
        await sse_updates.until(lambda: all(sse_updates.of(k) for k in kid_ids.values()))
        await sse.disconnect()
        sse_cut = sse.last_id
        assert sse_cut is not None

        # 4. Steer alpha over the WebSocket; the same event id again is refused.
        steer = {
            "type": "steer",
            "task_id": alpha,
            "event_type": "INJECT_CONTEXT",
            "payload": {"text": INJECTED},
            "event_id": "inject-1",
        }
        ack = await ws.request(steer)
        assert ack["type"] == "ack" and ack["accepted"] is True, ack
        again = await ws.request(steer)
        assert again["type"] == "error" and again["error"]["status"] == 409, again
        await ws_updates.until(lambda: ws_updates.has_status(alpha, "STEERING_RECEIVED"))

        # 5. Cancel beta over HTTP: it and its cascade child end CANCELLED, not the isolate one.
        cancelled = await http.post(
            f"/sessions/{SID}/tasks/{beta}/cancel",
            json={"reason": "not needed"},
            headers=auth(TOKEN),
        )
        assert cancelled.status_code == 202 and cancelled.json()["accepted"] is True
        assert await _until_status(http, beta, TERMINAL) == "CANCELLED"
        assert await _until_status(http, kid_ids["cascade"], TERMINAL) == "CANCELLED"
        assert await _task_status(http, kid_ids["isolate"]) == "RUNNING"
        kids["isolate"].finish()
        assert await _until_status(http, kid_ids["isolate"], TERMINAL) == "COMPLETE"
        await ws_updates.until(lambda: ws_updates.has_status(beta, "CANCELLED"))

        # 6. The SSE client comes back with Last-Event-ID while alpha finishes.
        await sse.connect(last_event_id=sse_cut)
        gates.open("alpha")
        assert await _until_status(http, alpha, TERMINAL) == "COMPLETE"

        # Alpha's model saw the injected text on exactly one call, the one after the steer.
        alpha_prompts = client.of("ALPHA")
        assert len(alpha_prompts) == 3, alpha_prompts
        assert [INJECTED in text for text in alpha_prompts] == [False, True, False]

        # 7. Its HUMAN_GATED patch waits for approval; the WebSocket client drops before it.
        def checkpoint(updates: Updates) -> dict[str, Any] | None:
            found = [
                u["content"]
                for u in updates.of(alpha, "CHECKPOINT")
                if u["content"].get("kind") == "context_patch"
            ]
            return found[-1] if found else None

        await ws_updates.until(lambda: checkpoint(ws_updates) is not None)
        patch = checkpoint(ws_updates)
        assert patch is not None and patch["digest"] == [ALPHA_ANSWER]
        await ws.disconnect()
        ws_cut = ws.last_id
        assert alpha not in session.get_background_results()  # not before the approval

        # 8. Approve over HTTP: the patch is merged into the session's context.
        approved = await http.post(
            f"/sessions/{SID}/steer",
            json={
                "task_id": alpha,
                "event_type": "APPROVE",
                "payload": {"patch_id": patch["patch_id"]},
            },
            headers=auth(TOKEN),
        )
        assert approved.status_code == 202 and approved.json()["accepted"] is True
        results = session.get_background_results()
        assert results[alpha].summary == ALPHA_ANSWER
        assert not session.pending_patches

        def context_updated(updates: Updates) -> bool:
            return any(
                u["content"].get("title") == "Context updated"
                for u in updates.of(alpha, "NOTIFICATION")
            )

        await sse_updates.until(lambda: context_updated(sse_updates))

        # 9. The WebSocket client resumes from its cursor and catches up.
        await ws.connect(since_id=ws_cut)
        stored = await _stored_ids(http)
        assert [u.update_id for u in await session.list_updates(limit=None)] == stored
        for updates in (sse_updates, ws_updates):
            await updates.until_id(stored[-1])
            _assert_once_and_in_order(updates.ids, stored)
        # What happened while each client was away came by replay: beta's cancellation to
        # the SSE client, the approval's notification to the WebSocket client.
        sse_missed = sse_updates.items[sse_updates.ids.index(sse_cut) + 1 :]
        assert any(
            u["task_id"] == beta and u["content"].get("status") == "CANCELLED"
            for u in sse_missed
            if u["update_type"] == "STATUS_CHANGE"
        )
        assert ws_cut is not None and context_updated(ws_updates)
        await sse.disconnect()
        await ws.disconnect()
        before_restart = await _tasks(http)

    await manager.aclose()
    await store.aclose()

    # -- a new process: a new store over the same database, a new manager, a new server -------
    client2 = RoutedClient()
    store2 = open_store()
    manager2 = _manager(store2)
    app2 = _app(_planner(client2, Gates()), manager2)
    resumed_sse, resumed_ws = Updates(), Updates()
    async with serving(app2) as base, _http(base) as http:
        # The tasks are there, as they ended.
        after_restart = await _tasks(http)
        assert {t: v["status"] for t, v in after_restart.items()} == {
            t: v["status"] for t, v in before_restart.items()
        }
        assert after_restart[alpha]["result"] == before_restart[alpha]["result"]
        assert after_restart[beta]["error"] == "not needed"
        # Alpha's result and its patch are in the stored history.
        alpha_history = await http.get(
            f"/sessions/{SID}/updates",
            params={"task_id": alpha, "limit": "5000"},
            headers=auth(TOKEN),
        )
        [result] = [
            u
            for u in alpha_history.json()["updates"]
            if u["update_type"] == "RESULT" and u["content"].get("task_patch")
        ]
        assert result["content"]["task_patch"]["digest"] == [ALPHA_ANSWER]

        # The steering history is there too: the event sent before the restart stays unique.
        resent = await http.post(
            f"/sessions/{SID}/steer",
            json={
                "task_id": alpha,
                "event_type": "INJECT_CONTEXT",
                "payload": {"text": "x"},
                "event_id": "inject-1",
            },
            headers=auth(TOKEN),
        )
        assert resent.status_code == 409, resent.text

        # Clients resume from their last cursors: the SSE one from before its first drop.
        sse = SseClient(http, resumed_sse)
        await sse.connect(last_event_id=sse_cut)
        ws = WsClient(base, resumed_ws)
        await ws.connect(since_id=stored[-1])
        await resumed_sse.until_id(stored[-1])  # the replay of what it had not seen

        # ...and then live updates of a new turn, asked for over the WebSocket this time.
        acked = await ws.request({"type": "message", "query": NEXT_TURN})
        assert acked["type"] == "ack", acked
        new_turn = acked["task_id"]
        assert await _until_status(http, new_turn, TERMINAL) == "COMPLETE"
        final = await _stored_ids(http)
        assert final[: len(stored)] == stored  # the history before the restart is intact
        for updates in (resumed_sse, resumed_ws):
            await updates.until_id(final[-1])
        _assert_once_and_in_order(resumed_sse.ids, final[final.index(sse_cut) + 1 :])
        _assert_once_and_in_order(resumed_ws.ids, final[len(stored) :])
        assert resumed_ws.of(new_turn) and not any(
            u["task_id"] != new_turn for u in resumed_ws.items
        )
        await sse.disconnect()
        await ws.disconnect()
    await manager2.aclose()


# -- what a restart loses today ------------------------------------------------------------------


def _patched(task_id: str, digest: str) -> Callable[[Any], Any]:
    async def pipeline(runtime: Any) -> TaskResult:
        return TaskResult(
            payload=digest, context_patch=ContextPatch(task_id=task_id, digest=[digest])
        )

    return pipeline


async def test_the_session_context_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'context.db'}"
    first_store = SQLiteStateStore(url)
    first = StreamingSession("conv", state_store=first_store)
    first.update_context(llm_context={"customer": "acme"})
    for task_id, strategy in (
        ("merged", MergeStrategy.APPEND),
        ("gated", MergeStrategy.HUMAN_GATED),
    ):
        await first.run_task(
            _patched(task_id, f"{task_id} findings"),
            task_id=task_id,
            task_type=TaskType.BACKGROUND,
            merge_strategy=strategy,
        )
    version, pending = first.context_version, list(first.pending_patches)
    await first.close()
    await first_store.aclose()

    second_store = SQLiteStateStore(url)
    second = StreamingSession("conv", state_store=second_store)
    try:
        await second.hydrate()
        assert {t.task_id for t in await second.list_tasks()} == {"merged", "gated"}
        assert second.get_context()[0] == {"customer": "acme"}
        assert second.context_version == version
        assert second.get_background_results()["merged"].summary == "merged findings"
        assert list(second.pending_patches) == pending
    finally:
        await second.close()
        await second_store.aclose()
