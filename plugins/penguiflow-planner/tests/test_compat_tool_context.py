"""The `ctx` a planner tool receives, written from PenguiFlow 3.11's public API: its views of
the caller's contexts, pause, streaming, artifacts, and the session KV on real state stores
(in memory and SQLite)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from penguiflow_planner._executor import PauseRequested
from penguiflow_planner._key_locks import held_keys
from penguiflow_planner._kv import PlannerSessionKV
from penguiflow_planner.artifacts import (
    ArtifactScope,
    InMemoryArtifactStore,
    NoOpArtifactStore,
    ScopedArtifacts,
)
from penguiflow_planner.context import (
    AnyContext,
    InvalidPauseReasonError,
    KVScope,
    PauseUnavailableError,
    PlannerPauseReason,
    PlannerToolContext,
    SessionKV,
    SessionKVConfig,
    SessionKVError,
    SessionKVValueError,
    StreamChunkError,
    ToolContext,
)
from pydantic import BaseModel

from penguiflow.core import Context
from penguiflow.errors import PenguiFlowError
from penguiflow.memory import MemoryKey
from penguiflow.plugins import resolve_driver
from penguiflow.resources import aclose_resource
from penguiflow.state.in_memory import InMemoryStateStore
from penguiflow.testing import run_async

OWNER = {"tenant_id": "acme", "user_id": "ada", "session_id": "s1", "task_id": "job-1"}


class Recorder:
    """The loop's `emit`: records (event_type, extra, node_name)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], str | None]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.events.append((event_type, dict(extra), node_name))

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [extra for kind, extra, _ in self.events if kind == event_type]


def make_ctx(
    emit: Recorder | None = None,
    *,
    tool_context: dict[str, Any] | None = None,
    llm_context: Mapping[str, Any] | None = None,
    state_store: Any | None = None,
    artifact_store: Any | None = None,
    memory_key: MemoryKey | None = None,
    tool_name: str = "lookup",
    tool_call_id: str = "call-1",
    pause_enabled: bool = True,
    clock: list[float] | None = None,
    kv_config: SessionKVConfig | None = None,
) -> PlannerToolContext:
    ticks = clock if clock is not None else [100.0]
    return PlannerToolContext(
        llm_context=llm_context if llm_context is not None else {"lang": "en"},
        tool_context=tool_context if tool_context is not None else dict(OWNER),
        tool_name=tool_name,
        tool_call_id=tool_call_id,
        emit=emit or Recorder(),
        state_store=state_store,
        artifact_store=artifact_store,
        memory_key=memory_key,
        trace_id="trace-9",
        pause_enabled=pause_enabled,
        time_source=lambda: ticks[0],
        kv_config=kv_config,
    )


class SwitchingStore(InMemoryStateStore):
    """In memory, but lets other tasks run between a read and what follows, as a networked
    store does (the plain in-memory store never does, so it cannot show a lost update)."""

    async def load_memory_state(self, key: str) -> dict[str, Any] | None:
        state = await super().load_memory_state(key)
        await anyio.lowlevel.checkpoint()
        return state


