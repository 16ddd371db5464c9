"""Conformance suites for plugin authors, one per driver kind and for hook plugins.

Subclass the suite in a test module whose class name starts with `Test` and provide the
factory method; every test of the suite runs against your implementation:

    from penguiflow.testing import StateStoreConformance

    class TestMyStore(StateStoreConformance):
        async def make_store(self):
            return MyStore("mystore://...")

The suites run their own event loops, so they need no pytest-asyncio configuration. The
`pytest11` entry point of the kernel also registers `penguiflow.testing.pytest_plugin`, which
provides the `penguiflow_isolated_plugins` fixture.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._embeddings import EmbeddingsConformance
    from ._events import EventLog, collect_events
    from ._hooks import HookPluginConformance
    from ._joins import JoinStrategyConformance
    from ._llm import LLMAdapterConformance
    from ._memory import MemoryStrategyConformance
    from ._message_bus import MessageBusConformance
    from ._runtime import RuntimeConformance
    from ._servers import require_server
    from ._sites import DistributionSite, distribution_site
    from ._state_store import StateStoreConformance
    from ._support import run_async
    from ._tasks import leftover_tasks

__all__ = [
    "DistributionSite",
    "EmbeddingsConformance",
    "EventLog",
    "HookPluginConformance",
    "JoinStrategyConformance",
    "LLMAdapterConformance",
    "MemoryStrategyConformance",
    "MessageBusConformance",
    "RuntimeConformance",
    "StateStoreConformance",
    "collect_events",
    "distribution_site",
    "leftover_tasks",
    "require_server",
    "run_async",
]

# Loaded on first use: pytest imports this package for every run in an environment where
# penguiflow is installed (the pytest11 plugin), and most runs never touch a suite.
_HOMES = {
    "DistributionSite": "_sites",
    "EmbeddingsConformance": "_embeddings",
    "EventLog": "_events",
    "collect_events": "_events",
    "HookPluginConformance": "_hooks",
    "JoinStrategyConformance": "_joins",
    "LLMAdapterConformance": "_llm",
    "MemoryStrategyConformance": "_memory",
    "MessageBusConformance": "_message_bus",
    "RuntimeConformance": "_runtime",
    "StateStoreConformance": "_state_store",
    "distribution_site": "_sites",
    "leftover_tasks": "_tasks",
    "require_server": "_servers",
    "run_async": "_support",
}


#: The scripted HTTP server only LLM adapter tests used; it moved with the HTTP toolkit.
_MOVED_TO_LLM_HTTP = frozenset({"RecordedRequest", "ScriptedHTTPServer", "ScriptedResponse"})


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        if name in _MOVED_TO_LLM_HTTP:
            from ..llm._moved import moved_name_error

            raise moved_name_error(
                f"penguiflow.testing.{name}", f"penguiflow_llm_http.testing.{name}"
            )
        raise AttributeError(f"module 'penguiflow.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
