"""`penguiflow.planner.memory`: PenguiFlow 3.11's short-term memory API, and the
`rolling_summary` memory strategy driver.

```python
from penguiflow.planner.memory import MemoryBudget, MemoryKey, ShortTermMemoryConfig

planner = ReactPlanner(..., short_term_memory=ShortTermMemoryConfig(
    strategy="truncation", budget=MemoryBudget(full_zone_turns=5)))
await planner.run("hi", memory_key=MemoryKey("acme", "alice", "chat-1"))
```

The names, fields, defaults and behaviour are PenguiFlow's (`MemoryKey`, `ConversationTurn`,
`TrajectoryDigest`, `MemoryBudget`, `MemoryIsolation`, `MemoryHealth`,
`ShortTermMemoryConfig`, the `ShortTermMemory*` protocols, `DefaultShortTermMemory`,
`default_token_estimator`, `MemoryBudgetExceeded`); `DefaultShortTermMemory` is a facade over
our memory strategy drivers (`truncation` from the kernel, `rolling_summary` from here).
`MemoryKey` and `MemoryBudgetExceeded` are the kernel's own classes (`penguiflow.memory`): one
key type in the whole project, built positionally as in PenguiFlow or by keyword. Where this
differs from PenguiFlow on purpose, docs/memory.md ("PenguiFlow's memory API") says so.
"""

from __future__ import annotations

from penguiflow.memory import MemoryBudgetExceeded, MemoryKey

from ._memory_types import (
    ConversationTurn,
    MemoryBudget,
    MemoryHealth,
    MemoryIsolation,
    ShortTermMemory,
    ShortTermMemoryArtifacts,
    ShortTermMemoryConfig,
    ShortTermMemoryPersistence,
    ShortTermMemorySerializable,
    TrajectoryDigest,
    default_token_estimator,
)
from ._rolling_summary import RollingSummaryMemory, rolling_summary_memory
from ._short_term_memory import DefaultShortTermMemory

__all__ = [
    "ConversationTurn",
    "DefaultShortTermMemory",
    "MemoryBudget",
    "MemoryBudgetExceeded",
    "MemoryHealth",
    "MemoryIsolation",
    "MemoryKey",
    "RollingSummaryMemory",
    "ShortTermMemory",
    "ShortTermMemoryArtifacts",
    "ShortTermMemoryConfig",
    "ShortTermMemoryPersistence",
    "ShortTermMemorySerializable",
    "TrajectoryDigest",
    "default_token_estimator",
    "rolling_summary_memory",
]