@pytest.fixture(params=["memory", "switching", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        made: Any = InMemoryStateStore()
    elif request.param == "switching":
        made = SwitchingStore()
    else:
        made = resolve_driver("state_store", f"sqlite:///{tmp_path}/s.db")
    yield made
    await aclose_resource(made)


# -- the contexts -------------------------------------------------------------------------------


def test_public_names_are_penguiflows() -> None:
    assert set(PlannerPauseReason.__args__) == {  # type: ignore[attr-defined]
        "approval_required",
        "await_input",
        "external_event",
        "constraints_conflict",
    }
    assert set(KVScope.__args__) == {"session", "task"}  # type: ignore[attr-defined]
    assert AnyContext == ToolContext | Context
    # As in PenguiFlow, the protocols are for annotations, not isinstance checks.
    with pytest.raises(TypeError):
        isinstance(make_ctx(), ToolContext)
    with pytest.raises(TypeError):
        isinstance(make_ctx().kv, SessionKV)


async def test_llm_context_is_a_read_only_copy_even_when_nested() -> None:
    shown = {"lang": "en", "prefs": {"units": "metric"}, "tags": ["a"]}
    ctx = make_ctx(llm_context=shown)
    assert dict(ctx.llm_context) == shown
    with pytest.raises(TypeError):
        ctx.llm_context["lang"] = "fr"  # type: ignore[index]
    # Nested values are the context's own copies: the model's context cannot change.
    ctx.llm_context["prefs"]["units"] = "imperial"
    ctx.llm_context["tags"].append("b")
    assert shown == {"lang": "en", "prefs": {"units": "metric"}, "tags": ["a"]}


async def test_tool_context_is_this_calls_copy_with_the_current_tool() -> None:
    client = object()
    caller = {**OWNER, "http": client}
    first = make_ctx(tool_context=caller, tool_name="search", tool_call_id="c1")
    second = make_ctx(tool_context=caller, tool_name="fetch", tool_call_id="c2")
    assert first.tool_context["http"] is client  # the caller's objects, not copies of them
    assert first.tool_context["_current_tool_name"] == "search"
    assert first.tool_context["_current_tool_call_id"] == "c1"
    assert second.tool_context["_current_tool_name"] == "fetch"
    first.tool_context["scratch"] = 1
    assert "scratch" not in caller and "scratch" not in second.tool_context
    assert "_current_tool_name" not in caller


async def test_repr_never_shows_tool_context() -> None:
    ctx = make_ctx(tool_context={**OWNER, "api_token": "sk-live-123"})
    assert "sk-live-123" not in repr(ctx)
    assert "sk-live-123" not in repr(ctx.kv)
    assert "lookup" in repr(ctx)


async def test_meta_is_deprecated_and_combines_tool_over_llm_context() -> None:
    ctx = make_ctx(
        tool_context={**OWNER, "lang": "tool-wins"}, llm_context={"lang": "en", "tz": "UTC"}
    )
    with pytest.warns(DeprecationWarning, match="ctx.meta is deprecated"):
        meta = ctx.meta
    assert meta["lang"] == "tool-wins" and meta["tz"] == "UTC"
    assert meta["_current_tool_name"] == "lookup"
    meta["written"] = 1
    assert ctx.tool_context["written"] == 1 and "written" not in ctx.llm_context
    ctx.meta  # noqa: B018 - warns once per context (filterwarnings=error would fail here)


# -- pause ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason", ["approval_required", "await_input", "external_event", "constraints_conflict"]
)
async def test_pause_raises_pause_requested(reason: PlannerPauseReason) -> None:
    with pytest.raises(PauseRequested) as caught:
        await make_ctx().pause(reason, {"what": "delete 3 rows"})
    assert caught.value.reason == reason
    assert caught.value.payload == {"what": "delete 3 rows"}
    with pytest.raises(PauseRequested) as bare:
        await make_ctx().pause(reason)
    assert bare.value.payload == {}


async def test_pause_refuses_an_unknown_reason_naming_the_four() -> None:
    with pytest.raises(InvalidPauseReasonError) as caught:
        await make_ctx().pause("approve_please")  # type: ignore[arg-type]
    message = str(caught.value)
    assert "approve_please" in message
    for reason in ("approval_required", "await_input", "external_event", "constraints_conflict"):
        assert reason in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, PenguiFlowError)
    with pytest.raises(InvalidPauseReasonError, match="mapping"):
        await make_ctx().pause("await_input", ["not", "a", "mapping"])  # type: ignore[arg-type]


