"""`penguiflow.testing.collect_events`: the one way tests record published events."""

from __future__ import annotations

import pytest

import penguiflow.testing as testing
from penguiflow import observability
from penguiflow.observability import Event, publish
from penguiflow.testing import EventLog, collect_events


async def test_records_what_is_published_inside_the_block_only() -> None:
    await publish(Event("llm", "call"))  # nobody listens yet: not recorded anywhere
    with collect_events() as log:
        assert observability.enabled()
        await publish(Event("llm", "call", attributes={"n": 1}))
        await publish(Event("tool", "call"))
        await publish(Event("llm", "retry"))
    await publish(Event("llm", "call", attributes={"n": 2}))
    assert isinstance(log, EventLog) and isinstance(log, list)
    assert [e.qualified_name for e in log] == ["llm.call", "tool.call", "llm.retry"]
    assert [e.attributes for e in log.named("llm.call")] == [{"n": 1}]
    assert [e.name for e in log.of_family("llm")] == ["call", "retry"]
    assert not observability.enabled()


async def test_the_sink_is_removed_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), collect_events():
        raise RuntimeError("boom")
    assert not observability.enabled()


def test_every_public_name_of_penguiflow_testing_resolves() -> None:
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
