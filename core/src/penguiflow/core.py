"""The runtime's public names: flows, contexts, endpoints, edges and playbooks.

Implementation lives in private modules (`_engine`, `_flow`, `_context`, `_worker`, ...); this
module is the stable import path (`from penguiflow.core import PenguiFlow, ROOKERY, ...`).
"""

from __future__ import annotations

from ._context import Context
from ._create import create
from ._engine import (
    BUDGET_EXCEEDED_TEXT,
    DEADLINE_EXCEEDED_TEXT,
    TOKEN_BUDGET_EXCEEDED_TEXT,
    TraceCancelled,
)
from ._flow import DEFAULT_QUEUE_MAXSIZE, PenguiFlow, WorkerCrashedError
from ._graph import OPEN_SEA, ROOKERY, CycleError, Endpoint, Floe
from ._playbook import PlaybookFactory, call_playbook

__all__ = [
    "BUDGET_EXCEEDED_TEXT",
    "DEADLINE_EXCEEDED_TEXT",
    "DEFAULT_QUEUE_MAXSIZE",
    "OPEN_SEA",
    "ROOKERY",
    "TOKEN_BUDGET_EXCEEDED_TEXT",
    "Context",
    "CycleError",
    "Endpoint",
    "Floe",
    "PenguiFlow",
    "PlaybookFactory",
    "TraceCancelled",
    "WorkerCrashedError",
    "call_playbook",
    "create",
]