async def test_pause_disabled_fails_the_tool_as_penguiflow_does() -> None:
    with pytest.raises(PauseUnavailableError, match="pause_enabled=True") as caught:
        await make_ctx(pause_enabled=False).pause("approval_required")
    # PenguiFlow raises RuntimeError here: code catching that keeps working.
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, PenguiFlowError)
    assert not isinstance(caught.value, PauseRequested)


# -- streaming -----------------------------------------------------------------------------------


async def test_emit_chunk_publishes_penguiflows_event_and_records_the_stream() -> None:
    emit = Recorder()
    clock = [5.0]
    ctx = make_ctx(emit, clock=clock)
    await ctx.emit_chunk("answer", 0, "Hel")
    clock[0] = 6.0
    await ctx.emit_chunk("answer", 3, "lo", done=True, meta={"channel": "answer", "k": 1})
    assert emit.events == [
        (
            "stream_chunk",
            {
                "stream_id": "answer",
                "seq": 0,
                "text": "Hel",
                "done": False,
                "meta": {"channel": "thinking"},
            },
            "lookup",
        ),
        (
            "stream_chunk",
            {
                "stream_id": "answer",
                "seq": 3,
                "text": "lo",
                "done": True,
                "meta": {"channel": "answer", "k": 1},
            },
            "lookup",
        ),
    ]
    assert ctx.streams == {
        "answer": [
            {"seq": 0, "text": "Hel", "done": False, "meta": {"channel": "thinking"}, "ts": 5.0},
            {
                "seq": 3,
                "text": "lo",
                "done": True,
                "meta": {"channel": "answer", "k": 1},
                "ts": 6.0,
            },
        ]
    }
    ctx.streams["answer"].clear()  # a copy: the record is not changed through it
    assert len(ctx.streams["answer"]) == 2


@pytest.mark.parametrize("bad_seq", [0, -1, 1, True, 2.0, "3"])
async def test_emit_chunk_rejects_a_seq_that_does_not_increase(bad_seq: Any) -> None:
    emit = Recorder()
    ctx = make_ctx(emit)
    await ctx.emit_chunk("s", 1, "a")
    with pytest.raises(StreamChunkError, match="seq"):
        await ctx.emit_chunk("s", bad_seq, "b")
    assert len(emit.events) == 1 and len(ctx.streams["s"]) == 1
    await ctx.emit_chunk("s", 2, "c")  # the stream goes on after a refused chunk
    await ctx.emit_chunk("other", 0, "independent numbering")


async def test_nothing_follows_a_done_chunk() -> None:
    ctx = make_ctx()
    await ctx.emit_chunk("s", 0, "all", done=True)
    with pytest.raises(StreamChunkError, match="already ended"):
        await ctx.emit_chunk("s", 1, "more")
    await ctx.emit_artifact("a", {"x": 1}, done=True)
    with pytest.raises(StreamChunkError, match="already ended"):
        await ctx.emit_artifact("a", {"x": 2})
    with pytest.raises(StreamChunkError, match="stream_id"):
        await ctx.emit_chunk("", 0, "x")
    with pytest.raises(StreamChunkError, match="text must be a str"):
        await ctx.emit_chunk("t", 0, b"bytes")  # type: ignore[arg-type]


class Chart(BaseModel):
    kind: str
    points: list[int]


async def test_emit_artifact_numbers_chunks_and_makes_them_json() -> None:
    emit = Recorder()
    ctx = make_ctx(emit)
    await ctx.emit_artifact("chart", {"title": "sales"})
    await ctx.emit_artifact("chart", Chart(kind="bar", points=[1, 2]), artifact_type="vega")
    await ctx.emit_artifact("chart", {1, 2}, done=True, meta={"final": True})
    await ctx.emit_chunk("chart", 0, "text shares the stream id, numbered on its own")
    chunks = emit.of("artifact_chunk")
    assert [c["seq"] for c in chunks] == [0, 1, 2]
    assert chunks[0] == {
        "stream_id": "chart",
        "seq": 0,
        "chunk": {"title": "sales"},
        "done": False,
        "artifact_type": "dict",
        "meta": {},
    }
    assert chunks[1]["chunk"] == {"kind": "bar", "points": [1, 2]}
    assert chunks[1]["artifact_type"] == "vega"
    assert isinstance(chunks[2]["chunk"], str) and chunks[2]["artifact_type"] == "set"
    assert chunks[2]["done"] is True and chunks[2]["meta"] == {"final": True}
    recorded = ctx.streams["chart"]
    assert [entry.get("artifact_type") for entry in recorded] == ["dict", "vega", "set", None]
    assert recorded[-1]["text"].startswith("text shares")


