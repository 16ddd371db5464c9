"""Pause tokens bound to their owner, never in events, and not lost by a failed continuation.

A paused run belongs to the `owner=` given to `run()`, else to its memory key, else to nobody;
only that owner can resume it, and a refusal leaves the token usable. Events name a pause by a
digest (`pause_ref`). A continuation that fails before it calls a tool, answers or pauses
again gives the paused state back to its token.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from penguiflow_planner import (
    OwnerMismatchError,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    Trajectory,
)
from tools import catalog

from penguiflow.errors import PenguiFlowError, UnknownNameError
from penguiflow.llm import LLMError, LLMMessage, ScriptedLLMClient
from penguiflow.memory import MemoryKey
from penguiflow.state.in_memory import InMemoryStateStore

ALICE = MemoryKey(tenant_id="acme", user_id="alice", session_id="s1")
MALLORY = MemoryKey(tenant_id="globex", user_id="mallory", session_id="s9")
SECRET_CONTEXT = {"account": "acme-private-4242"}


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": None, "args": {"answer": text}})


def planner(replies: list[Any], store: Any, **options: Any) -> ReactPlanner:
    return ReactPlanner(ScriptedLLMClient(replies), catalog(), state_store=store, **options)


async def paused_refund(store: Any, **run_options: Any) -> PlannerPause:
    paused = await planner([act("refund", amount=25.0)], store).run(
        "refund order 7", context=SECRET_CONTEXT, **run_options
    )
    assert isinstance(paused, PlannerPause)
    return paused


async def bounded(awaitable: Any, seconds: float = 10.0) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


# -- owners -----------------------------------------------------------------------------------


async def test_another_tenant_cannot_resume_a_token_and_the_owner_still_can() -> None:
    # Regression: tenant B's planner resumed A's token and got A's context and trajectory.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    theirs = planner([answer("stolen")], store)  # another tenant's planner, same store
    for wrong in (MALLORY, None, "acme", ALICE.as_string()):
        with pytest.raises(OwnerMismatchError) as refused:
            await theirs.resume(paused.token, {"approved": True}, owner=wrong)
        text = str(refused.value)
        assert "does not match" in text or "named no owner" in text
        for leaked in ("acme", "alice", "s1", "acme-private-4242", paused.token):
            assert leaked not in text  # the owner's data and the token stay out of it
        assert paused.ref in text
    assert isinstance(refused.value, PenguiFlowError) and isinstance(refused.value, PermissionError)
    mine = planner([answer("Refund approved.")], store)
    result = await mine.resume(paused.token, {"approved": True}, owner=ALICE)
    assert isinstance(result, PlannerFinish) and result.payload == "Refund approved."
    with pytest.raises(UnknownNameError, match="unknown or was already used"):
        await mine.resume(paused.token, {"approved": True}, owner=ALICE)


async def test_an_explicit_owner_binds_the_pause_instead_of_the_memory_key() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE, owner="user-17")
    for wrong in (ALICE, "user-18", None):
        with pytest.raises(OwnerMismatchError):
            await planner([], store).resume(paused.token, {"approved": True}, owner=wrong)
    result = await planner([answer("done")], store).resume(
        paused.token, {"approved": True}, owner="user-17"
    )
    assert isinstance(result, PlannerFinish) and result.ok


async def test_a_run_without_owner_or_key_is_resumed_without_one() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store)
    with pytest.raises(OwnerMismatchError, match="has no owner"):
        await planner([], store).resume(paused.token, {"approved": True}, owner="someone")
    result = await planner([answer("done")], store).resume(paused.token, {"approved": True})
    assert isinstance(result, PlannerFinish) and result.ok


async def test_a_pause_saved_before_owners_existed_is_bound_to_its_memory_key() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    saved = await store.consume_planner_state(paused.token)
    assert saved is not None and saved["version"] == 2 and saved["owner"]["kind"] == "memory_key"
    assert "alice" not in json.dumps(saved["owner"])  # a digest, not the owner
    del saved["owner"]
    saved["version"] = 1  # as penguiflow-planner 0.1 wrote it
    await store.save_planner_state("old-token", saved)
    with pytest.raises(OwnerMismatchError):
        await planner([], store).resume("old-token", {"approved": True}, owner=MALLORY)
    result = await planner([answer("done")], store).resume(
        "old-token", {"approved": True}, owner=ALICE
    )
    assert isinstance(result, PlannerFinish) and result.ok


async def test_a_continuation_that_pauses_again_stays_bound_to_the_same_owner() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, owner="user-17")
    again = await planner([act("refund", amount=5.0)], store).resume(
        paused.token, {"approved": True}, owner="user-17"
    )
    assert isinstance(again, PlannerPause) and again.token != paused.token
    with pytest.raises(OwnerMismatchError):
        await planner([], store).resume(again.token, {"approved": True})
    result = await planner([answer("done")], store).resume(
        again.token, {"approved": True}, owner="user-17"
    )
    assert isinstance(result, PlannerFinish) and result.ok


def test_a_bad_owner_is_refused_before_the_run() -> None:
    from penguiflow.errors import ConfigurationError, InvalidTypeError

    plan = planner([answer("x")], InMemoryStateStore())
    with pytest.raises(ConfigurationError, match="non-empty"):
        asyncio.run(plan.run("q", owner=""))
    with pytest.raises(InvalidTypeError, match="must be a str or a MemoryKey"):
        asyncio.run(plan.run("q", owner=42))  # type: ignore[arg-type]


# -- tokens never in events -------------------------------------------------------------------


async def test_tokens_never_reach_events_only_their_digest() -> None:
    # Regression: pause and resume events carried {"token": token} to every sink and log.
    store = InMemoryStateStore()
    seen: list[Any] = []

    async def middleware(event: Any) -> None:
        seen.append(event)

    def options() -> dict[str, Any]:
        return {"event_callback": seen.append, "middlewares": [middleware]}

    paused = await planner([act("refund", amount=25.0)], store, **options()).run(
        "refund", memory_key=ALICE
    )
    assert isinstance(paused, PlannerPause)
    with pytest.raises(OwnerMismatchError):
        await planner([], store, **options()).resume(paused.token, {}, owner=MALLORY)
    result = await planner([answer("ok")], store, **options()).resume(
        paused.token, {"approved": True}, owner=ALICE
    )
    assert isinstance(result, PlannerFinish)
    assert all(paused.token not in repr(event) for event in seen)
    refs = [
        getattr(event, "data", None) or getattr(event, "extra", {})
        for event in seen
        if "pause" in str(getattr(event, "kind", getattr(event, "event_type", "")))
        or "resume" in str(getattr(event, "kind", getattr(event, "event_type", "")))
    ]
    assert len(refs) == 4  # pause and resume, each to the callback and the middleware
    assert {ref["pause_ref"] for ref in refs} == {paused.ref}
    assert paused.ref.startswith("pause-") and paused.token not in paused.ref


# -- a failed continuation keeps the paused run -----------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [LLMError("the provider is down"), RuntimeError("a bug in the client")],
    ids=["LLMError", "not an LLMError"],
)
async def test_a_continuation_whose_model_call_raises_leaves_the_token_usable(
    failure: BaseException,
) -> None:
    # Regression: the token was consumed before the continuation, so this lost the run.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    failed = await planner([failure], store).resume(paused.token, {"approved": True}, owner=ALICE)
    assert isinstance(failed, PlannerFinish) and failed.reason == "no_path"
    assert failed.metadata["resumable"] is True
    assert str(failure) in failed.metadata["error"]
    llm = ScriptedLLMClient([answer("Refund approved.")])
    retried = await ReactPlanner(llm, catalog(), state_store=store).resume(
        paused.token, {"approved": True}, owner=ALICE
    )
    assert isinstance(retried, PlannerFinish) and retried.payload == "Refund approved."
    # The retry starts from the pause, with one decision, not one per attempt.
    decisions = [m.content for m in llm.calls[0].messages if m.content.startswith("Human")]
    assert decisions == ['Human decision: {"approved": true}']


async def test_a_cancelled_continuation_leaves_the_token_usable() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    waiting = asyncio.Event()

    async def hang(messages: list[LLMMessage]) -> str:
        waiting.set()
        await asyncio.Event().wait()
        return answer("unreachable")

    task = asyncio.create_task(
        planner([hang], store).resume(paused.token, {"approved": True}, owner=ALICE)
    )
    await bounded(waiting.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await planner([answer("done")], store).resume(
        paused.token, {"approved": True}, owner=ALICE
    )
    assert isinstance(result, PlannerFinish) and result.ok


async def test_a_continuation_that_already_called_a_tool_is_not_restored() -> None:
    # Resuming again would call the tool a second time (a refund paid twice): the paused
    # state stays consumed, and the finish shows what the continuation did.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    failed = await planner([act("search", text="receipt"), LLMError("down")], store).resume(
        paused.token, {"approved": True}, owner=ALICE
    )
    assert isinstance(failed, PlannerFinish) and failed.reason == "no_path"
    assert "resumable" not in failed.metadata
    steps = Trajectory.model_validate(failed.metadata["trajectory"]).steps
    assert [s.kind for s in steps][-2:] == ["resume", "tool"]
    with pytest.raises(UnknownNameError):
        await planner([], store).resume(paused.token, {"approved": True}, owner=ALICE)
