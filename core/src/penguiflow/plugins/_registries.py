"""Collecting connectors through `penguiflow_register_connectors`, each attributed to the
plugin that registered it, so a collision names both plugins.

The hook is called once, through pluggy: ordering (`tryfirst`/`trylast`), `wrapper=True`
implementations and hook-call monitoring all apply. Implementations call the `register`
callback instead of returning a list, which is what lets the host tell who contributed what.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..connectors import Connector, ToolNameCollisionError
from ..errors import InvalidTypeError
from ._attribution import owner_by_module, owner_on_stack
from ._errors import PluginError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._hooks import HookHost

__all__ = ["ConnectorRegistrar", "collect_connectors"]


class ConnectorRegistrar:
    """The `register` callback `penguiflow_register_connectors` receives: call
    `register(connector)` once per connector, while the hook runs.

    `connectors` is what has been registered so far, in order (a `wrapper=True`
    implementation sees the other plugins' contributions after its `yield`)."""

    __slots__ = ("_caller", "_connectors", "_host", "_open", "_owners")

    def __init__(self, host: HookHost) -> None:
        self._host = host
        self._caller = host.hook.penguiflow_register_connectors
        self._connectors: list[Connector] = []
        self._owners: dict[str, str] = {}
        self._open = True

    @property
    def connectors(self) -> tuple[Connector, ...]:
        return tuple(self._connectors)

    def owner(self, connector_name: str) -> str | None:
        """Who registered the connector called `connector_name` (a plugin name)."""
        return self._owners.get(connector_name)

    def __call__(self, connector: Connector) -> None:
        owner = owner_on_stack(self._caller) or owner_by_module(self._host.manager, connector)
        if not self._open:
            raise PluginError(
                f"plugin {owner!r} called register({connector!r}) after "
                "penguiflow_register_connectors returned; call it while the hook runs "
                "instead of keeping the callback"
            )
        if not isinstance(connector, Connector):
            raise InvalidTypeError(
                f"plugin {owner!r} registered {connector!r} through "
                "penguiflow_register_connectors, which is not a Connector (it needs a `name` "
                "and async `list_tools()` and `call_tool()` methods)"
            )
        other = self._owners.get(connector.name)
        if other is not None:
            raise ToolNameCollisionError(
                f"connector {connector.name!r} is contributed by plugin {other!r} and by "
                f"plugin {owner!r}; its tools would collide as '{connector.name}.<tool>': "
                "rename one in its configuration or disable one with "
                "PENGUIFLOW_DISABLE_PLUGINS=<plugin>"
            )
        self._owners[connector.name] = owner
        self._connectors.append(connector)

    def close(self) -> None:
        """Refuse registrations from now on (the hook call is over)."""
        self._open = False


def collect_connectors(
    host: HookHost, *, config: Mapping[str, Any] | None = None
) -> list[Connector]:
    """Every connector the hook plugins register, in registration order.

    The hook receives `config` when given, else the host's configuration (`host.config`,
    as `penguiflow_configure` left it)."""
    registrar = ConnectorRegistrar(host)
    try:
        returned = host.hook.penguiflow_register_connectors(
            register=registrar, config=host.config if config is None else config
        )
    finally:
        registrar.close()
    if returned:  # pluggy drops None results: anything left was returned by mistake
        raise InvalidTypeError(
            "penguiflow_register_connectors implementations call register(connector) for "
            f"each connector and return nothing, but {len(returned)} returned a value (first: "
            f"{returned[0]!r}, from {owner_by_module(host.manager, _first(returned[0]))}); "
            "replace `return [...]` with a register(...) call per connector"
        )
    return list(registrar.connectors)


def _first(value: Any) -> Any:
    """The first item of a returned list (whose class says where it came from), or itself."""
    if isinstance(value, list | tuple) and value:
        return value[0]
    return value
