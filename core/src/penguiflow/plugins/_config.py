"""The plugin configuration mapping a hook host starts from: a file, then code.

`PENGUIFLOW_CONFIG` may name a TOML or JSON file whose top level is a table of sections
(`[mcp]`, `[utcp]`, ...); the `config` given to `load_hooks` is laid over it section by section
(a section given in code replaces the file's). Plugins then adjust the result in
`penguiflow_configure`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import describe_exception
from ._errors import PluginConfigError

__all__ = ["CONFIG_ENV", "initial_config", "read_config_file"]

CONFIG_ENV = "PENGUIFLOW_CONFIG"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The table in a `.toml` or `.json` file (by suffix; anything else is read as TOML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PluginConfigError(
            f"cannot read the plugin configuration {str(path)!r} named by {CONFIG_ENV}: "
            f"{describe_exception(exc)}; point {CONFIG_ENV} at a readable .toml or .json file "
            "or unset it"
        ) from exc
    try:
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are both ValueErrors
        raise PluginConfigError(
            f"the plugin configuration {str(path)!r} is not valid "
            f"{'JSON' if path.suffix.lower() == '.json' else 'TOML'}: "
            f"{describe_exception(exc)}"
        ) from exc
    if not isinstance(data, dict):
        raise PluginConfigError(
            f"the plugin configuration {str(path)!r} holds a {type(data).__name__}; its top "
            'level must be a table of sections such as {"mcp": {...}}'
        )
    return data


def initial_config(
    config: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A new mutable mapping: the `PENGUIFLOW_CONFIG` file's sections, then `config`'s.

    Only the top level is copied: the caller's nested sections are shared, as given."""
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV, "").strip()
    merged = read_config_file(path) if path else {}
    merged.update(config or {})
    return merged
