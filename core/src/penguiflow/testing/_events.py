"""Recording the observability events a test causes: one helper instead of a sink per test file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..observability import Event, add_event_sink

__all__ = ["EventLog", "collect_events"]


class EventLog(list[Event]):
    """The events published while `collect_events()` was open, in publishing order (a list,
    so tests index, filter and compare it as one)."""

    def named(self, qualified_name: str) -> list[Event]:
        """The events whose `qualified_name` (`family.name`, e.g. `llm.call`) is given."""
        return [event for event in self if event.qualified_name == qualified_name]

    def of_family(self, family: str) -> list[Event]:
        """The events of one family (`flow`, `planner`, `llm`, `tool`, `connector`...)."""
        return [event for event in self if event.family == family]


@contextmanager
def collect_events() -> Iterator[EventLog]:
    """Add a sink recording every published event for the `with` block, and remove it after
    (also when the block raises). Works as a pytest fixture body:

        @pytest.fixture
        def events():
            with collect_events() as log:
                yield log
    """
    log = EventLog()

    async def record(event: Event) -> None:
        log.append(event)

    remove = add_event_sink(record)
    try:
        yield log
    finally:
        remove()