# -- artifacts through the context ---------------------------------------------------------------


async def test_ctx_artifacts_are_scoped_to_the_caller_and_announced() -> None:
    emit = Recorder()
    store = InMemoryArtifactStore()
    ctx = make_ctx(emit, artifact_store=store, tool_name="report")
    assert isinstance(ctx.artifacts, ScopedArtifacts)
    ref = await ctx.artifacts.upload(b"%PDF-1.7", mime_type="application/pdf", filename="r.pdf")
    assert ref.scope == ArtifactScope(
        tenant_id="acme", user_id="ada", session_id="s1", trace_id="trace-9"
    )
    assert await ctx.artifacts.download(ref.id) == b"%PDF-1.7"
    assert [r.id for r in await ctx.artifacts.list()] == [ref.id]
    assert emit.events == [
        (
            "artifact_stored",
            {
                "artifact_id": ref.id,
                "mime_type": "application/pdf",
                "size_bytes": 8,
                "artifact_filename": "r.pdf",
                "source": {"namespace": None},
            },
            "report",
        )
    ]
    assert ctx.stored_artifacts == [ref]
    # Another session's tool cannot read it; an unscoped raw write gets the context's scope.
    other = make_ctx(artifact_store=store, tool_context={**OWNER, "session_id": "s2"})
    assert await other.artifacts.download(ref.id) is None
    raw = await ctx._artifacts.put_text("notes")
    assert raw.scope is not None and raw.scope.session_id == "s1"


async def test_memory_key_is_the_owner_before_tool_context() -> None:
    key = MemoryKey(tenant_id="t2", user_id="u2", session_id="s9")
    ctx = make_ctx(memory_key=key, artifact_store=InMemoryArtifactStore())
    ref = await ctx.artifacts.upload("hello")
    assert ref.scope is not None
    assert (ref.scope.tenant_id, ref.scope.user_id, ref.scope.session_id) == ("t2", "u2", "s9")
    assert ref.mime_type == "text/plain"


async def test_without_an_artifact_store_uploads_are_not_kept() -> None:
    ctx = make_ctx()
    inner = ctx._artifacts.inner  # type: ignore[attr-defined]
    assert isinstance(inner, NoOpArtifactStore)
    # One no-op store for every such call, so its warning is logged once, not per call.
    assert make_ctx()._artifacts.inner is inner  # type: ignore[attr-defined]
    ref = await ctx.artifacts.upload("x" * 600)
    assert ref.source["truncated"] is True and len(ref.source["preview"]) < 600
    assert await ctx.artifacts.download(ref.id) is None


# -- session KV ----------------------------------------------------------------------------------


