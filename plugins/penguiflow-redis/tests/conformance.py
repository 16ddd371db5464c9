"""The kernel's conformance suites bound to the Redis state store and message bus.

A test module subclasses them as `Test...` classes and says where they run by setting
`self.url` in an autouse fixture: one server, a cluster, or a Sentinel set.
"""

from __future__ import annotations

import uuid

from penguiflow_redis.bus import RedisMessageBus
from penguiflow_redis.store import RedisStateStore

from penguiflow.bus import BusEnvelope, MessageBus
from penguiflow.plugins import resolve_driver
from penguiflow.state import StateStore
from penguiflow.testing import MessageBusConformance, StateStoreConformance

#: Every capability of `penguiflow.state`: the Redis store has them all.
ALL = frozenset(
    {
        "planner_state",
        "memory_state",
        "tasks",
        "steering",
        "trajectories",
        "conversation_bindings",
        "audit",
    }
)


class RedisStoreSuite(StateStoreConformance):
    required_capabilities = ALL
    url: str

    async def make_store(self) -> StateStore:
        # A fresh prefix per test: an empty store without flushing anyone else's keys.
        store: StateStore = resolve_driver(
            "state_store", self.url, prefix=f"pftest{uuid.uuid4().hex[:12]}"
        )
        assert isinstance(store, RedisStateStore)
        return store

    async def reopen_store(self, store: StateStore) -> StateStore:
        assert isinstance(store, RedisStateStore)
        return RedisStateStore(store.url, prefix=store.prefix)


class RedisBusSuite(MessageBusConformance):
    url: str

    async def make_bus(self) -> MessageBus:
        bus: MessageBus = resolve_driver(
            "message_bus", self.url, stream=f"pftest:{uuid.uuid4().hex}:bus", maxlen=1000
        )
        assert isinstance(bus, RedisMessageBus)
        return bus

    async def published(self, bus: MessageBus) -> list[BusEnvelope] | None:
        assert isinstance(bus, RedisMessageBus)
        return await bus.read_all()
