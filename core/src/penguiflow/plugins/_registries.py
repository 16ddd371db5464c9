"""Collecting what hook plugins contribute, with collisions reported by plugin name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..connectors import Connector, ToolNameCollisionError

if TYPE_CHECKING:
    from ._hooks import HookHost

__all__ = ["collect_connectors", "collect_named"]


def _per_plugin(host: HookHost, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call each implementation of `hook_name` separately, to know who returned what."""
    caller = getattr(host.hook, hook_name)
    results: list[tuple[str, Any]] = []
    for impl in caller.get_hookimpls():
        arguments = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        plugin_name = host.manager.get_name(impl.plugin) or repr(impl.plugin)
        results.append((plugin_name, impl.function(**arguments)))
    return results


def collect_named(host: HookHost, hook_name: str, *, what: str) -> dict[str, Any]:
    """Merge `{name: object}` contributions (join strategies, memory strategies, adapters)."""
    merged: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for plugin_name, contribution in _per_plugin(host, hook_name):
        for name, value in (contribution or {}).items():
            if name in merged:
                raise ToolNameCollisionError(
                    f"{what} {name!r} is registered by plugin {owners[name]!r} and by plugin "
                    f"{plugin_name!r}; disable one with PENGUIFLOW_DISABLE_PLUGINS=<name>"
                )
            merged[name], owners[name] = value, plugin_name
    return merged


def collect_connectors(host: HookHost, *, config: dict[str, Any] | None = None) -> list[Connector]:
    """Every connector contributed through `penguiflow_register_connectors`."""
    connectors: list[Connector] = []
    owners: dict[str, str] = {}
    for plugin_name, contribution in _per_plugin(
        host, "penguiflow_register_connectors", config=config or {}
    ):
        for connector in contribution or ():
            if not isinstance(connector, Connector):
                raise TypeError(
                    f"plugin {plugin_name!r} returned {connector!r} from "
                    "penguiflow_register_connectors, which is not a Connector (it needs a "
                    "`name` and async `list_tools()` and `call_tool()` methods)"
                )
            if connector.name in owners:
                raise ToolNameCollisionError(
                    f"connector {connector.name!r} is contributed by plugin "
                    f"{owners[connector.name]!r} and by plugin {plugin_name!r}; its tools would "
                    f"collide as '{connector.name}.<tool>': rename one in its configuration or "
                    "disable one with PENGUIFLOW_DISABLE_PLUGINS=<plugin>"
                )
            owners[connector.name] = plugin_name
            connectors.append(connector)
    return connectors
