"""A run's own state, and how a paused run is saved and read back.

Nothing of a run lives on the planner, so concurrent runs never share state. A paused run is
saved as plain JSON (any state store keeps it) with the owner it is bound to (`_owners`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio

from penguiflow.errors import ConfigurationError, UnknownNameError, describe_exception
from penguiflow.llm import LLMMessage
from penguiflow.memory import MemoryKey

from ._budgets import BudgetUsage
from ._owners import Owner, check_owner, saved_binding
from ._trajectory import Trajectory

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

#: version 2 adds the owner binding; version 1 states are still resumed, bound to their
#: memory key (as a run without `owner=` is)
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class RunState:
    """Per-run state."""

    trajectory: Trajectory
    usage: BudgetUsage
    memory_key: MemoryKey | None
    #: the memory's messages; None until read, which the first step does (under the deadline)
    history: list[LLMMessage] | None
    #: who may resume a pause of this run (`_owners.bind_owner`), saved with the pause
    owner: dict[str, str] | None = None
    repairs: int = 0
    reflections: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: what the run is waiting on, named in the metadata when the deadline interrupts it
    in_flight: str | None = None
    #: a tool was called (its effects cannot be undone by restoring a paused state)
    acted: bool = False
    #: the run committed to an ending of its own: an answer given, or a new pause saved
    settled: bool = False
    #: the run ended because something failed (the model call, the planner), not by a
    #: budget, an answer or the model's unusable replies
    error_ending: bool = False

    @property
    def restorable(self) -> bool:
        """Whether a resumed run that fails now may give its paused state back to its token:
        only while nothing it did would be done twice by resuming again."""
        return not self.acted and not self.settled


def paused_state(run: RunState, action: dict[str, Any], reason: str) -> dict[str, Any]:
    """What is saved for a run pausing at `action` (its trajectory ends with the pause)."""
    return {
        "version": STATE_VERSION,
        "trajectory": run.trajectory.model_dump(mode="json"),
        "usage": run.usage.model_dump(),
        "memory_key": run.memory_key.model_dump() if run.memory_key else None,
        "owner": run.owner,
        "history": [m.model_dump() for m in run.history or ()],
        "reflections": run.reflections,
        "pending": {"action": action, "reason": reason},
    }


def resumed_run(saved: dict[str, Any]) -> RunState:
    """The run a paused state describes, bound to the same owner (so a pause of the
    continuation is too)."""
    key = saved.get("memory_key")
    memory_key = MemoryKey.model_validate(key) if key else None
    return RunState(
        trajectory=Trajectory.model_validate(saved["trajectory"]),
        usage=BudgetUsage.model_validate(saved["usage"]),
        memory_key=memory_key,
        history=[LLMMessage.model_validate(m) for m in saved.get("history", [])],
        reflections=int(saved.get("reflections", 0)),
        owner=saved_binding(saved),
    )


async def take_paused(store: Any, token: str, owner: Owner | None, ref: str) -> dict[str, Any]:
    """Take (consume) the paused state of `token` for `owner`. Raises `UnknownNameError`
    for a token unknown or used, `ConfigurationError` for a state this version cannot read,
    `OwnerMismatchError` for anyone but the run's owner: all before the token is used up.
    `ref` names the pause in messages (never the token)."""
    saved = await store.load_planner_state(token)
    if saved is None:
        raise UnknownNameError(
            f"resume token {ref} (a digest; the token is never shown) is unknown or was "
            "already used; tokens are single use"
        )
    if saved.get("version") not in READABLE_VERSIONS:
        raise ConfigurationError(
            f"paused state of version {saved.get('version')} cannot be resumed by this "
            f"version of penguiflow-planner (it reads versions {READABLE_VERSIONS})"
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
