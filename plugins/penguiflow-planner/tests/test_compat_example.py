"""The PenguiFlow 3.11 planner program in examples/ runs unchanged here (docs/migration.md).

The same file was checked against `penguiflow==3.11.2` itself; this test keeps it working on
ours: a pause for approval, a resume with a new tool context, a structured final answer that
passed reflection, memory of the booking in the next turn, and a denied tool kept away.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from penguiflow.testing import run_async

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "penguiflow_planner_program.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("penguiflow_planner_program", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_penguiflow_program_runs_unchanged() -> None:
    program = _load()
    outcome = run_async(program.main, timeout=60)
    assert outcome["pause_reason"] == "approval_required"
    assert outcome["answer"] == "Booked flight PA-101 to Lisbon, confirmation CONF-PA-101."
    assert outcome["structured"] == {
        "confirmation": "CONF-PA-101",
        "flight_id": "PA-101",
        "destination": "Lisbon",
    }
    assert outcome["remembered"] == "You booked flight PA-101 (CONF-PA-101)."


def test_the_denied_tool_is_not_offered() -> None:
    program = _load()
    planner = program.build_planner(program.RuleBasedClient())
    assert sorted(spec.name for spec in planner.catalog) == ["book_flight", "search_flights"]
