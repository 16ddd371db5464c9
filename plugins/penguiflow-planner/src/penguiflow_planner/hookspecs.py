# mypy: disable-error-code="empty-body"
# (hook specifications are bodiless by design: pluggy calls the implementations)
"""The hooks the planner calls, declared from this package (pytest's `pytest_addhooks`
model): the planner's hook plugin (`penguiflow_planner.hooks`, entry point
`penguiflow-planner` in the `penguiflow` group) adds them to every hook host it joins.

Implement them with `penguiflow.hookspecs.hookimpl`, like the kernel's hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from penguiflow.hookspecs import hookspec

if TYPE_CHECKING:
    from penguiflow.middlewares import Middleware

    from ._planner import ReactPlanner

__all__ = ["penguiflow_planner_sinks"]


@hookspec
def penguiflow_planner_sinks(planner: ReactPlanner) -> list[Middleware]:
    """Return middlewares (async FlowEvent subscribers) for a planner's events.

    Called once per planner, on its first run. Events are `FlowEvent`s whose `event_type`
    is `planner_<kind>` (step_start, step_finish, tool_call, repair, pause, resume, budget,
    reflection, finish), `trace_id` the run's id and `extra` the details."""
