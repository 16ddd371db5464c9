"""The built-in drivers pass the conformance suites every plugin must pass."""

from __future__ import annotations

from typing import Any

from penguiflow.bus import BusEnvelope, InMemoryMessageBus, MessageBus
from penguiflow.hookspecs import hookimpl
from penguiflow.llm import JSONLLMClient
from penguiflow.memory import MemoryStrategy
from penguiflow.plugins import resolve_driver
from penguiflow.state import StateStore
from penguiflow.testing import (
    HookPluginConformance,
    LLMAdapterConformance,
    MemoryStrategyConformance,
    MessageBusConformance,
    RuntimeConformance,
    StateStoreConformance,
)

ALL_BUILT_IN = frozenset(
    {"planner_state", "memory_state", "tasks", "steering", "trajectories", "conversation_bindings"}
)


class TestMemoryStateStore(StateStoreConformance):
    required_capabilities = ALL_BUILT_IN

    async def make_store(self) -> StateStore:
        store: StateStore = resolve_driver("state_store", "memory://")
        return store


class TestMemoryMessageBus(MessageBusConformance):
    async def make_bus(self) -> MessageBus:
        bus: MessageBus = resolve_driver("message_bus", "memory://")
        return bus

    async def published(self, bus: MessageBus) -> list[BusEnvelope] | None:
        assert isinstance(bus, InMemoryMessageBus)
        return list(bus.envelopes)


class TestLocalRuntime(RuntimeConformance):
    async def make_runtime(self) -> Any:
        return resolve_driver("runtime", "local")


class SamplePlugin:
    @hookimpl
    def penguiflow_observability_sinks(self, flow: Any) -> list[Any]:
        async def sink(event: Any) -> None:
            return None

        return [sink]


class TestSampleHookPlugin(HookPluginConformance):
    def make_plugin(self) -> Any:
        return SamplePlugin()


class TestScriptedLLMAdapter(LLMAdapterConformance):
    async def make_client(self, replies: list[str]) -> JSONLLMClient:
        client: JSONLLMClient = resolve_driver("llm_adapter", "scripted", replies=replies)
        return client


class TestNoMemory(MemoryStrategyConformance):
    remembers = False

    async def make_strategy(self) -> MemoryStrategy:
        strategy: MemoryStrategy = resolve_driver("memory_strategy", "none")
        return strategy


class TestTruncationMemory(MemoryStrategyConformance):
    async def make_strategy(self) -> MemoryStrategy:
        strategy: MemoryStrategy = resolve_driver(
            "memory_strategy", "truncation", state_store=resolve_driver("state_store", "memory://")
        )
        return strategy


class TestSQLiteStateStore(StateStoreConformance):
    """The embedded durable store, on a real file, reopened by a second instance."""

    required_capabilities = ALL_BUILT_IN

    async def make_store(self) -> StateStore:
        folder = self.new_folder()
        store: StateStore = resolve_driver("state_store", f"sqlite:///{folder}/flows.db")
        return store

    async def reopen_store(self, store: StateStore) -> StateStore:
        reopened: StateStore = resolve_driver("state_store", store.url)  # type: ignore[attr-defined]
        return reopened


class TestTruncationMemoryOnSQLite(MemoryStrategyConformance):
    async def make_strategy(self) -> MemoryStrategy:
        strategy: MemoryStrategy = resolve_driver(
            "memory_strategy",
            "truncation",
            state_store=resolve_driver("state_store", "sqlite:///:memory:"),
        )
        return strategy


def test_require_server_skips_locally_and_fails_in_ci(monkeypatch: Any) -> None:
    import socket

    import pytest

    from penguiflow.testing import require_server

    with socket.socket() as listener:  # a port that surely accepts connections
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert require_server(f"redis://127.0.0.1:{port}/0", default_port=1, how_to_start="x")
    closed = f"redis://127.0.0.1:{port}/0"  # closed now
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="start it like this"):
        require_server(closed, default_port=1, how_to_start="start it like this")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"no server at {closed}"):
        require_server(closed, default_port=1, how_to_start="start it like this")
