from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from penguiflow.metrics import FlowEvent


class EventLog:
    """A middleware that records every event, for assertions."""

    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def types(self, trace_id: str | None = None, node: str | None = None) -> list[str]:
        return [
            e.event_type
            for e in self.events
            if (trace_id is None or e.trace_id == trace_id)
            and (node is None or e.node_name == node)
        ]

    def of(self, event_type: str) -> list[FlowEvent]:
        return [e for e in self.events if e.event_type == event_type]


@pytest.fixture
def event_log() -> EventLog:
    return EventLog()


@pytest.fixture
def msg_factory() -> Callable[..., Any]:
    from penguiflow.types import Headers, Message

    def make(payload: Any = None, **kwargs: Any) -> Message:
        return Message(payload=payload, headers=Headers(tenant="test"), **kwargs)

    return make


@pytest.fixture(autouse=True)
def _no_plugin_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel tests never depend on what happens to be installed: no hook autoload."""
    from penguiflow.plugins import AUTOLOAD_ENV, reset_hooks

    monkeypatch.setenv(AUTOLOAD_ENV, "0")
    monkeypatch.delenv("PENGUIFLOW_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("PENGUIFLOW_STRICT_PLUGINS", raising=False)
    reset_hooks()
