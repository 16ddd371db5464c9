"""Roots: the directories a client tells an MCP server it may work in (`roots/list`).

Configured as paths or `file://` URIs (`MCPServerConfig.roots`), optionally named; a path
becomes an absolute `file://` URI, since the protocol only takes those. The connector answers
`roots/list` from the current list and `set_roots` replaces it at run time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from penguiflow.errors import PenguiFlowError

__all__ = ["MCPRoot", "MCPRootError", "RootsAnswer", "quiet_roots_deprecation", "to_roots"]


class MCPRootError(PenguiFlowError, ValueError):
    """A root that is neither a path nor a `file://` URI."""


class MCPRoot(BaseModel):
    """One root: `uri` (a `file://` URI; a path given here is made into one) and an optional
    human-readable `name`. A plain string in config stands for `{uri = "<string>"}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, (str, Path)):
            return {"uri": str(value)}
        return value

    @field_validator("uri")
    @classmethod
    def _file_uri(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme == "file":
            return value
        if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
            raise MCPRootError(
                f"root {value!r} is a {scheme}: URI; MCP roots must be file:// URIs or "
                "filesystem paths"
            )
        # Why resolve: a relative path means nothing to a server with another working directory.
        return Path(value).expanduser().resolve().as_uri()


@contextmanager
def quiet_roots_deprecation() -> Iterator[None]:
    """A block where the SDK's roots deprecation warning is not raised: roots are deprecated in
    the newest protocol revision (SEP-2577), but servers on the revisions before it (most of
    them today) still ask for them, and the user configured them on purpose."""
    from mcp.shared.exceptions import MCPDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        yield


def to_roots(roots: Iterable[MCPRoot | str | Path | Mapping[str, Any]]) -> list[MCPRoot]:
    """`roots` as `MCPRoot`s (strings and paths as URIs, mappings as `{uri, name}`)."""
    if isinstance(roots, (str, Path)):
        raise MCPRootError(
            f"roots must be a list of paths or URIs, not the single value {str(roots)!r}; "
            "wrap it in a list"
        )
    return [root if isinstance(root, MCPRoot) else MCPRoot.model_validate(root) for root in roots]


class RootsAnswer:
    """The `list_roots_callback` of a session: answers from `current` at the time asked, so
    `set_roots` changes what every later `roots/list` gets."""

    def __init__(self, current: list[MCPRoot]) -> None:
        self.current = current

    async def __call__(self, context: Any) -> Any:
        import mcp_types as types

        with quiet_roots_deprecation():
            return types.ListRootsResult(
                roots=[types.Root(uri=root.uri, name=root.name) for root in self.current]  # type: ignore[arg-type]
            )
