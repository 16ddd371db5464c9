"""The planner, at PenguiFlow 3.11's import path (`penguiflow.planner.react`)."""

from __future__ import annotations

from ._planner import ReactPlanner

__all__ = ["ReactPlanner"]
