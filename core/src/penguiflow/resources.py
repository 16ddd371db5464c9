"""One way to close things: `aclose()`, and `async with` on top of it.

Every resource the project hands out (state stores, message buses, LLM clients, connectors,
runtimes, flows) closes with `await obj.aclose()`, which is idempotent, and works as
`async with obj: ...`. `AsyncResource` gives a class the `async with` half for free;
`aclose_resource` closes any object the way its type allows (third-party drivers written
against the older `close()` verb included).

`redact_url` masks the password in a URL (or in a message quoting URLs): a resource is named
in errors, logs and reprs by its URL, always through it.
"""

from __future__ import annotations

import inspect
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from ._redaction import redact_url

__all__ = ["AsyncResource", "SupportsAclose", "aclose_resource", "redact_url"]


@runtime_checkable
class SupportsAclose(Protocol):
    """Anything closed with `await obj.aclose()`."""

    async def aclose(self) -> None: ...


class AsyncResource:
    """Base class for resources: subclasses implement `aclose()`; `async with` calls it.

    Entering returns the resource itself; leaving closes it, whether or not the block
    raised. Subclasses that must start something on entry override `__aenter__`."""

    async def aclose(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement aclose()")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


async def aclose_resource(resource: Any) -> None:
    """Close `resource` with `aclose()`, or `close()` (awaited when it is a coroutine) for
    objects that only have that; objects with neither need no closing."""
    closer = getattr(resource, "aclose", None)
    if closer is None:
        closer = getattr(resource, "close", None)
    if closer is None:
        return
    result = closer()
    if inspect.isawaitable(result):
        await result
