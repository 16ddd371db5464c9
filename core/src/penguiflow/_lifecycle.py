"""The hook calls every runtime makes when a flow starts and stops, in each of its processes.

At start: `penguiflow_observability_sinks(flow, role)` (the sinks join the listeners of that
process) and `penguiflow_flow_startup(flow, role)`. At stop: the sinks leave again, so run/stop
cycles never pile them up, and `penguiflow_flow_shutdown(flow, role)`. `role` is `"local"` for an
in-process flow, `"client"` for the process that emits and fetches on a distributed runtime and
`"worker"` for a process that runs nodes for one. Hooks are called only here, never per message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hookspecs import FlowRole
    from .middlewares import Middleware

__all__ = ["FlowLifecycle"]


class FlowLifecycle:
    """Calls the lifecycle hooks for one flow in one process, and undoes what they added."""

    __slots__ = ("_host", "_sinks", "flow", "role")

    def __init__(self, flow: Any, role: FlowRole) -> None:
        self.flow = flow
        self.role = role
        self._host: Any = None
        self._sinks: list[Middleware] = []

    @property
    def started(self) -> bool:
        return self._host is not None

    def own_middlewares(self, middlewares: list[Middleware]) -> list[Middleware]:
        """`middlewares` without the sinks `start` added (what the flow was given)."""
        return [m for m in middlewares if m not in self._sinks]

    def start(self, middlewares: list[Middleware]) -> None:
        """Add the sinks hook plugins contribute to `middlewares`, then call the startup hook.

        Call it before starting anything: a plugin that fails here is skipped (and recorded)
        unless plugins are strict, where the error propagates and what was added is undone,
        so the runtime can give up with nothing running."""
        from .plugins import active_hooks

        host = active_hooks()
        if host is None:
            return
        self._host = host
        try:
            for contributed in host.hook.penguiflow_observability_sinks(
                flow=self.flow, role=self.role
            ):
                for sink in contributed or ():
                    if sink not in middlewares:
                        middlewares.append(sink)
                        self._sinks.append(sink)
            host.hook.penguiflow_flow_startup(flow=self.flow, role=self.role)
        except BaseException:
            self._host = None
            for sink in self._sinks:
                if sink in middlewares:
                    middlewares.remove(sink)
            self._sinks = []
            raise

    def stop(self, middlewares: list[Middleware]) -> None:
        """Remove the sinks `start` added, then call the shutdown hook."""
        host, self._host = self._host, None
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            if sink in middlewares:
                middlewares.remove(sink)
        if host is not None:
            host.hook.penguiflow_flow_shutdown(flow=self.flow, role=self.role)
