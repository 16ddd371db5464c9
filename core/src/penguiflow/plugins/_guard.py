"""One plugin's failing lifecycle hook must not break every flow in the process.

The hooks called when flows start and stop (and `penguiflow_configure`) are guarded per
implementation: an implementation that raises is recorded against its plugin (status
`failed`, shown by `penguiflow plugins list` in the process), logged once, and skipped, so the
other plugins' implementations still run and the flow starts or stops. In strict mode
(`PENGUIFLOW_STRICT_PLUGINS=1`) the error propagates instead, and the flow fails before any
worker starts. Each guarded `HookImpl` keeps running inside pluggy's own call loop (ordering,
wrappers and tracing intact); only the function pluggy calls is wrapped.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import describe_exception

if TYPE_CHECKING:
    from ._hooks import HookHost

__all__ = ["GUARDED_HOOKS", "guard_hooks"]

logger = logging.getLogger("penguiflow.plugins")

#: hooks whose failures are contained; contribution hooks (connectors) are not guarded: a
#: connector plugin that fails must be seen where its tools are asked for
GUARDED_HOOKS = (
    "penguiflow_configure",
    "penguiflow_observability_sinks",
    "penguiflow_event_sinks",
    "penguiflow_flow_startup",
    "penguiflow_flow_shutdown",
)

_GUARDED_MARK = "_penguiflow_guarded"


def guard_hooks(host: HookHost, *, strict: bool) -> None:
    """Wrap every (non-wrapper) implementation of the guarded hooks registered so far."""
    if strict:
        return
    for hook_name in GUARDED_HOOKS:
        caller = getattr(host.hook, hook_name, None)
        if caller is None:
            continue
        for impl in caller.get_hookimpls():
            if impl.wrapper or impl.hookwrapper or getattr(impl.function, _GUARDED_MARK, False):
                continue
            impl.function = _guarded(host, hook_name, str(impl.plugin_name), impl.function)


def _guarded(host: HookHost, hook_name: str, plugin_name: str, function: Any) -> Any:
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except Exception as exc:
            _record_failure(host, plugin_name, hook_name, exc)
            return None

    setattr(call, _GUARDED_MARK, True)
    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


def _record_failure(host: HookHost, plugin_name: str, hook_name: str, exc: Exception) -> None:
    error = f"{hook_name} raised {type(exc).__name__}: {describe_exception(exc)}"
    first = (plugin_name, hook_name) not in host.hook_failures
    host.hook_failures.add((plugin_name, hook_name))
    for index, record in enumerate(host.records):
        if record.name == plugin_name:
            host.records[index] = replace(
                record,
                status="failed",
                error=error,
                remedy=(
                    f"fix {record.distribution or plugin_name}, or disable it with "
                    f"PENGUIFLOW_DISABLE_PLUGINS={plugin_name}; the other plugins keep working"
                ),
            )
    if first:  # every flow calls the hook again: say it once, with the traceback
        logger.error(
            "hook plugin %r: %s; skipped (this is logged once per process; set "
            "PENGUIFLOW_STRICT_PLUGINS=1 to make it fatal)",
            plugin_name,
            error,
            exc_info=exc,
        )