async def test_kv_round_trip_and_events(store: Any) -> None:
    emit = Recorder()
    kv = make_ctx(emit, state_store=store, tool_name="prefs", tool_call_id="c7").kv
    assert await kv.get("theme") is None
    assert await kv.set("theme", {"mode": "dark"}) == {"mode": "dark"}
    assert await kv.get("theme") == {"mode": "dark"}
    assert await kv.patch("theme", {"size": 12}) == {"mode": "dark", "size": 12}
    assert await kv.get_or_init("visits", 0) == 0
    assert await kv.get_or_init("visits", 5) == 0  # already there: no init
    assert await kv.set("visits", (1, 2)) == [1, 2]  # as JSON keeps it
    nested = {"chart": Chart(kind="bar", points=[1]), 3: None}
    assert await kv.set("chart", nested, emit_update=False) == {
        "chart": {"kind": "bar", "points": [1]},
        "3": None,
    }
    assert await kv.delete("theme") is True
    assert await kv.delete("theme") is False
    assert await kv.get("theme") is None
    assert await kv.patch("theme", {"fresh": True}) == {"fresh": True}  # from {} after delete

    assert [kind for kind, _, _ in emit.events] == [
        "kv_set",
        "kv_patch",
        "kv_init",
        "kv_set",
        "kv_delete",
        "kv_patch",
    ]
    first = emit.of("kv_set")[0]
    assert set(first) == {
        "kind",
        "scope",
        "namespace",
        "key",
        "composite_key",
        "prev",
        "next",
        "prev_etag_seen",
        "next_etag_written",
        "expires_at",
        "actor",
        "context",
    }
    assert first["kind"] == "kv_set" and first["scope"] == "session"
    assert first["namespace"] == "tool:prefs" and first["key"] == "theme"
    assert first["prev"] is None and first["next"]["inline"] == {"mode": "dark"}
    assert first["actor"] == {
        "tenant_id": "acme",
        "user_id": "ada",
        "session_id": "s1",
        "task_id": "job-1",
        "trace_id": "trace-9",
        "tool_name": "prefs",
        "tool_call_id": "c7",
    }
    patched = emit.of("kv_patch")[0]
    assert patched["prev_etag_seen"] == first["next_etag_written"]
    deleted = emit.of("kv_delete")[0]
    assert deleted["prev"]["inline"] == {"mode": "dark", "size": 12} and deleted["next"] is None
    assert all(node == "prefs" for _, _, node in emit.events)


async def test_kv_emit_update_false_publishes_nothing(store: Any) -> None:
    emit = Recorder()
    kv = make_ctx(emit, state_store=store).kv
    await kv.set("a", 1, emit_update=False)
    await kv.patch("b", {"x": 1}, emit_update=False)
    await kv.get_or_init("c", 1, emit_update=False)
    await kv.delete("a", emit_update=False)
    assert emit.events == []


async def test_kv_redacts_secret_looking_keys_in_storage_and_events(store: Any) -> None:
    emit = Recorder()
    kv = make_ctx(emit, state_store=store).kv
    value = {
        "user": "ada",
        "API-Key": "sk-1",
        "nested": [{"password": "hunter2", "ok": 1}],
        "Token": "t",
    }
    stored = await kv.set("creds", value)
    assert stored == {
        "user": "ada",
        "API-Key": "<redacted>",
        "nested": [{"password": "<redacted>", "ok": 1}],
        "Token": "<redacted>",
    }
    assert await kv.get("creds") == stored
    patched = await kv.patch("creds", {"client_secret": "shh", "note": "n"})
    assert patched["client_secret"] == "<redacted>" and patched["note"] == "n"
    published = json.dumps([extra for _, extra, _ in emit.events])
    for secret in ("sk-1", "hunter2", "shh"):
        assert secret not in published


async def test_kv_namespaces_default_to_the_tool(store: Any) -> None:
    one = make_ctx(state_store=store, tool_name="a").kv
    two = make_ctx(state_store=store, tool_name="b").kv
    await one.set("k", "from a")
    await two.set("k", "from b")
    assert await one.get("k") == "from a" and await two.get("k") == "from b"
    await one.set("k", "shared", namespace="team")
    assert await two.get("k", namespace="team") == "shared"
    assert await two.get("k", namespace="tool:a") == "from a"


