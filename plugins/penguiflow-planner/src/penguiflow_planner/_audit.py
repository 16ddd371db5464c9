"""What the planner puts in the audit trail (`penguiflow.audit`): pauses, resumes (and
refused resume attempts), and calls of tools that write or are marked destructive.

Who: the run's tenant and user (`tool_context["tenant_id"]`/`["user_id"]`, else its memory
key), its session and trace. Pause tokens never reach a record: the token's reference
(`token_ref`, the same one planner events carry) is the target, and the token itself is
passed as a secret so any copy of it is masked. Tool arguments and the human's input are
content: kept only with content capture on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypedDict

from penguiflow import audit
from penguiflow.catalog import NodeSpec
from penguiflow.memory import MemoryKey

__all__ = [
    "acting_for",
    "audited_tool_action",
    "record_pause",
    "record_resume",
    "record_tool_call",
]

#: The memory key a run acts for, given or resolved: it names the tenant and user even when
#: the planner has no short-term memory (and so the run state keeps no key).
_ACTING_FOR: ContextVar[MemoryKey | None] = ContextVar(
    "penguiflow_planner_acting_for", default=None
)


@contextmanager
def acting_for(key: MemoryKey | None) -> Iterator[None]:
    """Record what the block does (and the tools it calls) as done for `key`."""
    token = _ACTING_FOR.set(key)
    try:
        yield
    finally:
        _ACTING_FOR.reset(token)


def _part(context: Mapping[str, Any] | None, name: str, fallback: str | None) -> str | None:
    value = (context or {}).get(name)
    return str(value) if value not in (None, "") else fallback


class _Who(TypedDict):
    tenant: str | None
    user: str | None
    session_id: str | None


def _who(context: Mapping[str, Any] | None, key: MemoryKey | None) -> _Who:
    if key is None:
        key = _ACTING_FOR.get()
    return {
        "tenant": _part(context, "tenant_id", key.tenant_id if key else None),
        "user": _part(context, "user_id", key.user_id if key else None),
        "session_id": _part(context, "session_id", key.session_id if key else None),
    }


def audited_tool_action(spec: NodeSpec) -> str | None:
    """`tool.write` for a tool whose side effects are writes, `tool.destructive` for one
    its safety notes or tags call destructive, None for the others (not audited)."""
    notes = (spec.safety_notes or "").lower()
    tags = {str(tag).lower() for tag in spec.tags}
    if "destructive" in notes or "destructive" in tags:
        return "tool.destructive"
    if spec.side_effects == "write":
        return "tool.write"
    return None


async def record_pause(
    *,
    token: str,
    ref: str,
    reason: str,
    payload: Mapping[str, Any],
    tool_context: Mapping[str, Any] | None,
    memory_key: MemoryKey | None,
    trace_id: str | None,
    store: Any,
) -> None:
    await audit.record(
        "planner.pause",
        source="planner",
        target=ref,
        details={"reason": reason, "pause_ref": ref},
        content={"payload": dict(payload)},
        trace_id=trace_id,
        store=store,
        secrets=(token,),
        **_who(tool_context, memory_key),
    )


async def record_resume(
    *,
    token: str,
    ref: str,
    outcome: str,
    user_input: str | None,
    tool_context: Mapping[str, Any] | None,
    memory_key: MemoryKey | None,
    trace_id: str | None,
    store: Any,
    error: BaseException | None = None,
) -> None:
    details: dict[str, Any] = {"pause_ref": ref, "user_input_given": user_input is not None}
    if error is not None:
        details["error_type"] = type(error).__name__
    await audit.record(
        "planner.resume",
        source="planner",
        target=ref,
        outcome=outcome,
        details=details,
        content={"user_input": user_input} if user_input is not None else None,
        trace_id=trace_id,
        store=store,
        secrets=(token,),
        **_who(tool_context, memory_key),
    )


async def record_tool_call(
    action: str,
    *,
    spec: NodeSpec,
    call_id: str,
    args: Mapping[str, Any],
    outcome: str,
    error: str | None,
    tool_context: Mapping[str, Any] | None,
    memory_key: MemoryKey | None,
    trace_id: str | None,
    store: Any,
) -> None:
    details: dict[str, Any] = {
        "tool": spec.name,
        "side_effects": spec.side_effects,
        "tool_call_id": call_id,
    }
    if spec.safety_notes:
        details["safety_notes"] = spec.safety_notes
    if error is not None:
        details["error"] = error
    await audit.record(
        action,
        source="planner",
        target=spec.name,
        outcome=outcome,
        details=details,
        content={"args": dict(args)},
        trace_id=trace_id,
        store=store,
        **_who(tool_context, memory_key),
    )
