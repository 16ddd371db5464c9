"""What every flow shares as a resource: the drivers it built from URLs, `aclose()` and
`async with`, whatever runtime it runs on."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Iterable
from typing import Any, Self

from .errors import InvalidTypeError, UsageError
from .resources import AsyncResource, aclose_resource, redact_url

__all__ = ["FlowResource"]

logger = logging.getLogger("penguiflow.core")


class FlowResource(AsyncResource):
    """Base of the runtimes' flow classes (a mixin of the `Flow` protocol's closing half).

    `stop()` stops processing and keeps undelivered messages for a later `run()`; `aclose()`
    stops for good and closes the drivers the flow built from URLs (`state_store=
    "sqlite:///..."`); drivers given as objects belong to the caller. `async with flow:`
    runs the flow unless it runs already, and closes it on the way out."""

    _closed: bool = False
    _owned_drivers: list[Any]

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def run(self, *, registry: Any = None) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def _own(self, kind: str, value: Any) -> Any:
        """`value` as given, or the driver of `kind` a URL string selects, which this flow then
        owns and closes.

        Either must have the driver interface of `kind` (`state_store`, `message_bus`): the
        flow only calls a driver from inside its event handling, where a failure is logged
        and never raised, so a wrong object given here would fail silently once per event."""
        if value is None:
            return None
        if not isinstance(value, str):
            _check_driver(kind, value)
            return value
        from .plugins import resolve_driver

        driver = resolve_driver(kind, value)
        _check_driver(kind, driver, url=value)
        owned: list[Any] | None = getattr(self, "_owned_drivers", None)
        if owned is None:
            owned = self._owned_drivers = []
        owned.append(driver)
        return driver

    @staticmethod
    def _own_middlewares(middlewares: Iterable[Any] | None) -> list[Any]:
        """`middlewares` as a list, each checked to be callable (the same check on every
        runtime: a wrong one would otherwise be logged as `middleware_error` per event)."""
        if middlewares is None:
            return []
        if callable(middlewares) or isinstance(middlewares, str | bytes):
            raise InvalidTypeError(
                f"middlewares must be a list of middlewares; got {_describe(middlewares)}: "
                "pass middlewares=[middleware]"
            )
        try:
            given = list(middlewares)
        except TypeError as exc:
            raise InvalidTypeError(
                f"middlewares must be a list of middlewares (async callables taking a "
                f"FlowEvent); got {_describe(middlewares)}"
            ) from exc
        for index, middleware in enumerate(given):
            if not callable(middleware):
                raise InvalidTypeError(
                    f"middlewares[{index}] is {_describe(middleware)}, not a middleware: "
                    "give an async callable taking a FlowEvent "
                    "(`async def middleware(event): ...`)"
                )
        return given

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(
                f"{type(self).__name__} was closed with aclose(); its drivers are closed. "
                "Create a new flow"
            )

    async def aclose(self) -> None:
        """Stop the flow and close the drivers it built from URLs; idempotent."""
        if self._closed:
            return
        try:
            await self.stop()
        finally:
            self._closed = True
            owned: list[Any] = getattr(self, "_owned_drivers", [])
            self._owned_drivers = []
            for driver in owned:
                try:
                    await aclose_resource(driver)
                except Exception:
                    logger.exception("closing %r failed", driver)

    async def __aenter__(self) -> Self:
        if not self.running:
            self.run()
        return self


#: what each driver kind must look like, and a URL that selects a built-in one
_DRIVER_SHAPES = {
    "state_store": (
        "a StateStore (async save_event, load_history and save_remote_binding)",
        "sqlite:///flows.db",
    ),
    "message_bus": ("a MessageBus (async publish)", "memory://"),
}


def _check_driver(kind: str, value: Any, *, url: str | None = None) -> None:
    from .bus import MessageBus
    from .state import StateStore

    protocol: type = StateStore if kind == "state_store" else MessageBus
    if kind not in _DRIVER_SHAPES or isinstance(value, protocol):
        return
    shape, example = _DRIVER_SHAPES[kind]
    if url is not None:
        raise InvalidTypeError(
            f"the driver for {kind}={redact_url(url)!r} built {_describe(value)}, which is not "
            f"{shape}; the plugin that provides it is broken: report it, or choose another URL"
        )
    raise InvalidTypeError(
        f"{kind} got {_describe(value)}, which is not {shape}; pass such an object, "
        f"a URL string such as {example!r}, or None"
    )


def _describe(value: object) -> str:
    """`value`'s type and a short repr, even when its `__repr__` raises."""
    try:
        shown = reprlib.repr(value)
    except Exception:
        shown = "(unprintable)"
    return f"{type(value).__name__} {shown}"
