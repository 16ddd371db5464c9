"""Errors the session engine raises, beyond the kernel's `UnknownNameError`/`UsageError`/
`ConfigurationError`. Each keeps the built-in base PenguiFlow raised, for existing callers."""

from __future__ import annotations

from penguiflow.errors import PenguiFlowError, UsageError

__all__ = [
    "ContextDivergedError",
    "DuplicateSteeringEventError",
    "TaskLimitExceededError",
    "TaskTimeoutError",
]


class TaskLimitExceededError(UsageError):
    """A `SessionLimits` bound on active tasks or pending patches would be exceeded.

    The message starts with PenguiFlow's code (`task_limit_exceeded`,
    `background_task_limit_exceeded`, `pending_patch_limit_exceeded`); a `RuntimeError`."""


class TaskTimeoutError(PenguiFlowError, TimeoutError):
    """A task ran longer than `SessionLimits.max_task_runtime_s`; it ended FAILED."""


class DuplicateSteeringEventError(UsageError):
    """A steering event reused an `event_id` the session already took for that task."""


class ContextDivergedError(UsageError):
    """The session context changed since the version a patch or update was based on."""
