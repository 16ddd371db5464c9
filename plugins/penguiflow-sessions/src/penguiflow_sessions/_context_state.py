"""The saved form of a session's context: what survives a restart, and how it comes back.

The document is plain JSON (every store can hold it). Values JSON cannot hold (the task
service, futures, clients in `tool_context`) are left out, as they are from saved task
snapshots: they stay in the running process only, and the application sets them again after
a restart.
"""

from __future__ import annotations

from typing import Any

from penguiflow_planner.trajectory import BackgroundTaskResult

from penguiflow.errors import ConfigurationError, describe_exception

from ._context import json_copy
from .models import ContextPatch, MergeStrategy, PendingContextPatch, SessionContext, TaskGroup

__all__ = ["CONTEXT_FORMAT", "context_document", "restore_context"]

#: Bumped when the document's shape changes, so an old process never misreads a new one.
CONTEXT_FORMAT = 1


def context_document(
    context: SessionContext,
    pending: dict[str, PendingContextPatch],
    groups: list[TaskGroup] | None = None,
) -> dict[str, Any]:
    """The JSON document saved for `context`, its patches awaiting approval and the
    session's task groups."""
    return {
        "format": CONTEXT_FORMAT,
        "version": context.version,
        "context_hash": context.context_hash,
        "llm_context": json_copy(context.llm_context) or {},
        "tool_context": json_copy(context.tool_context) or {},
        "memory": json_copy(context.memory) or {},
        "artifacts": json_copy(context.artifacts) or [],
        "background_results": [
            json_copy(result.to_dict()) for result in context.background_results.values()
        ],
        "pending_patches": [
            {
                "patch_id": item.patch_id,
                "task_id": item.task_id,
                "patch": item.patch.model_dump(mode="json"),
                "strategy": MergeStrategy(item.strategy).value,
                "created_at": item.created_at,
            }
            for item in pending.values()
        ],
        "groups": [group.model_dump(mode="json") for group in groups or ()],
    }


def restore_context(
    document: dict[str, Any],
) -> tuple[SessionContext, dict[str, PendingContextPatch], list[TaskGroup]]:
    """The context, pending patches and task groups a saved document describes (a
    document saved before groups were kept has none).

    `ConfigurationError` names what is wrong with a document this version cannot read."""
    if not isinstance(document, dict) or document.get("format") != CONTEXT_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document)
        raise ConfigurationError(
            f"saved session context has format {found!r}, but this penguiflow-sessions reads "
            f"format {CONTEXT_FORMAT}; upgrade penguiflow-sessions or drop the saved context"
        )
    try:
        results = [BackgroundTaskResult.from_dict(row) for row in document["background_results"]]
        context = SessionContext(
            llm_context=dict(document["llm_context"]),
            tool_context=dict(document["tool_context"]),
            memory=dict(document["memory"]),
            artifacts=list(document["artifacts"]),
            background_results={result.task_id: result for result in results},
            version=int(document["version"]),
            context_hash=document["context_hash"],
        )
        pending = {
            row["patch_id"]: PendingContextPatch(
                patch_id=row["patch_id"],
                task_id=row["task_id"],
                patch=ContextPatch.model_validate(row["patch"]),
                strategy=MergeStrategy(row["strategy"]),
                created_at=float(row["created_at"]),
            )
            for row in document["pending_patches"]
        }
        groups = [TaskGroup.model_validate(row) for row in document.get("groups", ())]
    except (KeyError, TypeError, ValueError) as exc:
        # pydantic's ValidationError is a ValueError.
        raise ConfigurationError(
            f"saved session context is malformed ({type(exc).__name__}: "
            f"{describe_exception(exc)}); drop it or restore it from a backup"
        ) from exc
    return context, pending, groups
