"""Conformance suite for hook plugins: the plugin registers against the hookspecs, the
kernel's and those the installed plugins declare (the planner's, for instance)."""

from __future__ import annotations

from typing import Any

__all__ = ["HookPluginConformance"]


class HookPluginConformance:
    """Subclass and implement `make_plugin` (the object or module your entry point names)."""

    def make_plugin(self) -> Any:
        raise NotImplementedError("implement make_plugin() to return your hook plugin")

    def _host(self, plugin: Any) -> Any:
        """A host with `plugin` and the installed hookspec providers, and no other plugin."""
        from ..plugins import PluginSettings, load_hooks
        from ..plugins._hooks import hookspec_providers

        host = load_hooks(PluginSettings(disabled=frozenset({"penguiflow:*"})))
        # Another plugin's hooks (penguiflow_planner_sinks, say) are judged against the specs
        # the installed plugin that declares them adds; their other hooks play no part.
        for name, provider in hookspec_providers(PluginSettings.from_env()):
            if provider is not plugin:
                host.manager.register(provider, name=name)
        host.manager.register(plugin)
        return host

    def test_registers_against_the_hookspecs(self) -> None:
        from ..plugins._hooks import unknown_hooks

        plugin = self.make_plugin()
        host = self._host(plugin)  # a signature that does not match its spec fails here
        unknown = unknown_hooks(host.manager, plugin)
        assert not unknown, (
            f"the plugin implements {unknown}, which neither the kernel nor an installed "
            "plugin declares: fix the name, install the plugin that declares the hook, or "
            "mark the implementation @hookimpl(optionalhook=True)"
        )
        implemented = [
            name for name in dir(plugin) if host.manager.parse_hookimpl_opts(plugin, name)
        ]
        assert implemented, "the plugin has no @hookimpl (from penguiflow.hookspecs) function"
        for name in implemented:
            assert getattr(host.hook, name).get_hookimpls(), f"{name} did not register"

    def test_sinks_are_async_callables(self) -> None:
        import inspect

        plugin = self.make_plugin()
        if not hasattr(plugin, "penguiflow_observability_sinks"):
            return
        from ..core import create

        host = self._host(plugin)
        others = [p for p in host.manager.get_plugins() if p is not plugin]
        # Through pluggy, as the runtimes call it, with this plugin's implementation only.
        caller = host.manager.subset_hook_caller("penguiflow_observability_sinks", others)
        flow = create()
        for role in ("local", "client", "worker"):
            for sinks in caller(flow=flow, role=role):
                for sink in sinks or ():
                    call = vars(type(sink)).get("__call__")
                    assert inspect.iscoroutinefunction(sink) or inspect.iscoroutinefunction(call), (
                        f"sink {sink!r} (role {role!r}) must be async"
                    )
