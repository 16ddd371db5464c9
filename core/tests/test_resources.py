"""`penguiflow.resources`: one close verb, and `async with` on top of it."""

from __future__ import annotations

import pytest

import penguiflow.resources as resources
from penguiflow.resources import AsyncResource, SupportsAclose, aclose_resource


class Counted(AsyncResource):
    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


def test_public_names() -> None:
    assert resources.__all__ == [
        "AsyncResource",
        "SupportsAclose",
        "aclose_resource",
        "redact_url",
    ]


async def test_async_with_returns_the_resource_and_closes_it_even_on_error() -> None:
    resource = Counted()
    with pytest.raises(ValueError, match="boom"):
        async with resource as entered:
            assert entered is resource
            raise ValueError("boom")
    assert resource.closed == 1
    assert isinstance(resource, SupportsAclose)


async def test_aclose_resource_accepts_aclose_sync_close_async_close_or_nothing() -> None:
    calls: list[str] = []

    class SyncClose:
        def close(self) -> None:
            calls.append("sync")

    class AsyncClose:
        async def close(self) -> None:
            calls.append("async")

    counted = Counted()
    for thing in (counted, SyncClose(), AsyncClose(), object()):
        await aclose_resource(thing)
    assert counted.closed == 1
    assert calls == ["sync", "async"]


async def test_a_resource_without_aclose_says_which_class_must_implement_it() -> None:
    class Forgot(AsyncResource):
        pass

    with pytest.raises(NotImplementedError, match="Forgot must implement aclose"):
        await Forgot().aclose()


@pytest.mark.parametrize(
    "spec",
    [
        ("runtime", "local"),
        ("state_store", "memory://"),
        ("message_bus", "memory://"),
        ("llm_adapter", "scripted"),
        ("memory_strategy", "none"),
        ("memory_strategy", "truncation"),
    ],
    ids=lambda spec: f"{spec[0]}:{spec[1]}",
)
async def test_every_builtin_driver_closes_the_same_way(spec: tuple[str, str]) -> None:
    from penguiflow.plugins import resolve_driver

    driver = resolve_driver(*spec)
    assert isinstance(driver, SupportsAclose)
    async with driver as entered:
        assert entered is driver
    await driver.aclose()  # idempotent


async def test_a_flow_closes_what_it_built_from_urls_but_not_what_it_was_given(
    tmp_path: object,
) -> None:
    from penguiflow import Node, NodePolicy, create
    from penguiflow.state import InMemoryStateStore, StoreClosedError

    async def echo(message: object, ctx: object) -> object:
        return message

    given = InMemoryStateStore()
    node = Node(echo, name="echo", policy=NodePolicy(validate="none"))
    async with create(node.to(), state_store="memory://") as built_flow:
        built = built_flow.state_store
    async with create(node.to(), state_store=given):
        pass
    with pytest.raises(StoreClosedError):
        await built.load_history("t")  # type: ignore[union-attr]
    assert await given.load_history("t") == []
