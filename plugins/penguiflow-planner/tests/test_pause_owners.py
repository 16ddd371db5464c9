"""Pause tokens bound to their owner, never in events, and not lost by a failed continuation.

A paused run belongs to the `owner=` given to `run()`, else to its memory key, else to nobody;
only that owner can resume it, and a refusal leaves the token usable. Events name a pause by a
digest (`pause_ref`). A continuation that fails before it calls a tool, answers or pauses
again gives the paused state back to its token.

PenguiFlow 3.11's API: `resume(token, user_input, owner=...)` does not continue the paused
tool; the model plans again and is shown the user's input.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from penguiflow_planner import (
    OwnerMismatchError,
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
)
from penguiflow_planner.memory import ShortTermMemoryConfig
from tools import catalog

from penguiflow.errors import ConfigurationError, PenguiFlowError, UnknownNameError
from penguiflow.llm import LLMError, LLMMessage, ScriptedLLMClient
from penguiflow.memory import MemoryKey
from penguiflow.state.in_memory import InMemoryStateStore

ALICE = MemoryKey(tenant_id="acme", user_id="alice", session_id="s1")
MALLORY = MemoryKey(tenant_id="globex", user_id="mallory", session_id="s9")
SECRET_CONTEXT = {"account": "acme-private-4242"}
APPROVED = "approved"


def act(node: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {node}", "next_node": node, "args": args})


def answer(text: str) -> str:
    return json.dumps({"thought": "done", "next_node": "final_response", "args": {"answer": text}})


def planner(replies: list[Any], store: Any, *, memory: bool = True, **options: Any) -> ReactPlanner:
    """A planner on `store`; with short-term memory (truncation) unless `memory=False`.

    A run's `memory_key` owns its pause with or without memory (see
    test_a_memory_key_binds_the_pause_even_without_short_term_memory)."""
    if memory:
        options.setdefault("short_term_memory", ShortTermMemoryConfig(strategy="truncation"))
    return ReactPlanner(
        llm_client=ScriptedLLMClient(replies), catalog=catalog(), state_store=store, **options
    )


async def paused_refund(store: Any, *, memory: bool = True, **run_options: Any) -> PlannerPause:
    paused = await planner([act("refund", amount=25.0)], store, memory=memory).run(
        "refund order 7", tool_context=SECRET_CONTEXT, **run_options
    )
    assert isinstance(paused, PlannerPause) and paused.reason == "approval_required"
    return paused


def answered(result: Any, text: str) -> None:
    assert isinstance(result, PlannerFinish) and result.ok
    assert result.payload["raw_answer"] == text


async def bounded(awaitable: Any, seconds: float = 10.0) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


# -- owners -----------------------------------------------------------------------------------


async def test_another_tenant_cannot_resume_a_token_and_the_owner_still_can() -> None:
    # Regression: tenant B's planner resumed A's token and got A's context and trajectory.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    token = paused.resume_token
    theirs = planner([answer("stolen")], store)  # another tenant's planner, same store
    for wrong in (MALLORY, None, "acme", ALICE.as_string()):
        with pytest.raises(OwnerMismatchError) as refused:
            await theirs.resume(token, APPROVED, owner=wrong)
        text = str(refused.value)
        assert "does not match" in text or "named no owner" in text
        for leaked in ("acme", "alice", "s1", "acme-private-4242", token):
            assert leaked not in text  # the owner's data and the token stay out of it
        assert paused.ref in text
    assert isinstance(refused.value, PenguiFlowError) and isinstance(refused.value, PermissionError)
    mine = planner([answer("Refund approved.")], store)
    answered(await mine.resume(token, APPROVED, owner=ALICE), "Refund approved.")
    with pytest.raises(UnknownNameError, match="unknown or was already used"):
        await mine.resume(token, APPROVED, owner=ALICE)


async def test_the_memory_key_given_to_resume_is_the_owner_without_owner() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    with pytest.raises(OwnerMismatchError, match="does not match"):
        await planner([], store).resume(paused.resume_token, APPROVED, memory_key=MALLORY)
    result = await planner([answer("done")], store).resume(
        paused.resume_token, APPROVED, memory_key=ALICE
    )
    answered(result, "done")


async def test_an_explicit_owner_binds_the_pause_instead_of_the_memory_key() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE, owner="user-17")
    for wrong in (ALICE, "user-18", None):
        with pytest.raises(OwnerMismatchError):
            await planner([], store).resume(paused.resume_token, APPROVED, owner=wrong)
    result = await planner([answer("done")], store).resume(
        paused.resume_token, APPROVED, owner="user-17"
    )
    answered(result, "done")


async def test_a_run_without_owner_or_key_is_resumed_without_one() -> None:
    # Without memory: a planner with memory gives a run without a key an ephemeral key of
    # its own (PenguiFlow's), which then owns the pause.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory=False)
    with pytest.raises(OwnerMismatchError, match="has no owner"):
        await planner([], store, memory=False).resume(
            paused.resume_token, APPROVED, owner="someone"
        )
    result = await planner([answer("done")], store, memory=False).resume(
        paused.resume_token, APPROVED
    )
    answered(result, "done")


async def test_a_memory_key_binds_the_pause_even_without_short_term_memory() -> None:
    # Regression (tenant isolation): the key given to run() must own the pause whether or not
    # the planner remembers turns.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory=False, memory_key=ALICE)
    with pytest.raises(OwnerMismatchError):
        await planner([answer("stolen")], store, memory=False).resume(paused.resume_token, APPROVED)
    result = await planner([answer("done")], store, memory=False).resume(
        paused.resume_token, APPROVED, owner=ALICE
    )
    answered(result, "done")


async def test_the_saved_owner_is_a_digest_and_a_state_without_one_binds_its_memory_key() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    saved = await store.consume_planner_state(paused.resume_token)
    assert saved is not None and saved["version"] == 3 and saved["owner"]["kind"] == "memory_key"
    assert "alice" not in json.dumps(saved["owner"])  # a digest, not the owner
    del saved["owner"]  # a state that names no owner binding
    await store.save_planner_state("ownerless-token", saved)
    with pytest.raises(OwnerMismatchError):
        await planner([], store).resume("ownerless-token", APPROVED, owner=MALLORY)
    result = await planner([answer("done")], store).resume("ownerless-token", APPROVED, owner=ALICE)
    answered(result, "done")


async def test_a_pause_saved_by_a_development_release_is_refused_and_kept() -> None:
    # States of versions 1 and 2 (before PenguiFlow's API) are not read any more; the refusal
    # says so, and (as for an owner mismatch) does not use the token up.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    saved = await store.consume_planner_state(paused.resume_token)
    assert saved is not None
    del saved["owner"]
    saved["version"] = 1  # as penguiflow-planner 0.1 wrote it
    await store.save_planner_state("old-token", saved)
    with pytest.raises(ConfigurationError, match="paused state of version 1 cannot be resumed"):
        await planner([], store).resume("old-token", APPROVED, owner=ALICE)
    assert await store.load_planner_state("old-token") == saved


async def test_a_continuation_that_pauses_again_stays_bound_to_the_same_owner() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, owner="user-17")
    again = await planner([act("refund", amount=5.0)], store).resume(
        paused.resume_token, APPROVED, owner="user-17"
    )
    assert isinstance(again, PlannerPause) and again.resume_token != paused.resume_token
    with pytest.raises(OwnerMismatchError):
        await planner([], store).resume(again.resume_token, APPROVED)
    result = await planner([answer("done")], store).resume(
        again.resume_token, APPROVED, owner="user-17"
    )
    answered(result, "done")


def test_a_bad_owner_is_refused_before_the_run() -> None:
    from penguiflow.errors import InvalidTypeError

    llm = ScriptedLLMClient([answer("x")])
    plan = ReactPlanner(llm_client=llm, catalog=catalog(), state_store=InMemoryStateStore())
    with pytest.raises(ConfigurationError, match="non-empty"):
        asyncio.run(plan.run("q", owner=""))
    with pytest.raises(InvalidTypeError, match="must be a str or a MemoryKey"):
        asyncio.run(plan.run("q", owner=42))  # type: ignore[arg-type]
    assert llm.calls == []  # refused before the model was asked anything


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
    token = paused.resume_token
    with pytest.raises(OwnerMismatchError):
        await planner([], store, **options()).resume(token, "no", owner=MALLORY)
    result = await planner([answer("ok")], store, **options()).resume(token, APPROVED, owner=ALICE)
    assert isinstance(result, PlannerFinish)
    assert seen and all(token not in repr(event) for event in seen)
    # The callback gets PlannerEvents; a middleware gets FlowEvents named planner_<type>.
    refs = [
        event.extra["pause_ref"]
        for event in seen
        if event.event_type in ("pause", "resume", "planner_pause", "planner_resume")
    ]
    assert len(refs) == 4  # pause and resume, each to the callback and the middleware
    assert set(refs) == {paused.ref}
    kinds = sorted(e.event_type for e in seen if isinstance(e, PlannerEvent))
    assert kinds.count("pause") == 1 and kinds.count("resume") == 1
    assert paused.ref.startswith("pause-") and token not in paused.ref


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
    failed = await planner([failure], store).resume(paused.resume_token, APPROVED, owner=ALICE)
    assert isinstance(failed, PlannerFinish) and failed.reason == "no_path"
    assert failed.finish_reason == "no_path"
    assert failed.metadata["resumable"] is True
    assert str(failure) in failed.metadata["error"]
    llm = ScriptedLLMClient([answer("Refund approved.")])
    retried = await ReactPlanner(llm_client=llm, catalog=catalog(), state_store=store).resume(
        paused.resume_token, APPROVED, owner=ALICE
    )
    answered(retried, "Refund approved.")
    # The retry starts from the pause, with the user's input once, not once per attempt.
    inputs = [m.content for m in llm.calls[0].messages if "answered the pause" in m.content]
    assert inputs == [f"The user answered the pause: {APPROVED}"]


async def test_a_cancelled_continuation_leaves_the_token_usable() -> None:
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    waiting = asyncio.Event()

    async def hang(messages: list[LLMMessage]) -> str:
        waiting.set()
        await asyncio.Event().wait()
        return answer("unreachable")

    task = asyncio.create_task(
        planner([hang], store).resume(paused.resume_token, APPROVED, owner=ALICE)
    )
    await bounded(waiting.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await planner([answer("done")], store).resume(
        paused.resume_token, APPROVED, owner=ALICE
    )
    answered(result, "done")


async def test_a_continuation_that_already_called_a_tool_is_not_restored() -> None:
    # Resuming again would call the tool a second time (a refund paid twice): the paused
    # state stays consumed, and the finish shows what the continuation did.
    store = InMemoryStateStore()
    paused = await paused_refund(store, memory_key=ALICE)
    failed = await planner([act("search", text="receipt"), LLMError("down")], store).resume(
        paused.resume_token, APPROVED, owner=ALICE
    )
    assert isinstance(failed, PlannerFinish) and failed.reason == "no_path"
    assert "resumable" not in failed.metadata
    steps = failed.metadata["steps"]
    # the step that paused, then the continuation's tool call
    assert [s["action"]["next_node"] for s in steps] == ["refund", "search"]
    assert steps[-1]["observation"] == {"titles": ["doc about receipt"]}
    with pytest.raises(UnknownNameError):
        await planner([], store).resume(paused.resume_token, APPROVED, owner=ALICE)
