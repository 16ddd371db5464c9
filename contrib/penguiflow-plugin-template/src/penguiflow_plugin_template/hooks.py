"""Hook implementations: registered through the `penguiflow` entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from penguiflow.hookspecs import hookimpl

from .connector import EchoConnector


@hookimpl
def penguiflow_register_connectors(
    register: Callable[[EchoConnector], None], config: dict[str, Any]
) -> None:
    """Contribute one echo connector (its tools become `echo.echo` and `echo.reverse`).

    The host's configuration may rename it: `[template] connector_name = "..."`."""
    section = config.get("template")
    name = section.get("connector_name", "echo") if isinstance(section, dict) else "echo"
    register(EchoConnector(name=str(name)))
