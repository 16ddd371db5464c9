"""What a run did, at PenguiFlow 3.11's import path (`penguiflow.planner.trajectory`)."""

from __future__ import annotations

from ._trajectory import (
    BackgroundTaskResult,
    Trajectory,
    TrajectoryStep,
    TrajectorySummary,
    extract_background_results,
)

__all__ = [
    "BackgroundTaskResult",
    "Trajectory",
    "TrajectoryStep",
    "TrajectorySummary",
    "extract_background_results",
]