async def test_kv_task_scope_is_per_task_and_expires(store: Any) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]

    def kv_for(task: str | None, ttl: float = 3600.0) -> PlannerSessionKV:
        context = {**OWNER, "_current_tool_name": "t"}
        if task is None:
            context.pop("task_id")
        else:
            context["task_id"] = task
        return PlannerSessionKV(
            state_store=store,
            artifacts=None,
            tool_context=context,
            memory_key=None,
            trace_id="run-1",
            emit=Recorder(),
            config=SessionKVConfig(task_ttl_s=ttl),
            clock=lambda: now[0],
        )

    one, two = kv_for("job-1"), kv_for("job-2")
    await one.set("step", 3, scope="task")
    assert await one.get("step", scope="task") == 3
    assert await two.get("step", scope="task") is None  # another task
    assert await one.get("step") is None  # the session scope is separate
    now[0] += timedelta(seconds=3599)
    assert await one.get("step", scope="task") == 3
    now[0] += timedelta(seconds=1)
    assert await one.get("step", scope="task") is None
    assert await one.get_or_init("step", 0, scope="task") == 0
    # Without a task id the run's trace is the task.
    traced = kv_for(None)
    await traced.set("x", 1, scope="task")
    assert await kv_for("run-1").get("x", scope="task") == 1


async def test_kv_errors_say_what_to_configure() -> None:
    with pytest.raises(SessionKVError, match="state_store="):
        await make_ctx().kv.get("k")
    with pytest.raises(SessionKVError, match="save_memory_state"):
        await make_ctx(state_store=object()).kv.set("k", 1)
    no_session = make_ctx(
        state_store=InMemoryStateStore(), tool_context={"tenant_id": "acme", "user_id": " "}
    )
    with pytest.raises(SessionKVError) as caught:
        await no_session.kv.set("k", 1)
    assert "memory_key=" in str(caught.value)
    assert "user_id, session_id" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)  # PenguiFlow's errors here are RuntimeErrors
    with_key = make_ctx(
        state_store=InMemoryStateStore(),
        tool_context={},
        memory_key=MemoryKey(tenant_id="t", user_id="u", session_id="s"),
    )
    assert await with_key.kv.set("k", 1) == 1


async def test_kv_refuses_unusable_arguments() -> None:
    kv = make_ctx(state_store=InMemoryStateStore()).kv
    for bad_key in ("", "   "):
        with pytest.raises(SessionKVValueError, match="non-empty"):
            await kv.set(bad_key, 1)
    with pytest.raises(SessionKVValueError, match="'session' or 'task'"):
        await kv.get("k", scope="tenant")  # type: ignore[arg-type]
    for value in (object(), float("nan"), {"when": datetime.now(UTC)}):
        with pytest.raises(SessionKVValueError, match="not JSON"):
            await kv.set("k", value)
    await kv.set("list", [1])
    with pytest.raises(SessionKVValueError, match="holds a list"):
        await kv.patch("list", {"a": 1})
    with pytest.raises(SessionKVValueError, match="mapping"):
        await kv.patch("k", [("a", 1)])  # type: ignore[arg-type]
    assert isinstance(SessionKVValueError("x"), ValueError)


async def test_kv_large_values_go_to_the_artifact_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emit = Recorder()
    artifacts = InMemoryArtifactStore()
    state = InMemoryStateStore()
    ctx = make_ctx(
        emit,
        state_store=state,
        artifact_store=artifacts,
        kv_config=SessionKVConfig(max_inline_bytes=64),
    )
    big = {"rows": list(range(100))}
    assert await ctx.kv.set("big", big) == big
    assert artifacts.count == 1
    assert await ctx.kv.get("big") == big
    event = emit.of("kv_set")[0]
    assert (
        "inline" not in event["next"] and event["next"]["artifact_ref"]["namespace"] == "session_kv"
    )
    assert emit.of("artifact_stored")
    # Without a real artifact store the value stays inline rather than being dropped.
    plain = make_ctx(state_store=state, kv_config=SessionKVConfig(max_inline_bytes=64))
    assert await plain.kv.set("big2", big) == big and await plain.kv.get("big2") == big
    # An artifact that has gone reads as missing, with a warning.
    artifacts.clear()
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        assert await ctx.kv.get("big") is None
    assert "gone or changed" in caplog.text


