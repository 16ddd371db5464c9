"""What every flow shares as a resource: the drivers it built from URLs, `aclose()` and
`async with`, whatever runtime it runs on."""

from __future__ import annotations

import logging
from typing import Any, Self

from .errors import UsageError
from .resources import AsyncResource, aclose_resource

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
        owns and closes."""
        if not isinstance(value, str):
            return value
        from .plugins import resolve_driver

        driver = resolve_driver(kind, value)
        owned: list[Any] | None = getattr(self, "_owned_drivers", None)
        if owned is None:
            owned = self._owned_drivers = []
        owned.append(driver)
        return driver

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
