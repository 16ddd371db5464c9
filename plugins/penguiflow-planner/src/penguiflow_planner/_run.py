"""A run's own state, and how a paused run is saved and read back.

Nothing of a run lives on the planner, so concurrent runs never share state. A paused run is
saved as plain JSON (any state store keeps it) with the owner it is bound to (`_owners`); the
caller's `tool_context` is saved only when all of it is JSON (PenguiFlow's rule: pass it again
to `resume()` when it holds clients or secrets).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio

from penguiflow.errors import ConfigurationError, UnknownNameError, describe_exception
from penguiflow.memory import MemoryKey

from ._budgets import BudgetUsage, PlannerBudgets
from ._owners import Owner, check_owner, saved_binding
from ._trajectory import Trajectory, json_copy

__all__ = [
    "READABLE_VERSIONS",
    "STATE_VERSION",
    "RunState",
    "paused_state",
    "restore_paused",
    "resumed_run",
    "take_paused",
]

logger = logging.getLogger("penguiflow.planner")

#: version 3 is PenguiFlow's trajectory form (penguiflow-planner 0.2); versions 1 and 2 were
#: the form of the planner's earlier development releases
STATE_VERSION = 3
READABLE_VERSIONS = (3,)


@dataclass
class RunState:
    """Per-run state."""

    trajectory: Trajectory
    usage: BudgetUsage
    memory_key: MemoryKey | None
    #: who may resume a pause of this run (`_owners.bind_owner`), saved with the pause
    owner: dict[str, str] | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: the caller's trace id (`tool_context["trace_id"]`): events and the trajectory are
    #: saved under it when the state store can keep them
    trace_id: str | None = None
    session_id: str | None = None
    #: numbers the model's decisions (PenguiFlow's `action_seq`)
    action_seq: int = 0
    #: the action_seq of the decision that answered
    answer_action_seq: int | None = None
    #: the last thought the model gave
    thought: str = ""
    #: consecutive argument failures per tool (reset by a call that ran)
    arg_failures: dict[str, int] = field(default_factory=dict)
    #: deferred tools activated in this run
    activated: set[str] = field(default_factory=set)
    #: events kept for the state store (`save_planner_event`), flushed when the run ends
    events: list[dict[str, Any]] = field(default_factory=list)
    #: what the run is waiting on, named in the metadata when the deadline interrupts it
    in_flight: str | None = None
    #: a tool was called (its effects cannot be undone by restoring a paused state)
    acted: bool = False
    #: the run committed to an ending of its own: an answer given, or a new pause saved
    settled: bool = False
    #: the run ended because something failed (the model call, the planner), not by a
    #: budget, an answer or the model's unusable replies
    error_ending: bool = False
    #: the memory patch has been merged into the llm_context (once per run)
    memory_loaded: bool = False

    @property
    def restorable(self) -> bool:
        """Whether a resumed run that fails now may give its paused state back to its token:
        only while nothing it did would be done twice by resuming again."""
        return not self.acted and not self.settled

    def next_action_seq(self) -> int:
        self.action_seq += 1
        return self.action_seq


def paused_state(
    run: RunState,
    *,
    reason: str,
    payload: dict[str, Any],
    budgets: PlannerBudgets,
) -> dict[str, Any]:
    """What is saved for a run that pauses now (its trajectory ends with the pausing step)."""
    return {
        "version": STATE_VERSION,
        "trajectory": run.trajectory.serialise(),
        "reason": reason,
        "payload": json_copy(payload) or {},
        "constraints": run.usage.constraints_report(budgets),
        "tool_context": json_copy(run.trajectory.tool_context),
        "usage": run.usage.model_dump(),
        "memory_key": run.memory_key.model_dump() if run.memory_key else None,
        "owner": run.owner,
        "run_id": run.run_id,
        "action_seq": run.action_seq,
        "activated": sorted(run.activated),
    }


def resumed_run(saved: dict[str, Any], *, tool_context: dict[str, Any] | None) -> RunState:
    """The run a paused state describes, bound to the same owner (so a pause of the
    continuation is too). `tool_context` given to `resume()` replaces the saved one."""
    key = saved.get("memory_key")
    trajectory = Trajectory.from_serialised(saved["trajectory"])
    if tool_context is not None:
        trajectory.tool_context = tool_context
    elif saved.get("tool_context") is not None:
        trajectory.tool_context = dict(saved["tool_context"])
    context = trajectory.tool_context or {}
    return RunState(
        trajectory=trajectory,
        usage=BudgetUsage.model_validate(saved["usage"]),
        memory_key=MemoryKey.model_validate(key) if key else None,
        owner=saved_binding(saved),
        run_id=str(saved.get("run_id") or uuid.uuid4().hex),
        trace_id=_text(context.get("trace_id")),
        session_id=_text(context.get("session_id")),
        action_seq=int(saved.get("action_seq", 0)),
        activated=set(saved.get("activated") or ()),
        memory_loaded=True,  # the trajectory's llm_context already holds what memory said
    )


def _text(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


async def take_paused(store: Any, token: str, owner: Owner | None, ref: str) -> dict[str, Any]:
    """Take (consume) the paused state of `token` for `owner`. Raises `UnknownNameError` (a
    `KeyError`, as PenguiFlow raises) for a token unknown or used, `ConfigurationError` for a
    state this version cannot read, `OwnerMismatchError` for anyone but the run's owner: all
    before the token is used up. `ref` names the pause in messages (never the token)."""
    saved = await store.load_planner_state(token)
    if saved is None:
        raise UnknownNameError(
            f"resume token {ref} (a digest; the token is never shown) is unknown or was "
            "already used; tokens are single use"
        )
    if saved.get("version") not in READABLE_VERSIONS:
        raise ConfigurationError(
            f"paused state of version {saved.get('version')} cannot be resumed by this "
            f"version of penguiflow-planner (it reads versions {READABLE_VERSIONS}); it was "
            "paused by a development release before PenguiFlow's API: run it again"
        )
    check_owner(saved, owner, ref)
    # Taken only once the owner matched, so a refused resume leaves the token to its owner.
    # A paused state is never changed in place, so what is taken is what was read.
    taken: dict[str, Any] | None = await store.consume_planner_state(token)
    if taken is None:
        raise UnknownNameError(
            f"resume token {ref} was used by another resume meanwhile; tokens are single use"
        )
    return taken


async def restore_paused(
    store: Any, token: str, state: dict[str, Any], ref: str, grace_s: float
) -> bool:
    """Save a taken paused state back under its token, shielded from cancellation (the
    caller's included) for at most `grace_s`; whether it was saved (a failure is logged)."""
    with anyio.move_on_after(grace_s, shield=True):
        try:
            await store.save_planner_state(token, state)
        except Exception as exc:
            logger.error("could not restore paused run %s: %s", ref, describe_exception(exc))
            return False
        return True
    logger.error("restoring paused run %s took over %ss; it is lost", ref, grace_s)
    return False