async def test_kv_survives_reopening_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kv.db"
    first = resolve_driver("state_store", url)
    await make_ctx(state_store=first).kv.set("cart", {"items": 2})
    await aclose_resource(first)
    second = resolve_driver("state_store", url)
    try:
        assert await make_ctx(state_store=second).kv.get("cart") == {"items": 2}
    finally:
        await aclose_resource(second)


async def test_kv_records_never_share_a_key_with_memory() -> None:
    store = InMemoryStateStore()
    key = MemoryKey(tenant_id="acme", user_id="ada", session_id="s1")
    await store.save_memory_state(key.as_string(), {"turns": ["memory"]})
    emit = Recorder()
    kv = make_ctx(emit, state_store=store).kv
    await kv.set("turns", "kv")
    composite = emit.of("kv_set")[0]["composite_key"]
    assert composite.startswith("kv2:") and composite != key.as_string()
    assert "/" not in composite
    assert await store.load_memory_state(key.as_string()) == {"turns": ["memory"]}


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("a:b", "c", "s"), ("a", "b:c", "s")),
        (("a%3Ab", "c", "s"), ("a:b", "c", "s")),
        (("a", "b", "s:session:x"), ("a", "b", "s")),
    ],
)
async def test_kv_owners_that_look_alike_do_not_collide(
    left: tuple[str, str, str], right: tuple[str, str, str]
) -> None:
    store = InMemoryStateStore()

    def kv(owner: tuple[str, str, str]) -> Any:
        context = dict(zip(("tenant_id", "user_id", "session_id"), owner, strict=True))
        return make_ctx(state_store=store, tool_context=context).kv

    await kv(left).set("k", "left", namespace="x")
    assert await kv(right).get("k", namespace="x") is None
    assert await kv(right).get("x:k") is None


_ids = st.text(alphabet=st.sampled_from("ab:%/~* -_"), min_size=1, max_size=6).filter(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.tuples(_ids, _ids, _ids),
    second=st.tuples(_ids, _ids, _ids),
    key=_ids,
    namespace=st.one_of(st.none(), _ids),
)
def test_distinct_sessions_never_see_each_others_keys(
    first: tuple[str, str, str],
    second: tuple[str, str, str],
    key: str,
    namespace: str | None,
) -> None:
    def strip(owner: tuple[str, str, str]) -> tuple[str, ...]:
        return tuple(part.strip() for part in owner)

    if strip(first) == strip(second):
        return

    async def scenario() -> None:
        store = InMemoryStateStore()

        def kv(owner: tuple[str, str, str]) -> Any:
            context = dict(zip(("tenant_id", "user_id", "session_id"), owner, strict=True))
            return make_ctx(state_store=store, tool_context=context).kv

        await kv(first).set(key, "mine", namespace=namespace)
        assert await kv(second).get(key, namespace=namespace) is None
        assert await kv(second).get_or_init(key, "theirs", namespace=namespace) == "theirs"
        assert await kv(first).get(key, namespace=namespace) == "mine"

    run_async(scenario)


async def test_concurrent_patches_lose_no_update(store: Any) -> None:
    # Each patch is its own tool call (its own context), as parallel steps would be.
    async def add(n: int) -> None:
        ctx = make_ctx(state_store=store, tool_name="counter", tool_call_id=f"c{n}")
        await ctx.kv.patch("seen", {f"k{n}": n})

    await asyncio.gather(*(add(n) for n in range(40)))
    final = await make_ctx(state_store=store, tool_name="counter").kv.get("seen")
    assert final == {f"k{n}": n for n in range(40)}
    assert held_keys() == 0  # every key's lock was released and forgotten
