"""Conformance suite for hook plugins: the plugin registers against our hookspecs."""

from __future__ import annotations

from typing import Any

__all__ = ["HookPluginConformance"]


class HookPluginConformance:
    """Subclass and implement `make_plugin` (the object or module your entry point names)."""

    def make_plugin(self) -> Any:
        raise NotImplementedError("implement make_plugin() to return your hook plugin")

    def test_registers_against_the_hookspecs(self) -> None:
        from ..plugins import PluginSettings, load_hooks

        plugin = self.make_plugin()
        # Only the plugin under test: installed hook plugins are disabled for this check.
        host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})), extra=[plugin])
        host.manager.check_pending()  # an unknown penguiflow_* hook name fails here
        implemented = [name for name in dir(plugin) if name.startswith("penguiflow_")]
        assert implemented, "the plugin implements no penguiflow_* hook"
        for name in implemented:
            assert getattr(host.hook, name).get_hookimpls(), f"{name} did not register"

    def test_sinks_are_async_callables(self) -> None:
        import inspect

        plugin = self.make_plugin()
        sinks_hook = getattr(plugin, "penguiflow_observability_sinks", None)
        if sinks_hook is None:
            return
        from ..core import create

        for sink in sinks_hook(flow=create()) or ():
            call = vars(type(sink)).get("__call__")
            assert inspect.iscoroutinefunction(sink) or inspect.iscoroutinefunction(call), (
                f"sink {sink!r} must be async"
            )
