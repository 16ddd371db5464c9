"""MCP server declarations: in code, or in a TOML/JSON config file.

`${VAR}` is the user's way to keep secrets out of configuration: it is filled from the
environment in the fields that carry credentials (`headers`, `bearer_token`, `api_key`,
`env`), once, when connecting. It belongs to configuration the user wrote (files, code, the
host's `[mcp]` section): nothing an MCP server sends (its tool listing, its results) and
nothing a planner sends (tool arguments) goes through it, and a variable's value is never
expanded again. Build an `MCPServerConfig` only from configuration you trust, since its
templates can read any environment variable.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from penguiflow.errors import ConfigurationError, PenguiFlowError

from ._roots import MCPRoot

__all__ = ["CONFIG_ENV", "MCPConfigError", "MCPServerConfig", "load_config"]

#: A config file to read servers from when the plugin registers connectors.
CONFIG_ENV = "PENGUIFLOW_MCP_CONFIG"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class MCPConfigError(PenguiFlowError, ValueError):
    """A server declaration is wrong; the message names the server and the field."""


class MCPServerConfig(BaseModel):
    """One MCP server: a `command` to spawn (stdio) or a `url` (streamable HTTP).

    `bearer_token` sends `Authorization: Bearer ...`; `api_key` with `api_key_header` sends
    a key header; `headers` adds any others. Their values (and `env` values) may name
    environment variables as `${VAR}`, resolved when connecting, so config files need no
    secrets; `url`, `command`, `args` and `cwd` are used as written. Only build one from
    configuration you trust: its templates can read any environment variable."""

    name: str
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: str | None = None
    api_key: str | None = None
    api_key_header: str = "X-API-Key"
    timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=20.0, gt=0)
    max_concurrency: int = Field(default=4, ge=1)
    retries: int = Field(default=1, ge=0)
    #: results larger than this (characters) are kept out of the prompt as references
    max_inline_chars: int = Field(default=8000, ge=1)
    #: how many results kept out of the prompt are held, least recently used evicted first
    max_artifacts: int = Field(default=256, ge=1)
    #: how many bytes of them are held in all (a single larger result is still kept, alone)
    max_artifact_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    #: the lowest level of the server's log messages (`notifications/message`) to receive,
    #: logged to `penguiflow.mcp.server.<name>`; None leaves the server's own default
    log_level: (
        Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
        | None
    ) = "info"
    #: directories the server may work in, answered on `roots/list` (paths or file:// URIs,
    #: or `{uri, name}` tables); None: the roots capability is not offered at all
    roots: list[MCPRoot] | None = None

    @model_validator(mode="after")
    def _check(self) -> MCPServerConfig:
        if not _NAME.match(self.name):
            raise ConfigurationError(
                f"server name {self.name!r} must start with a letter and use letters, digits, "
                "'_' or '-' (it prefixes tool names: name.tool)"
            )
        if (self.command is None) == (self.url is None):
            raise ConfigurationError(
                f"server {self.name!r} needs exactly one of command= (stdio) or url= "
                "(streamable HTTP)"
            )
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"server {self.name!r}: url must start with http:// or https://"
            )
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def resolved_headers(self) -> dict[str, str]:
        headers = {k: _expand(v, self.name) for k, v in self.headers.items()}
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {_expand(self.bearer_token, self.name)}"
        if self.api_key is not None:
            headers[self.api_key_header] = _expand(self.api_key, self.name)
        return headers

    def resolved_env(self) -> dict[str, str]:
        return {k: _expand(v, self.name) for k, v in self.env.items()}


def _expand(value: str, server: str) -> str:
    """`${VAR}` in a value of the user's configuration, filled from the environment in one
    pass (a value that itself holds `${...}` stays as it is). Only this module calls it, on
    this model's own fields."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise MCPConfigError(
                f"server {server!r} refers to ${{{name}}}, which is not set in the environment"
            )
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", replace, value)


def _servers(data: Any, source: str) -> list[MCPServerConfig]:
    entries = data.get("servers") if isinstance(data, Mapping) else None
    if isinstance(entries, Mapping):  # {"servers": {"name": {...}}}
        entries = [{"name": name, **dict(body)} for name, body in entries.items()]
    if not isinstance(entries, list):
        raise MCPConfigError(f"{source}: expected a 'servers' list or table")
    configs: list[MCPServerConfig] = []
    for index, entry in enumerate(entries):
        try:
            configs.append(MCPServerConfig.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            label = entry.get("name", f"#{index}") if isinstance(entry, Mapping) else f"#{index}"
            raise MCPConfigError(
                f"{source}: server {label}: {where + ': ' if where else ''}{first['msg']}"
            ) from None
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MCPConfigError(f"{source}: server name(s) {duplicates} declared twice")
    return configs


def load_config(source: str | Path | Mapping[str, Any]) -> list[MCPServerConfig]:
    """Servers from a `.toml` or `.json` file, or from an already-parsed mapping."""
    if isinstance(source, Mapping):
        return _servers(source, "MCP config")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MCPConfigError(f"cannot read MCP config {path}: {exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise MCPConfigError(
            f"MCP config {path} is not valid {path.suffix[1:] or 'JSON'}: {exc}"
        ) from None
    return _servers(data, str(path))
