"""Which plugin made a contribution: the implementation whose code is running.

pluggy calls hook implementations as plain functions, so while a hook runs, the frame of the
implementation that is contributing is on the stack. Matching frames' code objects against
the implementations' (`HookImpl.function.__code__`) is exact for calls made directly in an
implementation and for helpers it calls, and needs no cooperation from the plugin (the host
passes one `register` callback to every plugin, as simonw/llm's `register_models` does).
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

__all__ = ["owner_by_module", "owner_in_traceback", "owner_on_stack"]


def _impls_by_code(caller: Any) -> dict[CodeType, list[Any]]:
    found: dict[CodeType, list[Any]] = {}
    for impl in caller.get_hookimpls():
        # Bound methods expose their function's code too; other callables have none.
        code = getattr(impl.function, "__code__", None)
        if isinstance(code, CodeType):
            found.setdefault(code, []).append(impl)
    return found


def _owner_of_frame(frame: FrameType, impls: list[Any]) -> str | None:
    """Which of the implementations sharing this frame's code is running in it.

    Two instances of one plugin class share their methods' code: the frame's first argument
    (`self`) tells them apart. When nothing does (closures of one function), every candidate
    is named."""
    if len(impls) == 1:
        return str(impls[0].plugin_name)
    code = frame.f_code
    if code.co_argcount:
        first = frame.f_locals.get(code.co_varnames[0])
        for impl in impls:
            if getattr(impl.function, "__self__", None) is first:
                return str(impl.plugin_name)
    return " or ".join(sorted(str(impl.plugin_name) for impl in impls))


def owner_on_stack(caller: Any, depth: int = 1) -> str | None:
    """The plugin whose implementation of `caller`'s hook called into the code `depth`
    frames above this function (the innermost one, if several are on the stack); None when
    no implementation is."""
    by_code = _impls_by_code(caller)
    frame: FrameType | None = sys._getframe(depth + 1)
    while frame is not None:
        impls = by_code.get(frame.f_code)
        if impls is not None:
            return _owner_of_frame(frame, impls)
        frame = frame.f_back
    return None


def owner_in_traceback(caller: Any, tb: TracebackType | None) -> str | None:
    """The plugin whose implementation of `caller`'s hook is innermost in `tb` (the one that
    raised, or called what raised)."""
    by_code = _impls_by_code(caller)
    found: str | None = None
    while tb is not None:
        impls = by_code.get(tb.tb_frame.f_code)
        if impls is not None:
            found = _owner_of_frame(tb.tb_frame, impls)
        tb = tb.tb_next
    return found


def owner_by_module(manager: pluggy.PluginManager, obj: object) -> str:
    """The fallback: the registered plugin from the package `obj`'s class comes from, else
    that module's name."""
    module = type(obj).__module__
    package = module.split(".", 1)[0]
    for name, plugin in manager.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        home = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        if home.split(".", 1)[0] == package and package not in ("builtins", "__main__"):
            return name
    return f"module {module}"
