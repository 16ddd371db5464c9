"""Hook implementations: registered through the `penguiflow` entry-point group."""

from __future__ import annotations

from typing import Any

from penguiflow.hookspecs import hookimpl

from .connector import EchoConnector


@hookimpl
def penguiflow_register_connectors(config: dict[str, Any]) -> list[Any]:
    """Contribute one echo connector (its tools become `echo.echo` and `echo.reverse`)."""
    return [EchoConnector(name=str(config.get("echo_connector_name", "echo")))]
